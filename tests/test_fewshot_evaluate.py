"""Evaluating a checkpoint end to end: output files, determinism, the image-size policy."""
import numpy as np
import pytest
import torch

from divcoeff.checkpoints import load_checkpoint, save_checkpoint
from divcoeff.data.episodes import sample_episodes
from divcoeff.fewshot import InputMismatchError, evaluate_checkpoint, write_results
from divcoeff.settings import ConfigError, EvaluationSettings, MamlEvalSettings
from divcoeff.io import read_json
from divcoeff.models.resnet12 import ResNet12

PRE16 = {"image_size": 16, "channels": 1, "mean": [0.5], "std": [0.25]}


def checkpoint(tmp_path, family, preprocess=PRE16, seed=0):
    torch.manual_seed(seed)
    model = ResNet12([4, 8, 8, 12], in_channels=1, num_classes=5 if family == "maml" else 7)
    path = tmp_path / f"{family}.pt"
    save_checkpoint(path, model, family, preprocess, {"train_set": "synth"})
    return load_checkpoint(path, family=family)


@pytest.fixture
def setup(make_view):
    view = make_view(split="test")  # 15 classes of 10 images, 16x16 grey
    return view, sample_episodes(view, 5, 3, 2, 6, seed=5)


def settings(**changes):
    return EvaluationSettings.from_config({"name": "held", "benchmarks": ["synth"], **changes})


SETTINGS = settings(calibration_folds=3, maml={"inner_steps": 2, "inner_lr": 0.05, "calibration_episodes": 2})


@pytest.mark.parametrize("family", ["pt", "maml"])
def test_evaluation_files_and_same_seed_same_results(tmp_path, setup, family):
    view, eps = setup
    ck = checkpoint(tmp_path, family)
    header = {"checkpoint": family, "train_set": "synth", "episodes": "e.json", "n_episodes": 6, "ways": 5,
              "shots": 3, "queries": 2, "seed": 5}
    first = evaluate_checkpoint(ck, view, eps, SETTINGS, progress=False)
    doc = write_results(tmp_path / "out.json", tmp_path / "out.npz", first, header)
    again = evaluate_checkpoint(checkpoint(tmp_path, family), view, sample_episodes(view, 5, 3, 2, 6, seed=5),
                                SETTINGS, progress=False)
    methods = ["logreg", "proto"] if family == "pt" else ["maml"]
    assert list(first.methods) == methods
    assert read_json(tmp_path / "out.json") == doc and doc["family"] == family and doc["seed"] == 5
    with np.load(tmp_path / "out.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(f"{m}_{k}" for m in methods
                                           for k in ("accuracy", "loss", "loss_calibrated"))
        for m in methods:
            for k in ("accuracy", "loss", "loss_calibrated"):
                a = npz[f"{m}_{k}"]
                assert a.dtype == np.float64 and a.shape == (6,)
                np.testing.assert_array_equal(a, getattr(again.methods[m], k))  # bit-identical rerun
            # accuracy is a fraction of the 5*2 queries; the summary is the mean of the episodes
            assert np.all(np.isin(npz[f"{m}_accuracy"] * 10, np.arange(11)))
            assert doc["methods"][m]["accuracy"]["mean"] == pytest.approx(npz[f"{m}_accuracy"].mean())
            assert doc["methods"][m]["calibration"]["fitted"]
            assert np.isfinite(npz[f"{m}_loss_calibrated"]).all()


def test_calibration_uses_no_query_label(tmp_path, setup):
    view, eps = setup
    ck = checkpoint(tmp_path, "pt")
    base = evaluate_checkpoint(ck, view, eps, SETTINGS, progress=False)
    swapped = sample_episodes(view, 5, 3, 2, 6, seed=5)
    swapped.query = swapped.query[:, ::-1].copy()  # same support sets, query classes relabelled
    other = evaluate_checkpoint(ck, view, swapped, SETTINGS, progress=False)
    for m in ("logreg", "proto"):
        assert base.methods[m].calibration["temperature"] == other.methods[m].calibration["temperature"]
        assert not np.array_equal(base.methods[m].accuracy, other.methods[m].accuracy)


def test_image_size_mismatch_is_an_error_naming_both_sizes(tmp_path, setup):
    view, eps = setup
    ck = checkpoint(tmp_path, "pt", {"image_size": 28, "channels": 1, "mean": [0.5], "std": [0.25]})
    with pytest.raises(InputMismatchError) as err:
        evaluate_checkpoint(ck, view, eps, SETTINGS, name="pt-28", progress=False)
    msg = str(err.value)
    assert "pt-28" in msg and "28x28" in msg and "16x16" in msg and "resize_to_checkpoint" in msg
    # Only when asked explicitly are the images brought to the checkpoint's size.
    ok = evaluate_checkpoint(ck, view, eps, settings(resize_to_checkpoint=True, calibrate_temperature=False),
                             progress=False)
    assert ok.input.image_size == 28 and ok.input.resized
    assert ok.methods["logreg"].calibration == {"fitted": False, "why": "off (calibrate_temperature: false)"}


def test_settings_from_config_section():
    s = settings(pt_methods=["logreg"], logreg_C=0.5, calibration_folds=2,
                 maml={"inner_steps": 4, "inner_lr": 0.2, "bn_mode": "running", "calibration_episodes": 7})
    assert s.pt_methods == ("logreg",) and s.logreg_C == 0.5 and s.calibration_folds == 2
    # Every key the config leaves out takes the schema's default, and nothing else's.
    assert s.maml == MamlEvalSettings(inner_steps=4, inner_lr=0.2, first_order=True, bn_mode="running",
                                      calibration_episodes=7)
    assert s.calibrate_temperature is True and s.episodes == 600 and s.split == "test"
    # A compute key is not a result setting: it belongs to compute.evaluate.
    with pytest.raises(ConfigError, match="batch_size"):
        settings(batch_size=64)


def test_protocols_and_pt_methods_are_registries_of_the_schemas_enums():
    """A protocol or PT method is one registry line: the schema's enum and the registry name the same."""
    from divcoeff.fewshot.evaluate import PT_METHODS
    from divcoeff.fewshot.protocols import PROTOCOLS
    from divcoeff.settings import subschema

    assert sorted(PROTOCOLS) == sorted(subschema("evaluation.protocol")["enum"])
    assert sorted(PT_METHODS) == sorted(subschema("evaluation.pt_methods")["items"]["enum"])
    for name, protocol in PROTOCOLS.items():
        assert protocol.normalisation in ("checkpoint", "dataset"), name
        assert set(protocol.notes) == {*PT_METHODS, "maml"}, name
