"""divcoeff.checkpoints: published layouts, learn2learn names, refusals that name file and key, our format."""
import argparse
import logging
import re

import numpy as np
import pytest
import torch

from divcoeff.checkpoints import (CheckpointError, load_checkpoint, preprocess_images, save_checkpoint)
from divcoeff.models import ResNet12
from test_resnet12 import published_shapes

NARROW = (4, 6, 8, 10)


def random_state(shapes, seed=0):
    """A state dict built from names and shapes alone (not from our model)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(shape, generator=g)
    return state


def test_published_rfs_file_loads_with_shapes_inferred(tmp_path):
    state = random_state(published_shapes())
    path = tmp_path / "rfs.pt"
    torch.save({"model_state_dict": state, "model_option": "resnet12_rfs",
                "model_hps": {"avg_pool": True, "drop_rate": 0.1, "dropblock_size": 5, "num_classes": 64},
                "args_dict": {"lr": 1e-3, "data_option": "mini-imagenet"}, "it": 100, "epoch_num": 3,
                "optimizer_state_dict": {"state": {}, "param_groups": []}}, path)
    ck = load_checkpoint(path, family="pt")
    assert ck.family == "pt" and ck.num_classes == 64
    assert ck.model.widths == (64, 160, 320, 640) and ck.model.in_channels == 3 and ck.model.drop_rate == 0.1
    loaded = ck.model.state_dict()
    for k, v in state.items():
        assert torch.equal(loaded[k], v), k
    assert not ck.model.training
    assert ck.meta["model_option"] == "resnet12_rfs" and ck.meta["it"] == 100
    assert ck.meta["args_dict"]["data_option"] == "mini-imagenet"
    assert "optimizer_state_dict" not in ck.meta and ck.meta["source_format"] == "model_state_dict"
    assert ck.meta["preprocess_assumed"] and ck.preprocess["image_size"] == 84 and len(ck.preprocess["mean"]) == 3


@pytest.mark.parametrize("layout", ["model", "state_dict", "bare"])
def test_older_layouts_load(tmp_path, layout):
    state = random_state(published_shapes(NARROW, 1, 5))
    path = tmp_path / f"{layout}.pt"
    torch.save(state if layout == "bare" else {layout: state, "epoch": 3}, path)
    ck = load_checkpoint(path, family="maml")
    assert ck.model.widths == NARROW and ck.model.in_channels == 1 and ck.num_classes == 5
    assert all(torch.equal(ck.model.state_dict()[k], v) for k, v in state.items())


def test_headless_state_dict_gives_a_feature_model(tmp_path):
    path = tmp_path / "backbone.pt"
    torch.save(random_state(published_shapes(NARROW, 3, 0)), path)
    ck = load_checkpoint(path, family="pt")
    assert ck.num_classes == 0 and ck.model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def _save_broken(tmp_path, edit):
    state = random_state(published_shapes(NARROW, 3, 5))
    edit(state)
    path = tmp_path / "broken.pt"
    torch.save({"model_state_dict": state}, path)
    return path


def _fails(path, *needles, **kw):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, **{"family": "pt", **kw})
    msg = str(info.value)
    assert str(path) in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_wrong_shape_names_file_and_key(tmp_path):
    path = _save_broken(tmp_path, lambda s: s.__setitem__("layer2.0.bn1.weight", torch.ones(5)))
    msg = _fails(path, "'layer2.0.bn1.weight'", "(5,)", "(6,)")
    assert "shape" in msg


def test_missing_key_names_file_and_key(tmp_path):
    path = _save_broken(tmp_path, lambda s: s.pop("layer3.0.conv2.weight"))
    _fails(path, "missing key 'layer3.0.conv2.weight'")


def test_missing_first_conv_names_file_and_key(tmp_path):
    path = _save_broken(tmp_path, lambda s: s.pop("layer1.0.conv1.weight"))
    _fails(path, "missing key 'layer1.0.conv1.weight'")


def test_unexpected_key_names_file_and_key(tmp_path):
    path = _save_broken(tmp_path, lambda s: s.__setitem__("fc.weight", torch.ones(5, 10)))
    _fails(path, "unexpected key 'fc.weight'")


def test_missing_num_batches_tracked_is_tolerated(tmp_path):
    path = _save_broken(tmp_path, lambda s: [s.pop(k) for k in list(s) if k.endswith("num_batches_tracked")])
    assert load_checkpoint(path, family="pt").num_classes == 5


def test_pickle_carrying_file_is_refused_unless_allowed(tmp_path, caplog):
    # a numpy scalar in the options (seen in published args): not plain data for torch's restricted loader
    path = tmp_path / "pickled.pt"
    state = random_state(published_shapes(NARROW, 3, 5))
    torch.save({"model_state_dict": state, "args_dict": argparse.Namespace(lr=np.float64(0.05), n_cls=5)}, path)
    msg = _fails(path, "allow_pickle",
                 "2 globals that are not plain data: 'numpy._core.multiarray.scalar', 'numpy.dtype'")
    assert "checkpoint sheet" in msg and "would run code" in msg
    with caplog.at_level(logging.WARNING):
        ck = load_checkpoint(path, family="pt", allow_pickle=True)
    assert ck.num_classes == 5 and torch.equal(ck.model.state_dict()["cls.bias"], state["cls.bias"])
    assert ck.meta["args_dict"] == {"lr": 0.05, "n_cls": 5}
    assert any("runs code from the file" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


def test_allow_pickle_is_not_used_for_a_safe_file(tmp_path, caplog):
    path = tmp_path / "safe.pt"
    torch.save({"model_state_dict": random_state(published_shapes(NARROW, 3, 5)),
                "opt": argparse.Namespace(lr=0.05)}, path)  # a Namespace is admitted: no trust needed
    with caplog.at_level(logging.WARNING):
        load_checkpoint(path, family="pt", allow_pickle=True)
    assert not any("runs code from the file" in r.getMessage() for r in caplog.records)


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all" * 10)
    _fails(bad, "not a torch checkpoint: a text file, starting 'not a checkpoint at all")
    _fails(tmp_path / "absent.pt", "not found")
    odd = tmp_path / "odd.pt"
    torch.save({"weights": [1, 2, 3]}, odd)
    _fails(odd, "no model weights found", "'weights'")


def _l2l_state(model, style):
    """Rename our keys to learn2learn's, by hand: 0.2 (features.layerN / classifier) or 0.1 (duplicates)."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("cls."):
            out["module.classifier." + k[4:]] = v
        elif style == "0.2":
            out["module.features." + k] = v
        else:
            out["module." + k] = v
            i = int(k[len("layer")]) - 1
            out[f"module.features.{i}" + k[len("layerN"):]] = v.clone()
    return out


@pytest.mark.parametrize("style", ["0.2", "0.1"])
def test_learn2learn_state_dict_loads_to_identical_outputs(tmp_path, style):
    torch.manual_seed(0)
    src = ResNet12(NARROW, in_channels=3, num_classes=5).train()
    src(torch.randn(16, 3, 32, 32))  # non-trivial running statistics
    src.eval()
    path = tmp_path / "l2l.pt"
    torch.save(_l2l_state(src, style), path)
    ck = load_checkpoint(path, family="maml")
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ck.model(x), src(x))
    assert ck.meta["naming"] == ("l2l" if style == "0.2" else "l2l_old")


def test_learn2learn_duplicates_that_disagree_are_refused(tmp_path):
    src = ResNet12(NARROW, in_channels=3, num_classes=5)
    state = _l2l_state(src, "0.1")
    state["module.features.1.0.conv2.weight"] = state["module.features.1.0.conv2.weight"] + 1
    path = tmp_path / "l2l.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=re.escape("features.1.0.conv2.weight differs")):
        load_checkpoint(path, family="maml")


PRE = {"image_size": 28, "channels": 1, "mean": [0.5], "std": [0.5]}


def test_our_format_round_trip(tmp_path):
    torch.manual_seed(0)
    model = ResNet12(NARROW, in_channels=1, num_classes=5).train()
    model(torch.randn(8, 1, 28, 28))
    model.eval()
    path = tmp_path / "ours.pt"
    meta = {"train_set": "glyphs-1s-d0", "steps": 10, "images_seen": 750, "seed": 123, "config_sha256": "ab" * 32,
            "history": {"loss": [2.0, 1.0]}}
    save_checkpoint(path, model, "maml", PRE, meta)
    raw = torch.load(path, weights_only=True)  # the contract: plain types only
    assert raw["format"] == "divcoeff-checkpoint/1" and raw["arch"] == "resnet12" and raw["family"] == "maml"
    assert raw["model_hps"] == model.hps
    ck = load_checkpoint(path)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(ck.model(x), model(x))
    assert ck.family == "maml" and ck.num_classes == 5 and ck.preprocess == PRE
    for k, v in meta.items():
        assert ck.meta[k] == v
    assert not list(tmp_path.glob(".ours.pt.*"))  # no temporary left behind
    _fails(path, "'maml' checkpoint but 'pt' was asked for", family="pt")


def test_save_refuses_what_weights_only_could_not_read(tmp_path):
    model = ResNet12(NARROW, in_channels=1, num_classes=5)
    with pytest.raises(TypeError, match=r"meta_obj.*Namespace"):
        save_checkpoint(tmp_path / "x.pt", model, "pt", PRE, {"meta_obj": argparse.Namespace(a=1)})
    with pytest.raises(TypeError, match=r"meta_np.*float64"):
        save_checkpoint(tmp_path / "x.pt", model, "pt", PRE, {"meta_np": [np.float64(1.0)]})
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", model, "pt", PRE, {"family": "maml"})
    assert not (tmp_path / "x.pt").exists()


def test_published_file_without_family_needs_one(tmp_path):
    path = tmp_path / "anon.pt"
    torch.save(random_state(published_shapes(NARROW, 3, 5)), path)
    _fails(path, "pass family", family=None)
    hinted = tmp_path / "maml.pt"
    torch.save({"model_state_dict": random_state(published_shapes(NARROW, 3, 5)), "agent_type": "MAMLMetaLearner"},
               hinted)
    assert load_checkpoint(hinted).family == "maml"


def test_preprocess_images_resizes_converts_and_normalises():
    x = torch.full((2, 1, 28, 28), 0.75)
    out = preprocess_images(x, {"image_size": 32, "channels": 3, "mean": [0.5, 0.25, 0.0], "std": [0.5, 0.5, 0.25]})
    assert out.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out[:, 0], torch.full((2, 32, 32), 0.5))
    torch.testing.assert_close(out[:, 1], torch.full((2, 32, 32), 1.0))
    torch.testing.assert_close(out[:, 2], torch.full((2, 32, 32), 3.0))


@pytest.mark.parametrize("content", [b"this is not a checkpoint", b"\x80\x02]q\x00(", b""])
def test_garbage_bytes_give_a_clear_error_naming_the_file(tmp_path, content):
    from divcoeff.checkpoints import CheckpointError, load_checkpoint

    path = tmp_path / "garbage.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"garbage\.pt: not a torch checkpoint: "):
        load_checkpoint(path)


@pytest.mark.parametrize("key,value", [("layer2.0.conv1.weight", float("nan")),
                                       ("layer3.0.bn2.running_var", float("inf")),
                                       ("cls.bias", float("-inf")),
                                       ("layer1.0.downsample.1.running_mean", float("nan"))])
def test_non_finite_weights_are_refused_naming_file_and_key(tmp_path, key, value):
    path = _save_broken(tmp_path, lambda s: s[key].view(-1).__setitem__(1, value))
    numel = torch.Size(published_shapes(NARROW, 3, 5)[key]).numel()
    kind = "NaN" if value != value else "inf"
    _fails(path, f"key {key!r} holds non-finite values (1 {kind} of {numel}). ")


def test_non_finite_values_in_several_keys_are_all_counted(tmp_path):
    def edit(s):
        s["layer1.0.bn1.running_mean"][:] = float("nan")
        s["layer4.0.conv3.weight"].view(-1)[0] = float("inf")
    path = _save_broken(tmp_path, edit)
    _fails(path, "key 'layer1.0.bn1.running_mean' holds non-finite values (4 NaN of 4)",
           "and 1 more key: 'layer4.0.conv3.weight'")


def test_our_own_checkpoint_with_non_finite_statistics_is_refused(tmp_path):
    path = tmp_path / "ours.pt"
    save_checkpoint(path, ResNet12(NARROW, in_channels=1, num_classes=5), "pt", PRE)
    # A file damaged after it was written (save_checkpoint itself refuses NaN, below).
    raw = torch.load(path, weights_only=True)
    raw["model_state_dict"]["layer2.0.bn3.running_var"][2] = float("nan")
    torch.save(raw, path)
    _fails(path, "key 'layer2.0.bn3.running_var' holds non-finite values (1 NaN of 6)")


@pytest.mark.parametrize("value, kind", [(float("nan"), "NaN"), (float("inf"), "inf"), (float("-inf"), "inf")])
def test_save_refuses_non_finite_weights_naming_key_and_count_and_writes_nothing(tmp_path, value, kind):
    model = ResNet12(NARROW, in_channels=1, num_classes=5)
    with torch.no_grad():
        model.layer3[0].conv2.weight.view(-1)[:3] = value  # 8 x 8 x 3 x 3
        model.cls.bias[0] = float("nan")
    path = tmp_path / "diverged.pt"
    with pytest.raises(CheckpointError) as e:
        save_checkpoint(path, model, "pt", PRE)
    msg = str(e.value)
    assert msg.startswith(f"save_checkpoint {path}: refused: key 'layer3.0.conv2.weight' holds non-finite values "
                          f"(3 {kind} of {8 * 8 * 3 * 3}) (and 1 more key: 'cls.bias')")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one
