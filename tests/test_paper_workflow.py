"""The config/paper DAG end to end, offline: miniature files in the published formats on the local fake
Zenodo (tests/paper_miniature.py), the derived config through the same rules, to summary.tsv, the plots
and results/published_vs_reproduced.tsv."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from divcoeff.report.published import read_published
from fake_servers import FakeServer
from paper_miniature import CHECKPOINTS, REPO, serve

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper")
    server = FakeServer().start()
    try:
        config = serve(server, tmp)
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp / "run"),
               "--configfile", str(tmp / "config.yaml"), "--cores", "2"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp)
    finally:
        server.stop()
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    return tmp / "run", config


def test_summary_has_both_evaluations_under_the_published_protocol(paper_run):
    run, config = paper_run
    table = pd.read_csv(run / "results/summary.tsv", sep="\t", keep_default_na=False)
    assert set(table["evaluation"]) == {"heldout-test-mix", "own-test"}
    assert set(table["protocol"]) == {"published"}
    for evaluation, rows in table.groupby("evaluation"):
        got = sorted(zip(rows["checkpoint"], rows["method"]))
        assert got == sorted([("usl-mini-imagenet", "logreg"), ("usl-cifar-fs", "logreg"),
                              ("maml-hdb1-2022", "maml5"), ("maml-hdb1-2022", "maml10"),
                              ("maml-hdb4", "maml5"), ("maml-hdb4", "maml10")]), evaluation
    own = table[table["evaluation"] == "own-test"].set_index(["checkpoint", "method"])
    assert own.loc[("maml-hdb1-2022", "maml5"), "n_episodes"] == 4        # own_test.episodes_per_train_set
    assert own.loc[("usl-cifar-fs", "logreg"), "n_episodes"] == 4
    assert table["accuracy_mean"].between(0, 1).all() and np.isfinite(table["loss_calibrated_mean"].astype(float)).all()
    for name in CHECKPOINTS:  # every published layout loaded by default (no allow_pickle)
        doc = json.loads((run / f"results/eval/own-test/{name}.json").read_text())
        assert doc["evaluation"] == "own-test" and doc["protocol"] == "published"
        assert doc["input"]["normalisation"] == "dataset"
    hdb4 = json.loads((run / "results/eval/maml-hdb4.json").read_text())
    per = hdb4["input"]["per_benchmark"]
    assert per["omniglot"] is None and per["mini-imagenet"]["mean"][0] == pytest.approx(120.39586422 / 255)
    assert per["cifar-fs"]["mean"] == [0.5853, 0.5335, 0.495]
    cifar = json.loads((run / "results/eval/own-test/usl-cifar-fs.json").read_text())
    assert cifar["input"]["per_benchmark"]["cifar-fs"]["mean"] == [0.5071, 0.4867, 0.4408]  # the 2022 statistics
    assert cifar["input"]["image_size"] == 32 and not cifar["input"]["resized"]


def test_inputs_as_published_reach_the_episodes_and_the_probe(paper_run):
    run, _ = paper_run
    manifest = json.loads((run / "results/data/omniglot/manifest.json").read_text())
    assert manifest["build"]["split_counts"] == {"train": 11, "val": 1, "test": 4}  # unshuffled 1100/100/423 cut
    assert manifest["build"]["pixels"] == "inverted" and manifest["task_rotations"]["degrees"] == [0, 90, 180, 270]
    view = json.loads((run / "results/views/own-test.omniglot.json").read_text())
    n_rows = view["n_images"]
    eps = json.loads(next((run / "results/episodes/own-test.omniglot").glob("*.json")).read_text())["episodes"]
    rows = np.array([ep["support"] + ep["query"] for ep in eps])   # (E, W, K+Q)
    assert (rows >= n_rows).any()                                   # rotated rows are used
    assert all(len(set((r // n_rows).ravel())) == 1 for r in rows)  # one rotation per task
    div = json.loads((run / "results/diversity/cifar-fs.json").read_text())
    assert div["probe"]["normalisation"] == "dataset" and div["settings"]["probe"]["image_size"] == 32
    hdb4 = json.loads((run / "results/diversity/hdb4.json").read_text())
    assert hdb4["settings"]["probe"]["image_size"] == 32 and hdb4["tasks"] == 3
    assert json.loads((run / "results/views/hdb4.json").read_text())["inputs"] == "normalised"


def test_published_numbers_side_by_side_and_the_plots(paper_run):
    run, _ = paper_run
    table = pd.read_csv(run / "results/published_vs_reproduced.tsv", sep="\t", keep_default_na=False)
    comp = table[table["status"] == "compared"].astype({"ours": float, "published": float, "difference": float})
    got = sorted(zip(comp["what"], comp["train_set"], comp["probe_or_method"], comp["checkpoint"]))
    assert got == sorted([("accuracy", "mini-imagenet", "pt", "usl-mini-imagenet"),
                          ("accuracy", "cifar-fs", "pt", "usl-cifar-fs"),
                          ("accuracy", "hdb1", "maml5", "maml-hdb1-2022"), ("accuracy", "hdb1", "maml10", "maml-hdb1-2022"),
                          ("accuracy", "hdb4", "maml5", "maml-hdb4"), ("accuracy", "hdb4", "maml10", "maml-hdb4"),
                          ("diversity", "hdb1", "resnet18-random", "")])
    # every other published value is listed as not run (here: no checkpoint pair for an effect size)
    published = read_published(REPO / "config/paper/published.tsv")
    not_run = table[table["status"] == "not run"]
    assert len(not_run) == len(published) - len(comp) and (not_run["ours"] == "").all()
    assert set(not_run["what"]) == {"diversity", "accuracy", "effect_size"}
    summary = pd.read_csv(run / "results/summary.tsv", sep="\t")
    mi = summary[(summary["evaluation"] == "own-test") & (summary["checkpoint"] == "usl-mini-imagenet")].iloc[0]
    row = comp[comp["checkpoint"] == "usl-mini-imagenet"].iloc[0]
    assert row["ours"] == pytest.approx(100 * mi["accuracy_mean"]) and row["published"] == 70.8
    assert row["difference"] == pytest.approx(row["ours"] - 70.8)
    for f in ("published_vs_reproduced", "diversity_vs_accuracy", "diversity_vs_loss", "diversity_vs_loss_calibrated"):
        for fmt in ("png", "pdf", "svg"):
            assert (run / f"results/figures/{f}.{fmt}").stat().st_size > 1000, f
    corr = pd.read_csv(run / "results/correlation.tsv", sep="\t")
    assert len(corr) and set(corr["family"]) <= {"pt", "maml"}
