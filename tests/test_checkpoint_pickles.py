"""What a checkpoint's pickle may ask for (issues 13 and 15).

The published ultimate-utils checkpoints carry class references, argparse Namespaces and
pathlib paths: they load by default, without ultimate-utils and without running anything.
Everything else is refused, naming every global the file needs; `allow_pickle` loads any
file torch's restricted loader refuses. Files that are not checkpoints say what they are.
"""
import argparse
import importlib
import logging
import os
import pathlib
import pickle
import sys
import zipfile

import numpy as np
import pytest
import torch

from divcoeff.checkpoints import CheckpointError, load_checkpoint
from divcoeff.models import ResNet12
from test_checkpoints import NARROW, random_state
from test_resnet12 import published_shapes

AGENT = "uutils.torch_uu.meta_learners.maml_meta_learner.MAMLMetaLearner"


def _trained_model(seed=0):
    torch.manual_seed(seed)
    model = ResNet12(NARROW, in_channels=3, num_classes=5).train()
    model(torch.randn(16, 3, 32, 32))  # non-trivial BatchNorm statistics
    return model.eval()


def _outputs_equal(ck, model):
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        return torch.equal(ck.model(x), model(x))


def _fake_uutils(root, marker):
    """A throw-away `uutils` package: importing it, building its class or setting its state leaves a trace."""
    pkg = root / "uutils" / "torch_uu" / "meta_learners"
    pkg.mkdir(parents=True)
    for d in (root / "uutils", root / "uutils" / "torch_uu", pkg):
        (d / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write('imported {d.name}\\n')\n")
    (pkg / "maml_meta_learner.py").write_text(
        "MARKER = " + repr(str(marker)) + "\n"
        "class MAMLMetaLearner:\n"
        "    def __init__(self, lr=0.1):\n"
        "        self.lr = lr\n"
        "    def __setstate__(self, state):\n"
        "        open(MARKER, 'a').write('setstate ran\\n')\n")


def _forget_uutils():
    for name in [m for m in sys.modules if m == "uutils" or m.startswith("uutils.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def uutils_checkpoint(tmp_path, monkeypatch):
    """Save a checkpoint the way ultimate-utils' save_for_meta_learning does, with a fake uutils."""
    root, marker = tmp_path / "site", tmp_path / "uutils-was-touched"
    _fake_uutils(root, marker)
    monkeypatch.syspath_prepend(str(root))

    def make(name, extra=None, keep_importable=False):
        mod = importlib.import_module("uutils.torch_uu.meta_learners.maml_meta_learner")
        model = _trained_model()
        args = argparse.Namespace(
            path_to_save=pathlib.PosixPath("/home/brando/data/logs/logs_Jan01_run0"),
            log_root=pathlib.PosixPath("/home/brando/data/logs"),
            data_path=pathlib.PureWindowsPath("C:/data/l2l_data"),
            lr=1e-3, n_cls=5, k_shots=5, inner_lr=0.1, nb_inner_train_steps=5, first_order=True,
            agent_str=str(mod.MAMLMetaLearner))
        payload = {"training_mode": "iterations", "it": 3, "epoch_num": -1,
                   "args": args,
                   "args_dict": argparse.Namespace(**vars(args)),  # the other seeds' files: a Namespace here
                   "agent_type": mod.MAMLMetaLearner,
                   "model_state_dict": model.state_dict(),
                   "model_str": str(model),
                   "model_hps": {"avg_pool": True, "drop_rate": 0.0, "dropblock_size": 5, "num_classes": 5},
                   "model_option": "resnet12_rfs",
                   "opt_state_dict": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
                   "scheduler_str": "None", "scheduler_state_dict": None, **(extra(mod) if extra else {})}
        path = tmp_path / name
        torch.save(payload, path)
        _forget_uutils()
        if not keep_importable:
            sys.path.remove(str(root))
        marker.unlink(missing_ok=True)  # importing it here to save the file touched it
        return path, model

    yield make, marker
    _forget_uutils()


@pytest.mark.parametrize("keep_importable", [False, True], ids=["uutils-gone", "uutils-importable-but-untouched"])
def test_ultimate_utils_checkpoint_loads_by_default_without_running_it(uutils_checkpoint, keep_importable, caplog):
    make, marker = uutils_checkpoint
    path, model = make("ckpt.pt", keep_importable=keep_importable)
    with caplog.at_level(logging.WARNING):
        ck = load_checkpoint(path, family="maml")
    assert _outputs_equal(ck, model)
    assert ck.family == "maml" and ck.num_classes == 5
    assert ck.meta["agent_type"] == AGENT
    assert ck.meta["args"]["path_to_save"] == "/home/brando/data/logs/logs_Jan01_run0"
    assert ck.meta["args_dict"]["data_path"] == "C:\\data\\l2l_data"
    assert ck.meta["args"]["lr"] == 1e-3 and ck.meta["it"] == 3 and ck.meta["model_option"] == "resnet12_rfs"
    # nothing from uutils was imported or run, and no pickle was trusted
    assert not marker.exists(), marker.read_text()
    assert not any(m == "uutils" or m.startswith("uutils.") for m in sys.modules)
    assert not any("allow_pickle" in r.getMessage() for r in caplog.records)
    # the family comes from the agent type when the sheet does not give it
    assert load_checkpoint(path).family == "maml"


def test_an_object_of_a_stand_in_class_is_refused_unless_allowed(uutils_checkpoint, caplog):
    make, marker = uutils_checkpoint
    path, model = make("agent.pt", extra=lambda mod: {"agent": mod.MAMLMetaLearner(lr=0.5)}, keep_importable=True)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, family="maml")
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and f"builds an object of class '{AGENT}'" in msg
    assert "would run code" in msg and "allow_pickle" in msg
    assert not marker.exists(), marker.read_text()
    # trusted: the object becomes an inert record of its state; uutils is still never imported
    with caplog.at_level(logging.WARNING):
        ck = load_checkpoint(path, family="maml", allow_pickle=True)
    assert _outputs_equal(ck, model)
    assert ck.meta["agent"] == {"global": AGENT, "state": {"lr": 0.5}}
    assert not marker.exists(), marker.read_text()
    assert any("allow_pickle" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


def test_stand_ins_cannot_be_called_built_or_given_state():
    from divcoeff.unpickling import InertGlobalUsed, stand_in

    cls = stand_in("uutils.torch_uu.agents", "Agent")
    assert cls is stand_in("uutils.torch_uu.agents", "Agent")  # one per name
    assert cls.global_name == "uutils.torch_uu.agents.Agent" and "uutils.torch_uu.agents.Agent" in repr(cls)
    for attempt in (lambda: cls(), lambda: cls(1, x=2), lambda: cls.__new__(cls),
                    lambda: object.__new__(cls).__setstate__({"a": 1})):
        with pytest.raises(InertGlobalUsed, match=r"uutils\.torch_uu\.agents\.Agent"):
            attempt()


class _RunsCode:
    """Pickles as a call of `func(*args)`; saving it runs nothing."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def test_pickle_that_would_run_code_is_refused_naming_every_global(tmp_path):
    shell_marker, eval_marker = tmp_path / "shell-ran", tmp_path / "eval-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": random_state(published_shapes(NARROW, 3, 5)),
                "x": _RunsCode(os.system, f"touch {shell_marker}"),
                "y": _RunsCode(eval, f"open({str(eval_marker)!r}, 'w')"),
                "z": _RunsCode(os.system, "true")}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, family="pt")
    msg = str(info.value)
    assert msg.startswith(f"{path}: refused: loading it would run code from the file"), msg
    # every disallowed global, once each, in file order, with what it does
    assert ("2 globals that are not plain data: 'posix.system' (runs a shell command), "
            "'builtins.eval' (evaluates Python code)") in msg, msg
    assert "allow_pickle" in msg and "truncated" not in msg and "corrupt" not in msg
    assert not shell_marker.exists() and not eval_marker.exists()


def test_legacy_format_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil-legacy.pt"
    marker = tmp_path / "eval-ran"
    torch.save({"model_state_dict": random_state(published_shapes(NARROW, 3, 5)),
                "y": _RunsCode(eval, f"open({str(marker)!r}, 'w')")}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"refused: loading it would run code from the file.*"
                                              r"1 global that is not plain data: 'builtins.eval'"):
        load_checkpoint(path, family="pt")
    assert not marker.exists()


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


PROTOCOL_4 = "uses pickle protocol 4 (opcode FRAME), which torch's restricted loader (weights_only=True) does not read"


@pytest.mark.parametrize("how", ["torch-zip-protocol-4", "torch-legacy-protocol-4", "pickle.dump-protocol-4"])
def test_files_torch_cannot_read_restricted_say_why_and_load_when_allowed(tmp_path, how, caplog):
    model = _trained_model(1)
    path = tmp_path / "p4.pt"
    payload = {"model_state_dict": _weights(model), "it": 7}
    if how == "torch-zip-protocol-4":
        torch.save(payload, path, pickle_protocol=4)
        reason = PROTOCOL_4
    elif how == "torch-legacy-protocol-4":
        torch.save(payload, path, pickle_protocol=4, _use_new_zipfile_serialization=False)
        reason = PROTOCOL_4
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))
        reason = "a plain Python pickle (written by pickle.dump, not torch.save)"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, family="pt")
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and reason in msg, msg
    assert "allow_pickle" in msg and "()" not in msg and "corrupt" not in msg
    with caplog.at_level(logging.WARNING):
        ck = load_checkpoint(path, family="pt", allow_pickle=True)
    assert _outputs_equal(ck, model) and ck.meta["it"] == 7
    assert any("allow_pickle" in r.getMessage() for r in caplog.records)


def _real_checkpoint_bytes(tmp_path):
    p = tmp_path / "real.pt"
    torch.save({"model_state_dict": random_state(published_shapes(NARROW, 3, 5))}, p)
    return p.read_bytes()


def _zip_bytes(tmp_path):
    p = tmp_path / "other.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("images/a.png", b"\x89PNG....")
        zf.writestr("README", b"hello")
    return p.read_bytes()


NOT_CHECKPOINTS = {
    "random": (lambda tmp: np.random.default_rng(3).bytes(5000),
               "unrecognised binary data (5,000 bytes, starting "),
    "truncated-zip": (lambda tmp: _real_checkpoint_bytes(tmp)[:3000],
                      "a truncated or damaged zip archive (3,000 bytes"),
    "html": (lambda tmp: b"\n<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>",
             "an HTML page"),
    "empty": (lambda tmp: b"", "the file is empty (0 bytes)"),
    "text": (lambda tmp: b'{"status": 403, "message": "Forbidden"}', "a text file, starting '{\"status\": 403"),
    "truncated-pickle": (lambda tmp: b"\x80\x02]q\x00(", "a pickle that ends before its end (truncated?)"),
    "zip-of-other-things": (lambda tmp: _zip_bytes(tmp),
                            "a zip archive without data.pkl (members: images/a.png, README)"),
}


@pytest.mark.parametrize("kind", list(NOT_CHECKPOINTS))
@pytest.mark.parametrize("allow_pickle", [False, True])
def test_files_that_are_not_checkpoints_say_what_they_are(tmp_path, kind, allow_pickle):
    make, what = NOT_CHECKPOINTS[kind]
    path = tmp_path / "ckpt.pt"
    path.write_bytes(make(tmp_path))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, family="pt", allow_pickle=allow_pickle)
    msg = str(info.value)
    assert msg.startswith(f"{path}: not a torch checkpoint: {what}"), msg
    assert "fetch" in msg


def test_damaged_data_in_a_checkpoint_is_named(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"model_state_dict": random_state(published_shapes(NARROW, 3, 5))}, path,
               _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:-1000])  # the tensor data is cut short; the pickle is whole
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, family="pt")
    msg = str(info.value)
    assert msg.startswith(f"{path}: a torch checkpoint (legacy format) whose data torch could not read"), msg
    assert "unexpected EOF" in msg and "fetch" in msg


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning",
                            "ignore:'torch.load' received a zip file that looks like a TorchScript archive")
def test_torchscript_archive_is_named_and_loads_when_allowed(tmp_path):
    model = _trained_model(2)
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(model, torch.randn(2, 3, 32, 32)), str(path))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, family="maml")
    msg = str(info.value)
    assert msg.startswith(f"{path}: a TorchScript archive (torch.jit.save), which holds code"), msg
    assert "allow_pickle" in msg
    ck = load_checkpoint(path, family="maml", allow_pickle=True)
    assert _outputs_equal(ck, model) and ck.meta["source_format"] == "module"
