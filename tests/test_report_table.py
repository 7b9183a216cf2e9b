"""The summary table built from hand-made evaluation and diversity JSONs: the single-checkpoint
sheet of before, and the replicated design (levels, seeds, a control, training and noise fields)."""
import json
import math

import pandas as pd
import pytest

from divcoeff.report.summary import (COLUMNS, DesignError, ResultFileError, build_summary, probe_label, read_summary,
                                     result_paths, write_summary)
from report_data import (CHECKPOINTS, DESIGN_CONTROL, DESIGN_SEEDS, DESIGN_SETS, PROTO_OFFSET, TRAIN_SETS,
                         write_design_results, write_results)


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


# --- the replicated design: levels, replicates, a control, training and noise-floor columns -----

def build_design(rows):
    evals, divs = result_paths(rows)
    return build_summary(rows, evals, divs)


def test_design_columns_and_control_rows(tmp_path):
    rows = write_design_results(tmp_path)
    table = build_design(rows)
    assert list(table.columns) == COLUMNS
    for c in ("role", "level", "replicate", "final_train_loss", "final_train_acc", "train_steps", "noise_floor"):
        assert c in COLUMNS
    n_trained = sum(DESIGN_SEEDS.values()) * len(DESIGN_SETS)
    assert table["checkpoint"].nunique() == n_trained + 1
    # PT (logreg + proto) and the PT control have two rows each, MAML one
    assert len(table) == 2 * DESIGN_SEEDS["pt"] * len(DESIGN_SETS) + DESIGN_SEEDS["maml"] * len(DESIGN_SETS) + 2

    r = table.set_index(["checkpoint", "method"])
    one = r.loc[("pt-glyphs-L2-d1-s2", "logreg")]
    level, c, h, floor = DESIGN_SETS["glyphs-L2-d1"]
    assert (one["role"], one["train_set"], one["level"], one["replicate"]) == ("trained", "glyphs-L2-d1", "2", 2)
    assert one["diversity"] == c and one["noise_floor"] == floor
    assert (one["final_train_loss"], one["final_train_acc"], one["train_steps"]) == pytest.approx((0.52, 0.78, 400))

    control = table[table["checkpoint"] == DESIGN_CONTROL]
    assert control["method"].tolist() == ["logreg", "proto"]
    assert (control["role"] == "control").all() and (control["train_set"] == "").all()
    assert (control["level"] == "").all() and control["replicate"].isna().all()
    for col in ("diversity", "diversity_ci_bootstrap_lo", "vendi", "noise_floor", "final_train_loss",
                "final_train_acc"):
        assert control[col].isna().all(), col
    assert control["tasks"].isna().all() and control["train_steps"].isna().all()
    assert (control["probe"] == "").all() and (control["diversity_method"] == "").all()
    assert control["accuracy_mean"].notna().all()

    # the TSV keeps the labels as text and the empty cells empty
    write_summary(table, tmp_path / "summary.tsv")
    back = read_summary(tmp_path / "summary.tsv")
    assert back["level"].tolist() == table["level"].tolist()   # "1", "2", "4", "" as text
    assert back["replicate"].tolist()[:4] == [0, 0, 1, 1]
    assert back.loc[back["role"] == "control", "diversity"].isna().all()
    assert back["train_set"].tolist() == table["train_set"].tolist()
    pd.testing.assert_series_equal(back["noise_floor"], table["noise_floor"])


def test_rows_without_the_design_keys_are_trained_checkpoints_outside_the_levels(tmp_path):
    table = build(write_results(tmp_path, names=["pt-glyphs-all"]))
    assert (table["role"] == "trained").all() and (table["level"] == "").all() and table["replicate"].isna().all()
    assert table["noise_floor"].isna().all() and table["final_train_loss"].isna().all()  # fields absent: empty


@pytest.mark.parametrize("change, message", [
    (lambda ck: ck.update(train_set="glyphs-L1-d0"), r"'pt-untrained' is a control .* but has train_set"),
    (lambda ck: ck.update(level="1"), r"'pt-untrained' is a control .* but has level"),
    (lambda ck: ck.update(role="baseline"), r"role 'baseline' is not one of trained, control"),
])
def test_a_control_with_a_training_set_or_another_role_is_refused(tmp_path, change, message):
    rows = write_design_results(tmp_path)
    change(next(ck for ck in rows if ck["name"] == DESIGN_CONTROL))
    with pytest.raises(DesignError, match=message):
        build_design(rows)


def test_design_contradictions_are_named(tmp_path):
    rows = write_design_results(tmp_path)
    bad = [dict(ck) for ck in rows]
    bad[1]["level"] = "2"          # pt-glyphs-L1-d0-s1 at another level than s0
    with pytest.raises(DesignError, match=r"training set 'glyphs-L1-d0' has level '1' for checkpoint "
                                          r"'pt-glyphs-L1-d0-s0' but '2' for 'pt-glyphs-L1-d0-s1'"):
        build_design(bad)
    bad = [dict(ck) for ck in rows]
    bad[1]["replicate"] = 0
    with pytest.raises(DesignError, match=r"'pt-glyphs-L1-d0-s0' and 'pt-glyphs-L1-d0-s1' are both replicate 0"):
        build_design(bad)
    bad = [dict(ck) for ck in rows]
    bad[1]["replicate"] = True
    with pytest.raises(DesignError, match="replicate True: expected a seed index"):
        build_design(bad)
    # a level given as a number is the same label as its text
    numeric = [dict(ck, level=int(ck["level"])) if ck["level"] else dict(ck) for ck in rows]
    assert build_design(numeric)["level"].tolist() == build_design(rows)["level"].tolist()


def _edit(path, fn):
    doc = json.loads(open(path).read())
    fn(doc)
    open(path, "w").write(json.dumps(doc))


def test_training_and_noise_floor_fields_are_checked(tmp_path):
    rows = write_design_results(tmp_path)
    ck = next(r for r in rows if r["name"] == "maml-glyphs-L4-d0-s1")
    _edit(ck["eval"], lambda d: d["training"].update(final_accuracy=80.0))
    with pytest.raises(ResultFileError, match=r"maml-glyphs-L4-d0-s1\.json: training\.final_accuracy: 80\.0 is not a "
                                              r"fraction"):
        build_design(rows)
    _edit(ck["eval"], lambda d: d["training"].update(final_accuracy=0.8, steps=12.5))
    with pytest.raises(ResultFileError, match=r"training\.steps: expected a whole number"):
        build_design(rows)
    _edit(ck["eval"], lambda d: d["training"].update(steps=237, stopped_by="timeout"))
    with pytest.raises(ResultFileError, match=r"training\.stopped_by: expected 'criterion', 'cap' or null, got 'timeout'"):
        build_design(rows)
    _edit(ck["eval"], lambda d: d["training"].update(stopped_by="cap"))
    table = build_design(rows).set_index("checkpoint")
    assert (table.loc["maml-glyphs-L4-d0-s1", "train_steps"], table.loc["maml-glyphs-L4-d0-s1", "stopped_by"]) == (237, "cap")
    assert (table.drop(index="maml-glyphs-L4-d0-s1")["stopped_by"] == "").all()  # files from before the rule: empty
    _edit(ck["eval"], lambda d: d.update(training=[1, 2]))
    with pytest.raises(ResultFileError, match=r"field 'training': expected \{final_loss, final_accuracy, steps\}"):
        build_design(rows)
    _edit(ck["eval"], lambda d: d.update(training={"final_loss": "low"}))
    with pytest.raises(ResultFileError, match=r"training: field 'final_loss': expected a number, got 'low'"):
        build_design(rows)
    _edit(ck["eval"], lambda d: d.update(training=None))
    assert math.isnan(build_design(rows).set_index("checkpoint").loc["maml-glyphs-L4-d0-s1", "final_train_loss"])

    _edit(ck["diversity"], lambda d: d.update(noise_floor=-0.01))
    with pytest.raises(ResultFileError, match=r"glyphs-L4-d0\.json: field 'noise_floor': -0\.01 is not a distance"):
        build_design(rows)
    _edit(ck["diversity"], lambda d: d.update(noise_floor=None))
    assert build_design(rows).set_index("train_set").loc["glyphs-L4-d0", "noise_floor"].isna().all()

    control = next(r for r in rows if r["role"] == "control")
    _edit(control["eval"], lambda d: d.update(training={"final_loss": 0.4, "final_accuracy": 0.9, "steps": 400}))
    with pytest.raises(ResultFileError, match=r"pt-untrained\.json: training\.steps is 400, but checkpoint "
                                              r"'pt-untrained' is a control"):
        build_design(rows)
    _edit(control["eval"], lambda d: d.update(training=None, train_set="glyphs-L1-d0"))
    with pytest.raises(ResultFileError, match=r"field 'train_set' is 'glyphs-L1-d0', but checkpoint 'pt-untrained' "
                                              "is a control"):
        build_design(rows)


def test_result_paths_skip_the_controls_diversity():
    rows = [{"name": "a", "train_set": "t", "eval": "e/a.json", "diversity": "d/t.json", "role": "trained"},
            {"name": "c", "train_set": None, "eval": "e/c.json", "diversity": None, "role": "control"}]
    assert result_paths(rows) == ({"a": "e/a.json", "c": "e/c.json"}, {"t": "d/t.json"})
