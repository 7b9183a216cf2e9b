"""Which pixels a published checkpoint was trained on: MiniImageNet as ultimate-utils fed it.

learn2learn's MiniImagenet hands out the pickles' pixels as float tensors in 0..255, and
ultimate-utils' MiniImageNet transforms for ``data_augmentation`` ``lee2019``, ``hdb1`` and
``hdb4_micod`` start with ``ToPILImage()`` (U: ``py_src/uutils/torch_uu/dataloaders/meta_learning/
mini_imagenet_mi_l2l.py`` lines 64-86, test transform lines 81-86), which multiplies a float tensor
by 255 and casts to uint8: pixel p becomes (256 - p) mod 256. A checkpoint trained that way saw
wrapped MiniImageNet images, and is evaluated on them here. ``original_rfs`` (lines 87-107) goes
through ``Image.fromarray`` of the uint8 array: no wrap. Each ultimate-utils checkpoint records its
value in ``args_dict['data_augmentation']``; ``evaluation.data_augmentation`` (checkpoint name ->
value) overrides it, for files that do not record it or to test the other reading.

Only MiniImageNet goes through that transform (its benchmarks are found by their reader,
``mini-imagenet``); the wrap is its own inverse, so a benchmark stored wrapped already
(``pixels: byte_wrapped``) is unwrapped for a checkpoint trained on plain pixels.
"""
from __future__ import annotations

from typing import Any, Mapping

from divcoeff.data.views import View

WRAPPING = frozenset({"lee2019", "hdb1", "hdb4_micod"})  # transforms that start with ToPILImage() on floats
WRAPPED_READER = "mini-imagenet"


def recorded_augmentation(meta: Mapping[str, Any] | None) -> str | None:
    """The checkpoint's ``args_dict['data_augmentation']`` (or ``args``'s), None where not recorded."""
    for key in ("args_dict", "args"):
        args = (meta or {}).get(key)
        if isinstance(args, Mapping) and args.get("data_augmentation") is not None:
            return str(args["data_augmentation"])
    return None


def augmentation_for(name: str, meta: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> tuple[str | None, str]:
    """(value, where it came from): the setting's value for this checkpoint, else the checkpoint's own."""
    if name in overrides:
        return (None if overrides[name] is None else str(overrides[name])), "evaluation.data_augmentation"
    value = recorded_augmentation(meta)
    return value, ("the checkpoint's args_dict" if value is not None else "not recorded")


def wrapped_benchmarks(view: View, augmentation: str | None) -> tuple[str, ...]:
    """The view's benchmarks whose stored pixels must be wrapped to give what the checkpoint was trained on."""
    wants = augmentation in WRAPPING
    out = []
    for bench in view.meta.get("datasets") or {}:
        build = view.dataset_build(bench)
        if build.get("reader") != WRAPPED_READER:
            continue
        stored = build.get("pixels", "as_stored") == "byte_wrapped"
        if wants != stored:
            out.append(bench)
    return tuple(sorted(out))
