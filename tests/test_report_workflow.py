"""The report rules run by Snakemake on hand-made results, and `snakemake --report` builds the HTML.

A real run needs every earlier stage; instead the workflow is copied to a temporary folder,
hand-made evaluation and diversity JSONs are put where those stages would write them, and only
the report rules are allowed to run (`--allowed-rules`), so the JSONs count as given inputs.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from report_data import DESIGN_SEEDS, DESIGN_SETS, design_checkpoints, write_design_results

WORKFLOW_PARTS = ["Snakefile", "rules", "config", "divcoeff", "workflow_scripts", "envs"]
# One metric keeps the test short (each plot job starts Python and matplotlib); the unit tests
# cover the others, and all of them share the one rule.
METRICS = ["accuracy"]


def design_sheet_checkpoints() -> tuple[pd.DataFrame, list[dict]]:
    """The sheet of the replicated design (one row per family x training set, its seeds as
    replicates, and one control row) and the checkpoints it expands to, named as the workflow
    names replicates (<row>-r<k>)."""
    rows, checkpoints = [], []
    for ck in design_checkpoints():
        control = ck["role"] == "control"
        row = ck["name"] if control else ck["name"].rsplit("-s", 1)[0]
        if not rows or rows[-1]["name"] != row:
            rows.append({"name": row, "family": ck["family"], "arch": ck["arch"],
                         "source": "init" if control else "train", "uri": "", "checksum": "",
                         "train_set": next(iter(DESIGN_SETS)) if control else ck["train_set"], "allow_pickle": "false",
                         "replicates": 1 if control else DESIGN_SEEDS[ck["family"]]})
        checkpoints.append({**ck, "name": f"{row}-r{ck['replicate'] or 0}"})
    return pd.DataFrame(rows), checkpoints


def report_workflow(repo: Path, root: Path) -> list[str]:
    """A copy of the workflow in `root` with hand-made results for the report stage; returns its targets."""
    for part in WORKFLOW_PARTS:
        src = repo / part
        if src.is_dir():
            shutil.copytree(src, root / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / part)
    # The repo's config, with exactly the training sets of the hand-made results.
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    bench = next(iter(config["benchmarks"]))
    config["train_sets"] = {ts: {"benchmarks": [bench], "level": level} for ts, (level, *_) in DESIGN_SETS.items()}
    config["checkpoint_sheet"] = "config/checkpoints.tsv"
    config.setdefault("evaluation", {})["calibrate_temperature"] = True
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    sheet, checkpoints = design_sheet_checkpoints()
    sheet.to_csv(root / "config" / "checkpoints.tsv", sep="\t", index=False)
    write_design_results(root, checkpoints)
    return ["results/summary.tsv", "results/correlation.tsv", "results/paired_comparison.tsv"] + [
        f"results/figures/diversity_vs_{m}.{f}" for m in METRICS for f in ("png", "pdf", "svg")]


def snakemake(root: Path, *args: str) -> subprocess.CompletedProcess:
    # targets before --allowed-rules: it takes any number of values
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *args, "--allowed-rules", "summarize", "statistics",
           "plot"]
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out


@pytest.mark.workflow
def test_report_rules_and_html_report(repo, tmp_path):
    targets = report_workflow(repo, tmp_path)
    snakemake(tmp_path, *targets)
    table = pd.read_csv(tmp_path / "results" / "summary.tsv", sep="\t")
    # 18 PT checkpoints x 2 methods + 12 MAML + the control's 2 methods
    assert len(table) == 50 and set(table["method"]) == {"logreg", "proto", "maml"}
    assert (table["role"] == "control").sum() == 2 and table["replicate"].max() == 2
    corr = pd.read_csv(tmp_path / "results" / "correlation.tsv", sep="\t")
    assert set(corr["family"]) == {"pt", "maml"} and corr["n_train_sets"].max() == 6
    for t in targets:
        assert (tmp_path / t).stat().st_size > 1000, t
    assert "PT (logreg): r = +" in (tmp_path / "logs" / "report" / "plot_accuracy.log").read_text()

    snakemake(tmp_path, "--report", "report.html", *targets)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    for name in ["summary.tsv", "correlation.tsv", "paired_comparison.tsv", "diversity_vs_accuracy.png",
                 "diversity_vs_accuracy.svg", "diversity_vs_accuracy.pdf"]:
        assert name in html, f"{name} not in the report"
    # the captions were rendered with the config's values (Jinja) and reached the HTML
    assert "Does the diversity" in html and "bootstrap" in html
    assert "one row per checkpoint x evaluation method" in html
