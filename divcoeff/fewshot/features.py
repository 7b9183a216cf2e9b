"""Images in, backbone features out: once per image, batched, on the device.

What a checkpoint sees is decided here, once, for both families:

* :func:`input_spec` compares the checkpoint's ``preprocess`` (image size, channels) with the
  evaluation view. A mismatch is an error naming both, unless the config explicitly asks to
  resize (``evaluation.resize_to_checkpoint``); images are never resized silently.
* :func:`load_inputs` reads view rows and normalises them: by the checkpoint's recorded
  normalisation (``clean``), or by each image's benchmark as the view records it (the published
  protocol: the dataset's normalisation wins, REFERENCE section 7).
* :func:`compute_features` runs ``model.features`` over every distinct image of the episodes
  once (eval mode, no_grad) and L2-normalises the result, as the published PT protocol does.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from divcoeff.data.views import View
from divcoeff.device import fast_layout  # noqa: F401 (also imported from here by fewshot.published)

log = logging.getLogger(__name__)


class InputMismatchError(ValueError):
    """The checkpoint expects images of another size or number of channels than the view has."""


@dataclass(frozen=True)
class InputSpec:
    """The images a checkpoint is fed: size, channels, per-channel normalisation."""

    image_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resized: bool  # the view's images are converted to image_size/channels (explicitly asked for)
    normalisation: str = "checkpoint"  # checkpoint: mean/std above; dataset: the view's, per benchmark
    per_benchmark: dict | None = None  # dataset: benchmark -> {mean, std} or None, as applied
    wrapped: tuple[str, ...] = ()  # benchmarks whose pixels are wrapped first (divcoeff.fewshot.pixels)

    def as_dict(self) -> dict:
        d = {"image_size": self.image_size, "channels": self.channels, "normalisation": self.normalisation,
             "resized": self.resized}
        if self.wrapped:
            d["wrapped_pixels"] = list(self.wrapped)
        if self.normalisation == "dataset":
            return {**d, "per_benchmark": self.per_benchmark}
        return {**d, "mean": list(self.mean), "std": list(self.std)}


def _get(preprocess: Any, key: str) -> Any:
    if preprocess is None:
        return None
    if isinstance(preprocess, Mapping):
        return preprocess.get(key)
    return getattr(preprocess, key, None)


def _size(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or int(value[0]) != int(value[1]):
            raise InputMismatchError(f"{where}: preprocess.image_size {value!r}: only square images are supported")
        value = value[0]
    return int(value)


def input_spec(preprocess: Any, model_channels: int, view: View, *, resize: bool = False,
               checkpoint: str = "checkpoint", normalisation: str = "checkpoint") -> InputSpec:
    """Check that `checkpoint` can take the view's images as they are (or resize, if asked).

    `preprocess` is the checkpoint's (image_size, channels, mean, std; a mapping or an object).
    A checkpoint without an image size takes the view's size (the ResNet-12 pools adaptively).
    `normalisation`: "checkpoint" (its mean/std) or "dataset" (the view's per-benchmark
    normalisation, what the published protocol feeds every checkpoint).
    """
    if normalisation not in ("checkpoint", "dataset"):
        raise ValueError(f"input_spec: normalisation must be checkpoint or dataset, got {normalisation!r}")
    size = _size(_get(preprocess, "image_size"), checkpoint)
    channels = _get(preprocess, "channels")
    channels = int(channels) if channels is not None else int(model_channels)
    if channels != int(model_channels):
        raise InputMismatchError(f"{checkpoint}: preprocess.channels is {channels} but the network's first "
                                 f"convolution takes {model_channels} channels")
    if size is None:
        log.warning("%s: no preprocess.image_size recorded; feeding the view's %dx%d images", checkpoint,
                    view.image_size, view.image_size)
        size = view.image_size
    mismatch = size != view.image_size or channels != view.channels
    if mismatch and not resize:
        raise InputMismatchError(
            f"{checkpoint} expects {size}x{size} images with {channels} channel(s) (its preprocess.image_size="
            f"{size}, channels={channels}), but the evaluation view {view.name!r} ({view.path}) holds "
            f"{view.image_size}x{view.image_size} images with {view.channels} channel(s). Images are not resized "
            "silently: evaluate with a view of the checkpoint's size (evaluation.image_size), or set "
            "evaluation.resize_to_checkpoint: true to resize them to the checkpoint's size explicitly.")
    if mismatch:
        log.warning("%s: resizing the view's %dx%dx%d images to %dx%dx%d (evaluation.resize_to_checkpoint)",
                    checkpoint, view.image_size, view.image_size, view.channels, size, size, channels)
    mean = _get(preprocess, "mean")
    std = _get(preprocess, "std")
    mean = tuple(float(m) for m in mean) if mean is not None else (0.0,) * channels
    std = tuple(float(s) for s in std) if std is not None else (1.0,) * channels
    if normalisation == "dataset":
        per_benchmark = view.normalisation
        bad = {b: n for b, n in per_benchmark.items() if n is not None and len(n["mean"]) != channels}
        if bad:
            raise InputMismatchError(f"{checkpoint}: the view {view.name!r} normalises {sorted(bad)} with "
                                     f"{len(next(iter(bad.values()))['mean'])} channel(s), the checkpoint takes {channels}")
        return InputSpec(size, channels, (0.0,) * channels, (1.0,) * channels, mismatch, "dataset", per_benchmark)
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise InputMismatchError(f"{checkpoint}: preprocess mean {list(mean)} / std {list(std)} do not fit "
                                 f"{channels} channel(s) (one value per channel, std > 0)")
    return InputSpec(size, channels, mean, std, mismatch)


def load_inputs(view: View, rows: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """float32 (n, C, H, W): the view's images of `rows`, converted as `spec` says and normalised."""
    if spec.normalisation == "dataset":
        return view.images(rows, size=spec.image_size, channels=spec.channels, normalise=True, wrap=spec.wrapped)
    x = view.images(rows, size=spec.image_size, channels=spec.channels, normalise=False, wrap=spec.wrapped)
    mean = torch.tensor(spec.mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def compute_features(model: torch.nn.Module, view: View, rows: np.ndarray, spec: InputSpec, *,
                     batch_size: int = 512, device: torch.device | str = "cpu",
                     normalize: bool = True, progress: bool = True) -> torch.Tensor:
    """Pooled backbone features (n, D) of the given view rows, one forward per image.

    The model is used in eval mode (BatchNorm with its running statistics, no dropout);
    features come back L2-normalised (normalize=True), float32, on `device`.
    """
    device = torch.device(device)
    fast_layout(model.eval(), device)
    out = []
    for s in tqdm(range(0, len(rows), batch_size), desc="features", unit="batch", disable=not progress):
        x = load_inputs(view, rows[s:s + batch_size], spec).to(device, non_blocking=True)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(model.features(x).float())
    feats = torch.cat(out) if out else torch.empty(0, 0, device=device)
    return F.normalize(feats, dim=-1) if normalize else feats


def episode_positions(rows: np.ndarray, episode_rows: np.ndarray) -> torch.Tensor:
    """Positions in `rows` (sorted, unique) of every view row in `episode_rows` (any shape)."""
    pos = np.searchsorted(rows, episode_rows)
    if (pos >= len(rows)).any() or not np.array_equal(rows[np.minimum(pos, len(rows) - 1)], episode_rows):
        raise ValueError("episode_positions: an episode row is missing from the computed rows")
    return torch.from_numpy(pos.astype(np.int64))
