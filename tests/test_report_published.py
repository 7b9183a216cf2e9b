"""results/published_vs_reproduced.tsv: published values (config/paper/published.tsv) next to ours."""
import math
import re
from pathlib import Path

import numpy as np

import pandas as pd
import pytest

from divcoeff.report.plots import save_figure
from divcoeff.report.published import COLUMNS, compare, comparison_figure, read_published, write_comparison
from divcoeff.report.summary import ResultFileError

REPO = Path(__file__).resolve().parents[1]
HEAD = "what\ttrain_set\tprobe\tsplit\ttasks\tmethod\tcheckpoint\tvalue\tci95\tunit\tsource\tnote\n"


def summary_rows():
    def row(ck, family, method, evaluation, acc, half, ts="mini-imagenet"):
        return {"checkpoint": ck, "family": family, "method": method, "evaluation": evaluation, "train_set": ts,
                "accuracy_mean": acc, "accuracy_lo": acc - half, "accuracy_hi": acc + half, "n_episodes": 500}
    return pd.DataFrame([
        row("usl-mi", "pt", "logreg", "own-test", 0.70, 0.017),
        row("maml-mi", "maml", "maml5", "own-test", 0.75, 0.02),
        row("maml-mi", "maml", "maml10", "own-test", 0.60, 0.02),
        row("maml-mi", "maml", "maml5", "heldout", 0.40, 0.02),     # the seed study: not a published number
    ])


def diversity_doc(ts, arch, weights, value, lo=None, hi=None):
    return {"train_set": ts, "coefficient": value, "ci_bootstrap": [lo or value - 0.01, hi or value + 0.01],
            "ci_pairs_t": [value - 1e-5, value + 1e-5], "tasks": 40,
            "settings": {"probe": {"kind": "torchvision", "arch": arch, "weights": weights}}}


def test_the_shipped_published_table_reads_and_holds_reference_section_7():
    table = read_published(REPO / "config/paper/published.tsv")
    div = table[table["what"] == "diversity"]
    assert len(div) == 9 and set(div["probe"]) == {"resnet18-imagenet", "resnet18-random", "resnet34-imagenet",
                                                  "resnet34-random", ""}
    mi = div[(div["train_set"] == "mini-imagenet") & (div["probe"] == "resnet18-imagenet")].iloc[0]
    assert (mi["value"], mi["ci95"], mi["split"], mi["tasks"]) == (0.117, 2.098e-5, "val", "500")
    acc = table[table["what"] == "accuracy"]
    assert len(acc) == 18 and set(acc["method"]) == {"pt", "maml5", "maml10"}
    # every row cites a file and line of the authors' repositories
    assert all(re.search(r"^[DU]@[0-9a-f]{7} \S+\.py lines? \d+", src) for src in table["source"]), \
        [src for src in table["source"] if not re.search(r"^[DU]@[0-9a-f]{7} \S+\.py lines? \d+", src)]
    es = table[table["what"] == "effect_size"]
    assert len(es) == 26 and set(es["method"]) == {"maml5", "maml10"}
    micod = es[(es["train_set"] == "hdb4") & (es["method"] == "maml10")].iloc[0]
    assert micod["value"] == -0.0559 and math.isnan(micod["ci95"])
    hdb4 = acc[(acc["train_set"] == "hdb4") & (acc["method"] == "maml10")].iloc[0]
    assert (hdb4["value"], hdb4["ci95"], hdb4["unit"]) == (78.6, 1.19, "%")
    # the 2022 and 2023 hdb1 numbers are pinned to the sheet's two hdb1 pairs
    assert set(acc.loc[acc["train_set"] == "hdb1", "checkpoint"]) == {
        "usl-hdb1-2022", "maml-hdb1-2022", "usl-hdb1-2023", "maml-hdb1-2023"}
    sheet = (REPO / "config/paper/checkpoints.tsv").read_text()
    assert all(f"\n{c}\t" in sheet for c in set(acc["checkpoint"]) - {""})


def test_matching_rows_side_by_side(tmp_path):
    pub = tmp_path / "published.tsv"
    pub.write_text(HEAD +
                   "accuracy\tmini-imagenet\t\ttest\t\tpt\t\t70.8\t1.70\t%\tsrc\t\n"
                   "accuracy\tmini-imagenet\t\ttest\t\tmaml5\t\t73.8\t1.76\t%\tsrc\t\n"
                   "accuracy\tmini-imagenet\t\ttest\t\tmaml10\t\t72.8\t1.61\t%\tsrc\t\n"
                   "accuracy\thdb5\t\ttest\t\tpt\t\t72.7\t2.7\t%\tsrc\tno checkpoint of ours\n"
                   "diversity\tmini-imagenet\tresnet18-imagenet\tval\t500\t\t\t0.117\t2.098e-5\tcoefficient\tsrc\t\n"
                   "diversity\tmini-imagenet\tresnet34-random\tval\t500\t\t\t0.062\t8.12e-6\tcoefficient\tsrc\t\n"
                   "diversity\tmini-imagenet\tresnet18-imagenet\ttrain\t500\t\t\t0.2\t1e-5\tcoefficient\tsrc\t\n")
    docs = {"a.json": diversity_doc("mini-imagenet", "resnet18", "imagenet", 0.117004),
            "b.json": diversity_doc("mini-imagenet", "resnet34", "random", 0.08)}
    table = compare(read_published(pub), summary_rows(), docs, {"mini-imagenet": "val"})
    assert list(table.columns) == COLUMNS
    # three accuracies (own-test rows only), two coefficients; hdb5 and the train-split coefficient have no
    # result here: listed as not run, not dropped
    assert list(zip(table["what"], table["probe_or_method"], table["status"])) == [
        ("accuracy", "pt", "compared"), ("accuracy", "maml5", "compared"), ("accuracy", "maml10", "compared"),
        ("accuracy", "pt", "not run"), ("diversity", "resnet18-imagenet", "compared"),
        ("diversity", "resnet34-random", "compared"), ("diversity", "resnet18-imagenet", "not run")]
    assert table.iloc[3]["train_set"] == "hdb5" and math.isnan(table.iloc[3]["ours"])
    assert table.iloc[3]["inside_published_ci"] is None and table.iloc[6]["published"] == 0.2
    pt = table.iloc[0]
    assert pt["ours"] == pytest.approx(70.0) and pt["ours_lo"] == pytest.approx(68.3)
    assert pt["difference"] == pytest.approx(-0.8) and pt["inside_published_ci"]
    assert not table.iloc[2]["inside_published_ci"]  # 60 vs 72.8 +- 1.61
    r18 = table.iloc[4]
    assert r18["difference"] == pytest.approx(4e-6) and r18["inside_published_ci"]
    assert r18["ours_ci_pairs_t"] == pytest.approx(1e-5) and r18["ours_tasks_or_episodes"] == 40
    assert not table.iloc[5]["inside_published_ci"]
    write_comparison(table, tmp_path / "out.tsv")
    back = pd.read_csv(tmp_path / "out.tsv", sep="\t", keep_default_na=False)
    assert len(back) == 7 and back["inside_published_ci"].tolist() == ["True", "True", "False", "", "True", "False", ""]
    assert back["status"].tolist().count("not run") == 2
    fig = comparison_figure(table, dpi=50)
    paths = {f: tmp_path / f"fig.{f}" for f in ("png", "svg")}
    save_figure(fig, paths, dpi=50)
    assert all(p.stat().st_size > 1000 for p in paths.values())
    assert 'id="identity-accuracy"' in paths["svg"].read_text() and 'id="identity-diversity"' in paths["svg"].read_text()


def test_a_bad_published_table_is_refused_naming_row_and_field(tmp_path):
    pub = tmp_path / "published.tsv"
    pub.write_text(HEAD + "accuracy\tmi\t\t\t\tmaml7\t\t70\t1\t%\ts\t\n")
    with pytest.raises(ResultFileError, match=r"row 2: field 'method': 'maml7'"):
        read_published(pub)
    pub.write_text(HEAD + "diversity\tmi\t\t\t\t\t\tlots\t1\t%\ts\t\n")
    with pytest.raises(ResultFileError, match=r"row 2: field 'value'"):
        read_published(pub)
    assert math.isfinite(read_published(REPO / "config/paper/published.tsv")["value"].sum())


def test_effect_sizes_are_computed_as_the_authors_compute_them_when_both_families_ran(tmp_path):
    """d = (mean_pt - mean_maml) / sqrt((s_pt^2 + s_maml^2) / 2), ddof=1, over per-episode accuracies
    (ultimate-utils stats_uu/effect_size.py), here from the summary's mean, t-interval and n."""
    from divcoeff.fewshot.metrics import summarize
    rng = np.random.default_rng(0)
    pt_acc = rng.integers(40, 76, 300) / 75
    maml_acc = rng.integers(35, 76, 300) / 75
    expected = (pt_acc.mean() - maml_acc.mean()) / np.sqrt((pt_acc.std(ddof=1) ** 2 + maml_acc.std(ddof=1) ** 2) / 2)

    def row(ck, family, method, acc):
        s = summarize(acc)
        return {"checkpoint": ck, "family": family, "method": method, "evaluation": "own-test", "train_set": "dtd",
                "accuracy_mean": s["mean"], "accuracy_lo": s["lo"], "accuracy_hi": s["hi"], "n_episodes": s["n"]}
    summary = pd.DataFrame([row("usl-dtd", "pt", "logreg", pt_acc), row("maml-dtd", "maml", "maml5", maml_acc)])
    pub = tmp_path / "published.tsv"
    pub.write_text(HEAD + "effect_size\tdtd\t\ttest\t\tmaml5\t\t1.332\tnan\td\tsrc\t\n"
                          "effect_size\tdtd\t\ttest\t\tmaml10\t\t1.147\tnan\td\tsrc\t\n"
                          "effect_size\tcub\t\ttest\t\tmaml5\tusl-cub+maml-cub\t-0.572\tnan\td\tsrc\t\n")
    table = compare(read_published(pub), summary, {}, {})
    d5 = table.iloc[0]
    assert (d5["status"], d5["checkpoint"], d5["probe_or_method"]) == ("compared", "usl-dtd+maml-dtd", "pt-maml5")
    assert d5["ours"] == pytest.approx(expected, rel=1e-9) and d5["difference"] == pytest.approx(expected - 1.332)
    assert d5["inside_published_ci"] is None  # no published interval
    assert list(table["status"][1:]) == ["not run", "not run"]  # no MAML10 result; no CUB pair
    fig = comparison_figure(table, dpi=50)
    paths = {"svg": tmp_path / "fig.svg"}
    save_figure(fig, paths, dpi=50)
    assert 'id="identity-effect_size"' in paths["svg"].read_text()
    pub.write_text(HEAD + "effect_size\tcub\t\ttest\t\tmaml5\tusl-cub\t-0.572\tnan\td\tsrc\t\n")
    with pytest.raises(ResultFileError, match=r"row 2: field 'checkpoint': 'usl-cub' is not <pt>\+<maml>"):
        read_published(pub)
