"""The summary table built from hand-made evaluation and diversity JSONs."""
import json

import pandas as pd
import pytest

from divcoeff.report.summary import (COLUMNS, ResultFileError, build_summary, probe_label, read_summary,
                                     write_summary)
from report_data import CHECKPOINTS, PROTO_OFFSET, TRAIN_SETS, write_results


def build(rows):
    return build_summary(rows, {r["name"]: r["eval"] for r in rows}, {r["train_set"]: r["diversity"] for r in rows})


def test_one_row_per_checkpoint_and_method_with_the_values_of_the_files(tmp_path):
    rows = write_results(tmp_path)
    table = build(rows)
    assert list(table.columns) == COLUMNS
    # 4 PT checkpoints x (logreg, proto) + 4 MAML checkpoints x maml, in sheet order
    assert len(table) == 12
    assert list(table["checkpoint"][:2]) == ["pt-glyphs-1s-d0"] * 2
    assert list(table["method"][:2]) == ["logreg", "proto"]
    assert (table.groupby("family")["method"].apply(set).to_dict()
            == {"pt": {"logreg", "proto"}, "maml": {"maml"}})

    r = table.set_index(["checkpoint", "method"])
    one = r.loc[("pt-glyphs-2s-d0", "proto")]
    c, h = TRAIN_SETS["glyphs-2s-d0"]
    acc = CHECKPOINTS["pt-glyphs-2s-d0"][2] + PROTO_OFFSET
    assert one["family"] == "pt" and one["arch"] == "resnet12" and one["train_set"] == "glyphs-2s-d0"
    assert one["diversity"] == c
    assert (one["diversity_ci_bootstrap_lo"], one["diversity_ci_bootstrap_hi"]) == pytest.approx((c - h, c + h))
    assert (one["diversity_ci_pairs_t_lo"], one["diversity_ci_pairs_t_hi"]) == pytest.approx((c - 1e-5, c + 1e-5))
    assert one["vendi"] == pytest.approx(10 * c)
    assert one["tasks"] == 24
    assert (one["accuracy_mean"], one["accuracy_lo"], one["accuracy_hi"]) == pytest.approx((acc, acc - .02, acc + .02))
    loss = 2 - 2 * acc
    assert (one["loss_mean"], one["loss_lo"], one["loss_hi"]) == pytest.approx((loss, loss - .05, loss + .05))
    assert one["loss_calibrated_mean"] == pytest.approx(loss - 0.1)
    assert (one["n_episodes"], one["ways"], one["shots"], one["queries"]) == (300, 5, 5, 15)
    assert one["probe"] == "torchvision/resnet18/random/32px"
    assert one["diversity_method"] == "exact"
    assert (one["diversity_seed"], one["eval_seed"]) == (31, 21)  # eval seed from the episode file name


def test_tsv_round_trip_keeps_values_and_types(tmp_path):
    table = build(write_results(tmp_path, calibrated=False))
    assert table["loss_calibrated_mean"].isna().all()
    write_summary(table, tmp_path / "summary.tsv")
    header = (tmp_path / "summary.tsv").read_text().splitlines()[0].split("\t")
    assert header == COLUMNS
    back = read_summary(tmp_path / "summary.tsv")
    assert back["checkpoint"].tolist() == table["checkpoint"].tolist()
    assert back["tasks"].tolist() == [24] * len(table)
    pd.testing.assert_series_equal(back["accuracy_mean"], table["accuracy_mean"], rtol=1e-7)
    assert back["loss_calibrated_mean"].isna().all()  # empty cells read back as missing


def test_errors_name_the_file_and_field(tmp_path):
    rows = write_results(tmp_path, names=["pt-glyphs-all"])
    path = rows[0]["eval"]
    doc = json.loads(open(path).read())
    doc["family"] = "maml"
    open(path, "w").write(json.dumps(doc))
    with pytest.raises(ResultFileError, match=r"pt-glyphs-all\.json: field 'family' is 'maml'.*sheet says 'pt'"):
        build(rows)
    doc["family"] = "pt"
    doc["methods"]["logreg"]["accuracy"]["mean"] = 70.0  # a percentage where a fraction belongs
    open(path, "w").write(json.dumps(doc))
    with pytest.raises(ResultFileError, match=r"methods\.logreg\.accuracy\.mean: 70\.0 is not a fraction"):
        build(rows)
    with pytest.raises(ResultFileError, match="no evaluation result for checkpoint 'pt-glyphs-all'"):
        build_summary(rows, {}, {})


def test_probe_label():
    assert probe_label({"kind": "checkpoint", "checkpoint": "pt-x", "image_size": 84}) == "checkpoint/pt-x/84px"
    assert probe_label({"kind": "torchvision", "arch": "resnet34", "extra": [1, 2]}) == "torchvision/resnet34/extra=[1, 2]"
    assert probe_label(None) == ""
