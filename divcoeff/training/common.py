"""What PT and MAML training share: the data in memory, the model, the optimiser, seeding, progress.

Normalisation: every checkpoint we train sees ``(x - 0.5) / 0.5`` of the view's images in
[0, 1], a fixed constant rather than statistics of its training set, so that training sets
of different diversity differ in nothing but their images. It is recorded in the
checkpoint's ``preprocess`` and applied at evaluation by
:func:`divcoeff.checkpoints.preprocess_images`.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
from typing import Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from divcoeff.data.views import View
from divcoeff.models.resnet12 import BatchNorm2d, ResNet12
from divcoeff.settings import TrainSettings

log = logging.getLogger(__name__)

MEAN, STD = 0.5, 0.5


def view_preprocess(view: View) -> dict:
    """The preprocessing our checkpoints record (docs/formats.md section 4)."""
    c = view.channels
    return {"image_size": view.image_size, "channels": c, "mean": [MEAN] * c, "std": [STD] * c}


def load_view_tensors(view: View, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of the view, normalised, and their labels, on `device` (a training set is small:
    40 classes x 16 images of 28x28 are 2 MB; even MiniImageNet at 84x84 fits a GPU)."""
    x = view.images()
    x = (x - MEAN) / STD
    return x.to(device), view.labels().to(device)


def build_model(settings: TrainSettings, in_channels: int, num_classes: int, device: torch.device) -> ResNet12:
    return ResNet12(in_channels=in_channels, num_classes=num_classes, **settings.model_kwargs).to(device)


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


@contextlib.contextmanager
def seeded_torch(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (weight init, dropout, DropBlock) inside the block only,
    restoring the caller's RNG state afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed % (2**63 - 1))
        yield


class Progress:
    """tqdm bar on stderr (the rule's log) plus a log line every ~10% with the window means."""

    def __init__(self, steps: int, desc: str):
        self.steps = steps
        self.every = max(1, steps // 10)
        self.loss: list[float] = []
        self.accuracy: list[float] = []
        self.bar = tqdm(total=steps, desc=desc, file=sys.stderr, mininterval=5.0, dynamic_ncols=False)
        self.desc = desc

    def update(self, loss: float, accuracy: float) -> None:
        self.loss.append(float(loss))
        self.accuracy.append(float(accuracy))
        self.bar.update(1)
        n = len(self.loss)
        if n % self.every == 0 or n == self.steps:
            w = slice(max(0, n - self.every), n)
            ml, ma = float(np.mean(self.loss[w])), float(np.mean(self.accuracy[w]))
            self.bar.set_postfix(loss=f"{ml:.3f}", acc=f"{ma:.3f}", refresh=False)
            log.info("%s step %d/%d: loss %.4f, accuracy %.3f (mean of the last %d steps)", self.desc, n,
                     self.steps, ml, ma, w.stop - w.start)
        if not math.isfinite(loss):
            raise FloatingPointError(f"{self.desc}: the training loss became {loss} at step {n}; "
                                     "lower training.lr or check the data")

    def close(self) -> dict:
        self.bar.close()
        return {"loss": self.loss, "accuracy": self.accuracy}


def batch_stream(n: int, batch: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless batches of indices: epochs of seeded permutations, a batch may span two epochs."""
    buf = np.empty(0, dtype=np.int64)
    while True:
        while len(buf) < batch:
            buf = np.concatenate([buf, rng.permutation(n)])
        yield buf[:batch]
        buf = buf[batch:]


@torch.no_grad()
def calibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Set every BN's running statistics to the population statistics of `x` under the current
    weights (cumulative average over batches; dropout/DropBlock off)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = model.training
    model.eval()
    saved = []
    for m in bns:
        saved.append((m.momentum, getattr(m, "stats_mode", None)))
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: equal weight for every batch
        if isinstance(m, BatchNorm2d):
            m.stats_mode = None
        m.train()
    for s in range(0, len(x), batch_size):
        model(x[s:s + batch_size])
    for m, (momentum, mode) in zip(bns, saved):
        m.momentum = momentum
        if isinstance(m, BatchNorm2d):
            m.stats_mode = mode
    model.train(was_training)
