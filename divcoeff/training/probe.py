"""The Task2Vec probe the workflow pretrains itself: the offline analogue of an ImageNet probe.

The published probe is a torchvision ResNet-18 pretrained on ImageNet, a broad pool of classes of
which the study's benchmarks are small subsets. With the network out of reach, the glyph study
pretrains the same architecture on its own broad pool (``diversity.probe.pool``: every class of
the pool's split, by default every script's training characters), as plain classification:
Adam, cross-entropy, seeded batches. The held-out characters are never in the pool.

The probe file holds the body's weights (``fc`` dropped: Task2Vec gives every task a fresh
head) and the input preprocessing, as plain tensors and values: ``torch.load(weights_only=True)``
reads it back (:func:`divcoeff.task2vec.probes.pool_probe`).
"""
from __future__ import annotations

import logging
import os
import time

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from divcoeff.checkpoints import CheckpointError, non_finite
from divcoeff.data.views import View
from divcoeff.io import atomic_path
from divcoeff.task2vec.probes import (IMAGENET_MEAN, IMAGENET_STD, PROBE_FORMAT, seeded_reinit_,
                                    torchvision_constructor)
from divcoeff.seeding import derive_seed, numpy_rng
from divcoeff.settings import ProbeSettings
from divcoeff.training.common import Progress, batch_stream

log = logging.getLogger(__name__)


def probe_inputs(view: View, image_size: int) -> torch.Tensor:
    """The view's images as the probe sees them: RGB, `image_size`, ImageNet mean/std."""
    x = view.images(size=image_size, channels=3)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def probe_targets(view: View, labels: str) -> tuple[torch.Tensor, int]:
    """(targets (n, heads), number of outputs): the view's class labels, its components' indices, or both."""
    classes = view.labels()
    domains = torch.from_numpy(pd.factorize(view.table["component"], sort=True)[0].astype("int64"))
    if labels == "classes":
        return classes[:, None], view.n_classes
    if labels == "domains":
        return domains[:, None], int(domains.max()) + 1
    return torch.stack([classes, domains], 1), view.n_classes + int(domains.max()) + 1


def train_probe(view: View, settings: ProbeSettings, *, seed: int, device: torch.device | str = "cpu") -> dict:
    """Pretrain a torchvision ResNet-18/34 on every class of `view`; returns the probe file's payload."""
    device = torch.device(device)
    pool = settings.pool
    started = time.perf_counter()
    build, _ = torchvision_constructor(settings.arch)
    y, n_out = probe_targets(view, pool.labels)
    model = build(weights=None, num_classes=n_out)
    seeded_reinit_(model, torch.Generator().manual_seed(derive_seed(seed, "init") % 2**63))
    model.to(device).train()
    x, y = probe_inputs(view, settings.image_size).to(device), y.to(device)
    heads = [(0, view.n_classes)] if pool.labels == "classes" else \
        [(0, n_out)] if pool.labels == "domains" else [(0, view.n_classes), (view.n_classes, n_out)]
    log.info("probe: %s on %d images of %d classes (%s), %d steps x %d images, %dpx, device %s, %d threads",
             settings.arch, len(x), view.n_classes, view.name, pool.steps, pool.batch_size, settings.image_size,
             device, torch.get_num_threads())
    opt = torch.optim.Adam(model.parameters(), lr=pool.lr, weight_decay=pool.weight_decay)
    batches = batch_stream(len(x), pool.batch_size, numpy_rng(seed, "batches"))
    progress = Progress(pool.steps, "probe")
    for _ in range(pool.steps):
        idx = torch.from_numpy(next(batches)).to(device)
        logits = model(x[idx])
        # One cross-entropy per head (a slice of the logits); `both` adds the class and domain losses.
        loss = sum(F.cross_entropy(logits[:, a:b], y[idx, h]) for h, (a, b) in enumerate(heads))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            acc = (logits[:, heads[0][0]:heads[0][1]].argmax(1) == y[idx, 0]).float().mean()
        progress.update(loss.item(), acc.item())
    history = progress.close()
    model.fc = nn.Identity()
    n = max(1, pool.steps // 10)
    final = {"loss": sum(history["loss"][-n:]) / n, "accuracy": sum(history["accuracy"][-n:]) / n}
    log.info("probe: done in %.1f s; training loss %.4f, accuracy %.3f (last %d steps)",
             time.perf_counter() - started, final["loss"], final["accuracy"], n)
    return {
        "format": PROBE_FORMAT, "arch": settings.arch, "image_size": settings.image_size,
        "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": {"view": view.name, "view_sha256": view.sha256, "classes": view.n_classes, "images": int(len(x)),
                 "seed": int(seed), "settings": settings.as_dict(), "history": history, "final": final,
                 "seconds": round(time.perf_counter() - started, 3), "device": str(device)},
    }


def write_probe(path: str | os.PathLike, payload: dict) -> None:
    problem = non_finite(payload["state_dict"])
    if problem:  # as save_checkpoint: a diverged probe fails where it diverged
        raise CheckpointError(f"write_probe {path}: refused: {problem}; the probe's training diverged; "
                              "nothing was written")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
