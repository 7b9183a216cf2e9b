"""The report's workflow scripts run with a stand-in for Snakemake's `snakemake` object: the names
they read from input / params / output are the contract the report rules are written against.
(The rules themselves run in test_report_workflow.py.)"""
import runpy
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from divcoeff.report.design import CORRELATION_COLUMNS, correlation_table, read_correlation, write_tsv
from divcoeff.report.within import WITHIN_COLUMNS
from divcoeff.report.paired import PAIRED_COLUMNS
from divcoeff.report.summary import COLUMNS, read_summary
from divcoeff.seeding import derive_seed
from report_data import DESIGN_CONTROL, design_npz_paths, write_design_results

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow_scripts"
PARAMS = {"master_seed": 1, "report": {"seed": 51, "bootstrap": 200, "pt_method": "logreg"}}


def run_script(name, tmp_path, *, input, output, params, wildcards=None):
    smk = SimpleNamespace(input=SimpleNamespace(**input), output=SimpleNamespace(**output),
                          params=SimpleNamespace(**params), wildcards=SimpleNamespace(**(wildcards or {})),
                          log=[str(tmp_path / "logs" / f"{name}.log")], scriptdir=str(SCRIPTS))
    runpy.run_path(str(SCRIPTS / f"{name}.py"), init_globals={"snakemake": smk}, run_name="__main__")
    return (tmp_path / "logs" / f"{name}.log").read_text()


@pytest.fixture
def summarized(tmp_path):
    rows = write_design_results(tmp_path)
    tsv = tmp_path / "results" / "summary.tsv"
    log = run_script("summarize", tmp_path, input={}, output={"tsv": str(tsv)}, params={"checkpoints": rows})
    assert "50 rows (31 checkpoints: 30 trained, 1 control; methods logreg, proto, maml)" in log
    return rows, tsv


def test_summarize_then_statistics(summarized, tmp_path):
    rows, tsv = summarized
    assert list(read_summary(tsv).columns) == COLUMNS
    out = {"correlation": str(tmp_path / "results" / "correlation.tsv"),
           "paired": str(tmp_path / "results" / "paired_comparison.tsv")}
    npz = list(design_npz_paths(rows).values())           # the control's file too: it is not used
    log = run_script("statistics", tmp_path, input={"tsv": str(tsv), "npz": npz}, output=out,
                     params={**PARAMS, "metrics": ["accuracy", "loss_calibrated"]})
    corr = read_correlation(out["correlation"])
    assert list(corr.columns) == CORRELATION_COLUMNS + WITHIN_COLUMNS and len(corr) == 4
    assert (corr["slope_within_lo"] <= corr["slope_within"]).all() and "within count level" in log
    # the seed the rule derives: the same numbers as the library with that seed
    expected = correlation_table(read_summary(tsv), n_boot=200, seed=derive_seed(1, "report", 51))
    pd.testing.assert_series_equal(corr["slope_hi"], expected["slope_hi"], rtol=1e-7)
    paired = pd.read_csv(out["paired"], sep="\t")
    assert list(paired.columns) == PAIRED_COLUMNS and len(paired) == 8
    assert "pt x accuracy: 18 checkpoints, 6 training sets" in log and "level 1 -> 4" in log

    missing = [p for p in npz if Path(p).stem != "maml-glyphs-L2-d0-s1"]
    with pytest.raises(FileNotFoundError, match="maml-glyphs-L2-d0-s1"):
        run_script("statistics", tmp_path, input={"tsv": str(tsv), "npz": missing}, output=out,
                   params={**PARAMS, "metrics": ["accuracy", "loss_calibrated"]})


def test_plot_with_and_without_correlation_tsv(summarized, tmp_path):
    _, tsv = summarized
    params = {**PARAMS, "report": {**PARAMS["report"], "x_ci": "bootstrap", "dpi": 50}}
    corr = tmp_path / "results" / "correlation.tsv"
    write_tsv(correlation_table(read_summary(tsv), n_boot=200, seed=derive_seed(1, "report", 51)), corr)
    figs = {f: str(tmp_path / "results" / "figures" / f"diversity_vs_accuracy.{f}") for f in ("png", "pdf", "svg")}
    log = run_script("plot", tmp_path, input={"tsv": str(tsv), "correlation": str(corr)}, output=figs,
                     params=params, wildcards={"metric": "accuracy"})
    assert "PT (logreg): r = +" in log and "18 checkpoints, 6 training sets" in log
    assert all(Path(p).stat().st_size > 1000 for p in figs.values())
    # a stale correlation.tsv (another seed) is refused rather than printed under a plot it does not fit
    write_tsv(correlation_table(read_summary(tsv), n_boot=200, seed=3), corr)
    with pytest.raises(ValueError, match="stale"):
        run_script("plot", tmp_path, input={"tsv": str(tsv), "correlation": str(corr)}, output=figs,
                   params=params, wildcards={"metric": "accuracy"})
    # without the file (and for the uncalibrated loss, which it does not hold) the plot computes its own
    figs = {f: str(tmp_path / "results" / "figures" / f"diversity_vs_loss.{f}") for f in ("png", "pdf", "svg")}
    log = run_script("plot", tmp_path, input={"tsv": str(tsv)}, output=figs, params=params,
                     wildcards={"metric": "loss"})
    assert "MAML: r = " in log and DESIGN_CONTROL not in log
