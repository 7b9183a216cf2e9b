"""Checkpoint files: our own format, and the published ResNet-12 files (docs/formats.md section 4).

One function reads them all, :func:`load_checkpoint`. It never runs code from a file unless the
file's sheet row says to trust it:

1. The file is scanned without unpickling (:func:`divcoeff.unpickling.scan_checkpoint`): what it
   is (torch zip, torch's legacy format, a plain pickle, TorchScript; or, if none of these, what
   it looks like: empty, a truncated zip, an HTML page...) and every global its pickle names.
2. If every global is admitted (torch's tensor types; ``argparse.Namespace``; ``pathlib`` paths;
   classes of the authors' packages such as ``uutils`` as inert stand-ins, see
   :mod:`divcoeff.unpickling`), it is read by ``torch.load(weights_only=True)`` with those extra
   names allowlisted. The published ultimate-utils files load this way, without ultimate-utils.
3. Otherwise it is refused with a message naming the file, every global it needs and what the
   sheet column ``allow_pickle`` does. With ``allow_pickle=True`` (the explicit per-row opt-in)
   such a file is read with Python's unpickler, which runs code from it, and the log says so.

Weights and BatchNorm statistics must be finite: NaN or inf in any of them is an error (at save,
so a diverged training job fails where it diverged, and at load) naming the file, the key and the
count (such a model would be scored at chance, or fail later).

Accepted layouts, tried in this order:

* ours: a dict with ``format: "divcoeff-checkpoint/1"`` (written by :func:`save_checkpoint`):
  the architecture comes from its ``model_hps``, the family and preprocessing from the file;
* a dict holding the weights under ``model_state_dict`` (Brando's RFS/MAML files), ``model``
  (older RFS files) or ``state_dict``, the rest (``model_hps``, ``args_dict``, ``it``, ...)
  kept as metadata;
* a bare state dict.

Key names: ours/RFS as they are, learn2learn's by the documented map in
:mod:`divcoeff.models.keymaps` (``module.`` prefixes removed). For published files the widths,
input channels and head size are read off the tensor shapes (``layer{i}.0.conv1.weight``,
``cls.weight``). Missing keys, unexpected keys and shape mismatches are errors that name the
file and the key. The only tolerated gap is ``*.num_batches_tracked`` (absent from files
written before PyTorch 0.4.1; it only matters for BN with momentum=None).

Preprocessing: our checkpoints record what the training used (``image_size``, ``channels``,
per-channel ``mean``/``std`` applied to images in [0, 1]); :func:`preprocess_images` applies it.
Published files do not record it; they get RFS's MiniImageNet normalisation at 84x84 (32x32
when ``model_hps.dropblock_size`` is 2, the CIFAR setting), marked ``preprocess_assumed`` in
the metadata. Under the published evaluation protocol the dataset's normalisation replaces it
(divcoeff.fewshot.features.input_spec). Files without ``model_hps`` get RFS's dropout settings
(``hps_assumed`` in the metadata), which matter only in train() mode.
"""
from __future__ import annotations

import argparse
import logging
import os
import pickle
import pickletools
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Mapping

import torch
from torch import nn

from divcoeff.images import convert_images
from divcoeff.io import atomic_path
from divcoeff.models.keymaps import to_rfs_names
from divcoeff.models.resnet12 import ResNet12
from divcoeff.unpickling import (STAND_IN_PACKAGES, TRUSTING_PICKLE_MODULE, WEIGHTS_ONLY_LOCK, InertGlobalUsed,
                                 InertRecord, NotACheckpoint, PickleScan, load_plain_pickle_trusting,
                                 refused_globals, scan_checkpoint, stand_in_name, weights_only_allowlist,
                                 what_it_does)

log = logging.getLogger(__name__)

FORMAT = "divcoeff-checkpoint/1"
FAMILIES = ("pt", "maml")
ALLOW_PICKLE_OPTION = "allow_pickle"  # the sheet column (config/checkpoints.tsv) that opts a row in
# Keys our format reserves; metadata passed to save_checkpoint may not override them.
_RESERVED = ("format", "arch", "family", "model_hps", "preprocess", "model_state_dict")
# Top-level entries of published files that are training state, not metadata.
_TRAINING_STATE = re.compile(r"(optim|sched|state_dict$|^model$|^opt$)", re.I)
# RFS MiniImageNet normalisation (pixel mean/std / 255), the published files' default.
RFS_MEAN = [120.39586422 / 255.0, 115.59361427 / 255.0, 104.54012653 / 255.0]
RFS_STD = [70.68188272 / 255.0, 68.27635443 / 255.0, 72.54505529 / 255.0]
# Dropout/DropBlock of RFS's ResNet-12 (create_model: drop_rate=0.1, dropblock_size=5; 2 for CIFAR, which a
# file without model_hps cannot tell), for files that do not record theirs. Eval mode ignores them.
RFS_HPS = {"drop_rate": 0.1, "dropblock_size": 5}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded safely or does not fit the architecture."""


@dataclass
class LoadedCheckpoint:
    """A model ready for use (eval mode, CPU) and what is known about it."""

    model: ResNet12
    family: str                      # pt | maml
    num_classes: int                 # head size (0: no head)
    preprocess: dict                 # image_size, channels, mean, std
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------- saving

def save_checkpoint(path: str | os.PathLike, model: ResNet12, family: str, preprocess: Mapping,
                    meta: Mapping | None = None) -> None:
    """Write `model` in our format, atomically. `meta` (train_set, steps, images_seen, seed,
    config_sha256, ...) must hold plain types only (str, numbers, bool, None, lists, dicts, tensors),
    so that ``torch.load(weights_only=True)`` reads the file back."""
    if family not in FAMILIES:
        raise ValueError(f"save_checkpoint {path}: family must be one of {FAMILIES}, got {family!r}")
    missing = [k for k in ("image_size", "channels", "mean", "std") if k not in preprocess]
    if missing:
        raise ValueError(f"save_checkpoint {path}: preprocess lacks {missing}")
    meta = dict(meta or {})
    clash = [k for k in _RESERVED if k in meta]
    if clash:
        raise ValueError(f"save_checkpoint {path}: meta may not set the reserved key(s) {clash}")
    payload = {
        "format": FORMAT,
        "arch": "resnet12",
        "family": family,
        "model_hps": model.hps,
        "preprocess": dict(preprocess),
        **meta,
        # clone: a saved view would drag its whole storage into the file
        "model_state_dict": {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()},
    }
    _check_plain(payload, str(path))
    # Refused here, not only when loading: a diverged training job fails where it diverged.
    problem = non_finite(payload["model_state_dict"])
    if problem:
        raise CheckpointError(f"save_checkpoint {path}: refused: {problem}; training diverged (lower the "
                              "learning rate, or check the data); nothing was written")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _check_plain(obj: Any, where: str) -> None:
    # Exact types: subclasses (numpy scalars are floats, torch.__version__ is a str) pickle as their class.
    if obj is None or type(obj) in (str, bool, int, float) or isinstance(obj, torch.Tensor):
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    if type(obj) is dict:
        for k, v in obj.items():
            if type(k) not in (str, int):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}; only str/int keys load with weights_only")
            _check_plain(v, f"{where}.{k}")
        return
    raise TypeError(f"{where}: {type(obj).__name__} is not a plain type; weights_only=True could not load it")


# -------------------------------------------------------------------------------------- loading

def load_checkpoint(path: str | os.PathLike, *, family: str | None = None, allow_pickle: bool = False,
                    map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Load any supported checkpoint file (see the module docstring) into a :class:`ResNet12`.

    `family` (pt|maml, the sheet's column) is required for published files that do not say
    which they are; for our files it must agree with the file. The model is returned in eval
    mode on `map_location`.
    """
    path = Path(path)
    if family is not None and family not in FAMILIES:
        raise ValueError(f"{path}: family must be one of {FAMILIES} or None, got {family!r}")
    obj = _torch_load(path, allow_pickle)
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        loaded = _load_ours(path, obj, family)
    else:
        loaded = _load_published(path, obj, family)
    loaded.meta["path"] = str(path)
    loaded.model.to(map_location).eval()
    return loaded


def _torch_load(path: Path, allow_pickle: bool) -> Any:
    """The unpickled file: restricted (torch's weights_only loader plus our admitted globals), or,
    for a file that needs more and whose sheet row trusts it, Python's unpickler."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        scan = scan_checkpoint(path)
    except NotACheckpoint as e:
        raise CheckpointError(f"{path}: not a torch checkpoint: {e}. Check the uri and checksum of its row in the "
                              "checkpoint sheet, then fetch it again.") from None
    except OSError as e:
        raise CheckpointError(f"{path}: could not be read ({e})") from None
    problem = _restricted_problem(scan)
    if problem is None:
        try:
            with WEIGHTS_ONLY_LOCK, torch.serialization.safe_globals(weights_only_allowlist(scan.globals)), \
                    warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected pickle protocol")  # our message says it
                return torch.load(path, map_location="cpu", weights_only=True)
        except InertGlobalUsed as e:
            what = (f"builds an object of class {e.global_name!r}" if "built" in e.action
                    else f"calls {e.global_name!r}" if e.action == "called" else f"sets state on {e.global_name!r}")
            problem = (f"refused: the file {what}, not only a reference to it; that would run code from the "
                       f"package {e.global_name.split('.')[0]!r}, which is never imported here")
        except pickle.UnpicklingError as e:
            problem = _weights_only_problem(scan, _weights_only_reason(str(e)))
        except Exception as e:  # noqa: BLE001 - the pickle was read; its data (storages, zip records) was not
            raise CheckpointError(f"{path}: a torch checkpoint ({scan.kind}) whose data torch could not read "
                                  f"({type(e).__name__}: {_first_line(e)}); the file is damaged or incomplete: "
                                  "fetch it again.") from None
    if not allow_pickle:
        raise CheckpointError(f"{path}: {problem}. If you trust the file and where it came from, set the column "
                              f"{ALLOW_PICKLE_OPTION!r} to true in its row of the checkpoint sheet.")
    log.warning("%s: loading with Python's unpickler, which runs code from the file, because its sheet row sets "
                "%s: true (%s)", path, ALLOW_PICKLE_OPTION, problem)
    try:
        if scan.kind == "plain pickle":
            return load_plain_pickle_trusting(path)
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=TRUSTING_PICKLE_MODULE)
    except Exception as e:  # noqa: BLE001 - any failure of an unpickler is the file's fault
        raise CheckpointError(f"{path}: could not be loaded even with {ALLOW_PICKLE_OPTION}: true "
                              f"({type(e).__name__}: {_first_line(e)})") from None


def _restricted_problem(scan: PickleScan) -> str | None:
    """Why the restricted load cannot read a scanned file, or None when it can try."""
    if scan.kind == "TorchScript archive":
        return ("a TorchScript archive (torch.jit.save), which holds code (its pickle names "
                f"{len(scan.globals)} globals such as {scan.globals[0]!r}); torch's restricted loader "
                "(weights_only=True) refuses it" if scan.globals else
                "a TorchScript archive (torch.jit.save), which holds code; torch's restricted loader "
                "(weights_only=True) refuses it")
    refused = refused_globals(scan.globals)
    if refused or scan.unresolved:
        listed = ", ".join(f"{g!r}{what_it_does(g)}" for g in refused)
        n = len(refused)
        text = f"{n} global{'s' if n != 1 else ''} that {'are' if n != 1 else 'is'} not plain data: {listed}"
        if scan.unresolved:
            text += f"{'; and ' if n else ''}{scan.unresolved} whose names are computed while loading"
        plain = (". It is a plain Python pickle (written by pickle.dump, not torch.save)"
                 if scan.kind == "plain pickle" else "")
        return (f"refused: loading it would run code from the file: its pickle imports, and may call, {text}. "
                f"Only torch's tensor types, argparse.Namespace, pathlib paths and class names from the packages "
                f"{', '.join(STAND_IN_PACKAGES)} (as inert stand-ins) load without trust{plain}")
    if scan.kind == "plain pickle":
        return ("a plain Python pickle (written by pickle.dump, not torch.save), which torch's restricted loader "
                "(weights_only=True) does not read")
    return None


def _weights_only_problem(scan: PickleScan, reason: str) -> str:
    m = re.search(r"Unsupported operand (\d+)", reason)
    if m:
        code = int(m.group(1))
        op = pickletools.code2op.get(chr(code)) if code < 256 else None
        name = op.name if op else f"{code}"
        return (f"uses pickle protocol {scan.protocol} (opcode {name}), which torch's restricted loader "
                f"(weights_only=True) does not read: it was written with torch.save(..., pickle_protocol="
                f"{scan.protocol}) or pickle.dump; re-saving it with torch.save's default protocol 2 also fixes it")
    return f"torch's restricted loader (weights_only=True) refused it: {reason or 'no reason given'}"


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "no message"


def _weights_only_reason(message: str) -> str:
    """The one informative line of torch's weights_only error (e.g. 'Unsupported global: ...')."""
    m = re.search(r"WeightsUnpickler error:\s*([^\n]+)", message)
    line = m.group(1) if m else message.strip().splitlines()[0]
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    return line.split(" Please use")[0].strip()


def _load_ours(path: Path, obj: Mapping, family: str | None) -> LoadedCheckpoint:
    for key in ("family", "model_hps", "preprocess", "model_state_dict"):
        if key not in obj:
            raise CheckpointError(f"{path}: {FORMAT} file without its {key!r} entry")
    if obj["family"] not in FAMILIES:
        raise CheckpointError(f"{path}: field 'family': expected one of {FAMILIES}, got {obj['family']!r}")
    if family is not None and family != obj["family"]:
        raise CheckpointError(f"{path}: the file is a {obj['family']!r} checkpoint but {family!r} was asked for "
                              "(check the family column of the sheet)")
    if obj.get("arch", "resnet12") != "resnet12":
        raise CheckpointError(f"{path}: field 'arch': expected 'resnet12', got {obj.get('arch')!r}")
    try:
        model = ResNet12.from_hps(dict(obj["model_hps"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: field 'model_hps': {e}") from None
    _load_strict(model, dict(obj["model_state_dict"]), path)
    meta = {k: v for k, v in obj.items() if k != "model_state_dict"}
    meta["source_format"] = FORMAT
    return LoadedCheckpoint(model, obj["family"], model.num_classes, dict(obj["preprocess"]), meta)


def _load_published(path: Path, obj: Any, family: str | None) -> LoadedCheckpoint:
    state, container, rest = _extract_state(path, obj)
    state, naming = to_rfs_names(state)
    hps = _infer_hps(path, state)
    published_hps = rest.get("model_hps") if isinstance(rest.get("model_hps"), Mapping) else {}
    assumed = {}
    for k in ("drop_rate", "dropblock_size"):
        if isinstance(published_hps.get(k), (int, float)) and not isinstance(published_hps.get(k), bool):
            hps[k] = published_hps[k]
        else:  # RFS's create_model builds every ResNet-12 with these; they act only in train() mode
            hps[k] = assumed[k] = RFS_HPS[k]
    if published_hps.get("avg_pool") is False:
        raise CheckpointError(f"{path}: model_hps.avg_pool is False (flattened 5x5 maps); only the "
                              "average-pooled ResNet-12 (avg_pool=True) is supported")
    model = ResNet12.from_hps(hps)
    _load_strict(model, state, path, naming)
    meta = {k: _plain(v) for k, v in rest.items() if not _TRAINING_STATE.search(str(k))}
    meta.update(source_format=container, naming=naming, preprocess_assumed=True)
    if assumed:
        meta["hps_assumed"] = assumed
    fam = _published_family(path, meta, family)
    size = 32 if published_hps.get("dropblock_size") == 2 else 84
    c = model.in_channels
    preprocess = {"image_size": size, "channels": c,
                  "mean": RFS_MEAN if c == 3 else [0.5] * c, "std": RFS_STD if c == 3 else [0.5] * c}
    return LoadedCheckpoint(model, fam, model.num_classes, preprocess, meta)


def _extract_state(path: Path, obj: Any) -> tuple[dict, str, dict]:
    """(state dict, where it was found, the other top-level entries)."""
    if isinstance(obj, nn.Module):  # a pickled whole model (only with allow_pickle)
        return dict(obj.state_dict()), "module", {}
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict (a state dict or a checkpoint dict), got {type(obj).__name__}")
    for key in ("model_state_dict", "model", "state_dict"):
        if key in obj:
            inner = obj[key]
            if isinstance(inner, nn.Module):
                inner = inner.state_dict()
            if not isinstance(inner, Mapping) or not inner:
                raise CheckpointError(f"{path}: entry {key!r} holds a {type(inner).__name__}, not a state dict")
            return dict(inner), key, {k: v for k, v in obj.items() if k != key}
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), "state_dict (bare)", {}
    shown = ", ".join(repr(k) for k in list(obj)[:12])
    raise CheckpointError(f"{path}: no model weights found: expected an entry 'model_state_dict', 'model' or "
                          f"'state_dict', or a bare state dict; the file's top-level keys are {shown}")


def _infer_hps(path: Path, state: Mapping[str, Any]) -> dict:
    """Widths, input channels and head size from the tensor shapes of a published state dict."""
    widths = []
    for i in range(1, 5):
        key = f"layer{i}.0.conv1.weight"
        t = state.get(key)
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{path}: missing key {key!r} (not a ResNet-12 state dict in RFS or learn2learn "
                                  f"naming? first keys: {', '.join(list(state)[:5])})")
        if t.dim() != 4:
            raise CheckpointError(f"{path}: key {key!r}: expected a 4-d conv weight, got shape {tuple(t.shape)}")
        widths.append(int(t.shape[0]))
    head = state.get("cls.weight")
    num_classes = int(head.shape[0]) if isinstance(head, torch.Tensor) and head.dim() == 2 else 0
    return {"widths": widths, "in_channels": int(state["layer1.0.conv1.weight"].shape[1]),
            "num_classes": num_classes}


def _load_strict(model: nn.Module, state: dict, path: Path, naming: str = "rfs") -> None:
    """Load `state` into `model`; any missing/unexpected key or shape mismatch is an error naming it."""
    expected = model.state_dict()
    arch = f"ResNet12(widths={list(model.widths)}, in_channels={model.in_channels}, num_classes={model.num_classes})"
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{path}: missing key {missing[0]!r}{more} for {arch}")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        how = "" if naming == "rfs" else f" (after mapping {naming} names)"
        raise CheckpointError(f"{path}: unexpected key {unexpected[0]!r}{more}{how} for {arch}")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{path}: key {k!r} holds a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"{path}: key {k!r}: shape {tuple(v.shape)} in the file, "
                                  f"expected {tuple(expected[k].shape)} for {arch}")
    _check_finite(state, path)
    model.load_state_dict(state, strict=False)


def non_finite(state: Mapping[str, torch.Tensor]) -> str | None:
    """What is NaN or inf in a state dict ("key 'x' holds non-finite values (3 NaN of 64) (and ...)"),
    or None when every floating-point tensor is finite."""
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex())
           if not bool(torch.isfinite(v).all())]
    if not bad:
        return None
    v = state[bad[0]]
    n_nan, n_inf = int(torch.isnan(v).sum()), int(torch.isinf(v).sum())
    counts = " and ".join(c for c in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if c)
    more = ""
    if len(bad) > 1:
        shown = ", ".join(repr(k) for k in bad[1:6]) + (", ..." if len(bad) > 6 else "")
        more = f" (and {len(bad) - 1} more key{'s' if len(bad) > 2 else ''}: {shown})"
    return f"key {bad[0]!r} holds non-finite values ({counts} of {v.numel()}){more}"


def _check_finite(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """NaN or inf in a weight or a BatchNorm statistic: an error naming the file and the key(s)."""
    problem = non_finite(state)
    if problem:
        raise CheckpointError(f"{path}: {problem}. A model with NaN/inf weights or BatchNorm statistics cannot be "
                              "evaluated (its training diverged, or the file is damaged): retrain it, or fetch the "
                              "file again.")


def _published_family(path: Path, meta: dict, family: str | None) -> str:
    """The sheet's family; published files only hint at theirs (agent_type / training_mode)."""
    hint_text = " ".join(str(meta.get(k, "")) for k in ("agent_type", "training_mode")).lower()
    hint = "maml" if "maml" in hint_text else ("pt" if meta.get("training_mode") else None)
    if family is None:
        if hint is None:
            raise CheckpointError(f"{path}: the file does not say whether it is a pt or a maml checkpoint; "
                                  "pass family (the sheet's family column)")
        return hint
    if hint is not None and hint != family:
        log.warning("%s: loaded as family %r (as asked), but its metadata (%s) suggests %r", path, family,
                    hint_text.strip(), hint)
    return family


def _plain(v: Any, depth: int = 0) -> Any:
    """Metadata as plain values (JSON-like); Namespaces become dicts, other objects their repr."""
    if isinstance(v, argparse.Namespace):
        v = vars(v)
    elif isinstance(v, InertRecord):
        v = v.as_dict()
    elif isinstance(v, PurePath):
        return str(v)
    elif stand_in_name(v) is not None:
        return stand_in_name(v)
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if isinstance(v, torch.Tensor):
        return v.tolist() if v.numel() <= 16 else f"tensor{tuple(v.shape)}"
    if depth > 6:
        return repr(v)[:200]
    if isinstance(v, Mapping):
        return {str(k): _plain(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x, depth + 1) for x in v]
    return repr(v)[:200]


# ---------------------------------------------------------------------------------- using them

def final_training_metrics(meta: dict) -> dict:
    """Mean training loss and accuracy over the last 10% of the steps taken (at least one), the
    steps taken and what stopped them, as the convergence check of the summary; None for files not
    made by this workflow."""
    if not isinstance(meta, dict) or meta.get("source_format") != FORMAT:
        return {"final_loss": None, "final_accuracy": None, "steps": None, "stopped_by": None}
    history = meta.get("history")
    loss = list(history.get("loss") or []) if isinstance(history, dict) else []
    acc = list(history.get("accuracy") or []) if isinstance(history, dict) else []
    n = max(1, len(loss) // 10)
    return {"final_loss": sum(loss[-n:]) / n if loss else None,
            "final_accuracy": sum(acc[-n:]) / n if acc else None,
            "steps": meta.get("train_steps", meta.get("steps")),
            # criterion | cap (training.convergence); None for controls and files from before the rule
            "stopped_by": meta.get("stopped_by")}


def preprocess_images(x: torch.Tensor, preprocess: Mapping) -> torch.Tensor:
    """Images (n, C, H, W) in [0, 1] -> the checkpoint's input: resized, channel-converted, normalised."""
    x = convert_images(x, int(preprocess["image_size"]), int(preprocess["channels"]))
    mean = torch.as_tensor(preprocess["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.as_tensor(preprocess["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std
