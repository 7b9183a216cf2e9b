"""MiniImageNet pixels as ultimate-utils fed them (divcoeff.fewshot.pixels): for data_augmentation lee2019,
hdb1 and hdb4_micod its transform starts with ToPILImage() on learn2learn's float 0-255 tensors, which wraps
the values; a checkpoint recording one of those is evaluated on wrapped pixels. Checked against torchvision's
own transforms applied as ultimate-utils applies them."""
import numpy as np
import pytest
import torch
from torchvision.transforms import Compose, Normalize, ToPILImage, ToTensor

from divcoeff.data.episodes import sample_episodes
from divcoeff.fewshot import evaluate_checkpoint
from divcoeff.fewshot.features import input_spec, load_inputs
from divcoeff.fewshot.pixels import augmentation_for, recorded_augmentation, wrapped_benchmarks
from divcoeff.models.resnet12 import ResNet12
from divcoeff.settings import EvaluationSettings

PRE16 = {"image_size": 16, "channels": 1, "mean": [0.5], "std": [0.25]}
NORM = {"mean": [0.45], "std": [0.28]}


class Ckpt:
    def __init__(self, model, family, meta):
        self.model, self.family, self.preprocess, self.meta = model, family, PRE16, meta


def as_mini_imagenet(view, pixels="as_stored"):
    """The synthetic benchmark, read as if the mini-imagenet reader had built it."""
    view.meta["normalisation"] = {"synth": NORM}
    view._dataset("synth").manifest["build"].update(reader="mini-imagenet", pixels=pixels)
    return view


def uutils_test_transform(view, rows):
    """ultimate-utils' lee2019 test transform on learn2learn's item (the uint8 pixels as a float tensor,
    C x H x W, 0..255): ToPILImage(), ToTensor(), Normalize."""
    ds = view._dataset("synth")
    ids = view.table["image_id"].to_numpy()[rows]
    t = Compose([ToPILImage(), ToTensor(), Normalize(NORM["mean"], NORM["std"])])
    return torch.stack([t(torch.from_numpy(np.array(ds.images[i])).permute(2, 0, 1).float()) for i in ids])


def test_the_recorded_value_is_read_and_a_setting_overrides_it():
    meta = {"args_dict": {"data_augmentation": "hdb4_micod", "lr": 1e-3}}
    assert recorded_augmentation(meta) == "hdb4_micod" and recorded_augmentation({}) is None
    assert recorded_augmentation({"args": {"data_augmentation": "lee2019"}}) == "lee2019"
    assert augmentation_for("a", meta, {}) == ("hdb4_micod", "the checkpoint's args_dict")
    assert augmentation_for("a", meta, {"a": "original_rfs"}) == ("original_rfs", "evaluation.data_augmentation")
    assert augmentation_for("a", meta, {"a": None})[0] is None
    assert augmentation_for("b", {}, {"a": "lee2019"}) == (None, "not recorded")


def test_wrapped_inputs_are_what_topilimage_on_float_pixels_gives(make_view):
    view = as_mini_imagenet(make_view(split="test"))
    rows = np.arange(12)
    plain = load_inputs(view, rows, input_spec(PRE16, 1, view, normalisation="dataset"))
    spec = input_spec(PRE16, 1, view, normalisation="dataset")
    wrapped = load_inputs(view, rows, type(spec)(**{**spec.__dict__, "wrapped": ("synth",)}))
    expected = uutils_test_transform(view, rows)
    torch.testing.assert_close(wrapped, expected, rtol=0, atol=1e-6)
    assert (plain - expected).abs().max() > 1.0  # the stand-in's wrapped and plain images differ


@pytest.mark.parametrize("augmentation, stored, wrap", [
    ("lee2019", "as_stored", True), ("hdb1", "as_stored", True), ("hdb4_micod", "as_stored", True),
    ("original_rfs", "as_stored", False), (None, "as_stored", False),
    ("original_rfs", "byte_wrapped", True),   # stored wrapped: unwrapped again (the wrap is its own inverse)
    ("hdb4_micod", "byte_wrapped", False),
])
def test_which_benchmarks_are_wrapped(make_view, augmentation, stored, wrap):
    view = as_mini_imagenet(make_view(split="test"), pixels=stored)
    assert wrapped_benchmarks(view, augmentation) == (("synth",) if wrap else ())
    view._dataset("synth").manifest["build"]["reader"] = "cifar-fs"  # only MiniImageNet went through it
    assert wrapped_benchmarks(view, augmentation) == ()


def settings(**changes):
    base = {"name": "held", "benchmarks": ["synth"], "protocol": "published", "calibrate_temperature": False,
            "pt_methods": ["logreg"]}
    return EvaluationSettings.from_config({**base, **changes})


def test_a_checkpoint_trained_with_hdb4_micod_is_evaluated_on_wrapped_pixels(make_view):
    view = as_mini_imagenet(make_view(split="test"))
    eps = sample_episodes(view, 5, 3, 2, 4, seed=5)
    torch.manual_seed(0)
    net = ResNet12([4, 8, 8, 12], in_channels=1, num_classes=7, drop_rate=0.0, dropblock_size=2).eval()
    micod = Ckpt(net, "pt", {"args_dict": {"data_augmentation": "hdb4_micod"}})
    res = evaluate_checkpoint(micod, view, eps, settings(), progress=False, name="usl-hdb4")
    assert res.input.as_dict()["wrapped_pixels"] == ["synth"]
    rfs = Ckpt(net, "pt", {"args_dict": {"data_augmentation": "original_rfs"}})
    plain = evaluate_checkpoint(rfs, view, eps, settings(), progress=False, name="usl-hdb4")
    assert "wrapped_pixels" not in plain.input.as_dict()
    assert not np.allclose(res.methods["logreg"].loss, plain.methods["logreg"].loss)
    # the setting wins over the file: the same numbers as the file that says so
    forced = evaluate_checkpoint(rfs, view, eps, settings(data_augmentation={"usl-hdb4": "lee2019"}), progress=False,
                                 name="usl-hdb4")
    np.testing.assert_array_equal(forced.methods["logreg"].loss, res.methods["logreg"].loss)
