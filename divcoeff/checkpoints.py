"""Checkpoint files: our own format, and the published ResNet-12 files (docs/formats.md section 4).

One function reads them all, :func:`load_checkpoint`. It never runs code from a file:
``torch.load(weights_only=True)`` first; a file that needs pickled Python objects (the
published ones may carry an ``argparse.Namespace`` or other objects in ``args_dict``/``opt``)
is refused with a message naming the file and the sheet column ``allow_pickle``, the explicit
per-row opt-in. Only with ``allow_pickle=True`` is such a file loaded with
``weights_only=False``, and the log says so.

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
the metadata.
"""
from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from divcoeff.data.views import convert_images
from divcoeff.io import atomic_path
from divcoeff.models.keymaps import to_rfs_names
from divcoeff.models.resnet12 import ResNet12

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
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _weights_only_reason(str(e))
        if "Unsupported" not in detail:
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({detail}); "
                                  "the file may be truncated or corrupt") from None
        if not allow_pickle:
            raise CheckpointError(
                f"{path}: needs pickled Python objects to load ({detail}). Loading it would run code "
                f"from the file, so it is refused. If you trust the file, set the column {ALLOW_PICKLE_OPTION!r} "
                "to true in its row of the checkpoint sheet.") from None
    except Exception as e:  # noqa: BLE001 - garbage bytes make the unpickler fail in many ways (IndexError, ...)
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e}); "
                              "the file may be truncated or corrupt") from None
    log.warning("%s: loading with pickle (torch.load weights_only=False) because its sheet row sets "
                "%s: true; this runs code from the file", path, ALLOW_PICKLE_OPTION)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any failure of an unpickler is the file's fault
        raise CheckpointError(f"{path}: could not be loaded even with pickle ({type(e).__name__}: {e})") from None


def _weights_only_reason(message: str) -> str:
    """The one informative line of torch's weights_only error (e.g. 'Unsupported global: ...')."""
    m = re.search(r"WeightsUnpickler error: ([^\n]*)", message)
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
    for k in ("drop_rate", "dropblock_size"):
        if isinstance(published_hps.get(k), (int, float)) and not isinstance(published_hps.get(k), bool):
            hps[k] = published_hps[k]
    if published_hps.get("avg_pool") is False:
        raise CheckpointError(f"{path}: model_hps.avg_pool is False (flattened 5x5 maps); only the "
                              "average-pooled ResNet-12 (avg_pool=True) is supported")
    model = ResNet12.from_hps(hps)
    _load_strict(model, state, path, naming)
    meta = {k: _plain(v) for k, v in rest.items() if not _TRAINING_STATE.search(str(k))}
    meta.update(source_format=container, naming=naming, preprocess_assumed=True)
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
    model.load_state_dict(state, strict=False)


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

def preprocess_images(x: torch.Tensor, preprocess: Mapping) -> torch.Tensor:
    """Images (n, C, H, W) in [0, 1] -> the checkpoint's input: resized, channel-converted, normalised."""
    x = convert_images(x, int(preprocess["image_size"]), int(preprocess["channels"]))
    mean = torch.as_tensor(preprocess["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.as_tensor(preprocess["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std
