"""One trained checkpoint: seed everything, train PT or MAML on a view, record what was done.

Seeds: the caller passes one seed per checkpoint (the workflow uses
``derive_seed(config seed, training.seed, checkpoint name)``); weight init, dropout and
DropBlock draw from ``derive_seed(seed, "torch")``, PT batches from ``numpy_rng(seed, "batches")``,
MAML tasks from ``derive_seed(seed, "tasks")``. On a CPU with a fixed thread count the same seed
gives the same weights, bit for bit.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from divcoeff.checkpoints import save_checkpoint
from divcoeff.data.views import View
from divcoeff.io import dumps_json
from divcoeff.models.resnet12 import ResNet12
from divcoeff.seeding import derive_seed, numpy_rng
from divcoeff.training.common import build_model, calibrate_bn, load_view_tensors, seeded_torch, view_preprocess
from divcoeff.training.maml import train_maml
from divcoeff.training.pt import train_pt
from divcoeff.settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass
class TrainedCheckpoint:
    model: ResNet12
    family: str
    preprocess: dict
    meta: dict = field(default_factory=dict)


def config_digest(training: Mapping[str, Any], train_set_spec: Mapping[str, Any], master_seed: int) -> str:
    """sha256 of everything in the config that determines a trained checkpoint (recorded as
    ``config_sha256``): the training section, the training set's entry and the master seed."""
    text = dumps_json({"training": training, "train_set": train_set_spec, "seed": int(master_seed)})
    return hashlib.sha256(text.encode()).hexdigest()


def train_checkpoint(view: View, family: str, settings: TrainSettings, *, seed: int,
                     device: torch.device | str = "cpu", name: str | None = None,
                     train_set: str | None = None, config_sha256: str = "",
                     code_version: str = "") -> TrainedCheckpoint:
    """Train a PT (head over the view's classes) or MAML (``maml.ways``-way head) ResNet-12 on `view`."""
    if family not in ("pt", "maml"):
        raise ValueError(f"train_checkpoint: family must be 'pt' or 'maml', got {family!r}")
    device = torch.device(device)
    name = name or f"{family}-{view.name}"
    started = time.perf_counter()
    x, y = load_view_tensors(view, device)
    head = view.n_classes if family == "pt" else settings.maml.ways
    log.info("%s: %s on view %s (%d classes, %d images, %dx%d x%d), widths %s, %d steps x %d images, device %s, "
             "%d threads", name, family.upper(), view.name, view.n_classes, len(x), view.image_size,
             view.image_size, view.channels, list(settings.widths), settings.steps, settings.images_per_step,
             device, torch.get_num_threads())
    with seeded_torch(derive_seed(seed, "torch"), device):
        model = build_model(settings, view.channels, head, device)
        if device.type == "cpu":
            # Channels-last convolutions are ~1.4x faster for PT on a CPU (bench/train.py); the
            # checkpoint is stored contiguous below.
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        if family == "pt":
            history = train_pt(model, x, y, settings, numpy_rng(seed, "batches"), desc=name)
        else:
            history = train_maml(model, view, x, settings, derive_seed(seed, "tasks"), desc=name)
    model.eval().to(memory_format=torch.contiguous_format)
    seconds = time.perf_counter() - started
    stopped_by = history.pop("stopped_by")
    taken = len(history["loss"])
    n = max(1, taken // 10)
    first, last = sum(history["loss"][:n]) / n, sum(history["loss"][-n:]) / n
    log.info("%s: done in %.1f s; %d steps (stopped by the %s, cap %d); training loss %.4f (first %d steps) -> "
             "%.4f (last %d)", name, seconds, taken, stopped_by, settings.steps, first, n, last, n)
    meta = {
        "train_set": train_set or view.name,
        # steps taken; the cap and the rule are in `training` (steps, convergence)
        "steps": taken,
        "train_steps": taken,
        "stopped_by": stopped_by,
        "images_seen": taken * settings.images_per_step,
        "seed": int(seed),
        "config_sha256": config_sha256,
        "code_version": code_version,
        "name": name,
        "training": settings.as_dict(),
        "view": {"name": view.name, "sha256": view.sha256, "n_classes": view.n_classes,
                 "n_images": int(len(view.table)), "components": list(view.meta.get("components", []))},
        "history": history,
        "seconds": round(seconds, 3),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch_version": str(torch.__version__),
    }
    return TrainedCheckpoint(model.cpu(), family, view_preprocess(view), meta)


def untrained_checkpoint(view: View, settings: TrainSettings, *, seed: int, device: torch.device | str = "cpu",
                         name: str | None = None, train_set: str | None = None, config_sha256: str = "",
                         code_version: str = "") -> TrainedCheckpoint:
    """The control: a ResNet-12 drawn as `train_checkpoint` draws it (same widths, same seeding),
    never trained, without a head (it is evaluated like a PT checkpoint, on features). Its
    BatchNorm running statistics are the population statistics of the view's images: eval-mode
    features then see normalised activations, as a trained PT checkpoint's do."""
    device = torch.device(device)
    name = name or f"init-{view.name}"
    started = time.perf_counter()
    x, _ = load_view_tensors(view, device)
    with seeded_torch(derive_seed(seed, "torch"), device):
        model = build_model(settings, view.channels, 0, device)
        calibrate_bn(model, x, settings.images_per_step)
    model.eval()
    log.info("%s: untrained ResNet-12 %s, BatchNorm statistics of the %d images of %s", name,
             list(settings.widths), len(x), view.name)
    meta = {"train_set": train_set or view.name, "steps": 0, "images_seen": 0, "seed": int(seed),
            "config_sha256": config_sha256, "code_version": code_version, "name": name, "control": "untrained",
            "training": {k: v for k, v in settings.as_dict().items() if k in ("arch", "widths", "drop_rate",
                                                                              "dropblock_size")},
            "view": {"name": view.name, "sha256": view.sha256, "n_classes": view.n_classes,
                     "n_images": int(len(view.table))},
            "history": {"loss": [], "accuracy": []}, "seconds": round(time.perf_counter() - started, 3),
            "device": str(device), "threads": torch.get_num_threads(), "torch_version": str(torch.__version__)}
    return TrainedCheckpoint(model.cpu(), "pt", view_preprocess(view), meta)


def write_trained_checkpoint(path: str | os.PathLike, trained: TrainedCheckpoint) -> None:
    save_checkpoint(path, trained.model, trained.family, trained.preprocess, trained.meta)
