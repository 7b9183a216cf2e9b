"""Supervised pre-training ("PT", also USL): cross-entropy over all classes of the training set.

The head has one logit per class of the view (``view.n_classes``); the evaluation stage drops
it and fits a classifier per episode on the backbone's features. Batches of
``images_per_step`` images are drawn epoch by epoch from seeded permutations of the view.
BatchNorm trains as usual (batch statistics, running statistics updated with momentum 0.1).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from divcoeff.models.resnet12 import ResNet12
from divcoeff.training.common import Progress, batch_stream, make_optimizer
from divcoeff.training.convergence import StopRule
from divcoeff.settings import TrainSettings


def train_pt(model: ResNet12, x: torch.Tensor, y: torch.Tensor, settings: TrainSettings, rng: np.random.Generator,
             desc: str = "pt") -> dict:
    """Train `model` (its head sized to the classes in `y`) in place until the stopping rule
    (training.convergence, cap training.steps) says so; returns the per-step history and
    ``stopped_by``."""
    if model.num_classes != int(y.max()) + 1:
        raise ValueError(f"{desc}: the head has {model.num_classes} outputs but the labels go to {int(y.max())}")
    opt = make_optimizer(model, settings)
    progress = Progress(settings.steps, desc)
    batches = batch_stream(len(x), settings.images_per_step, rng)
    rule = StopRule.from_settings(settings)
    model.train()
    stopped_by = None
    while stopped_by is None:
        idx = torch.from_numpy(next(batches)).to(x.device)
        logits = model(x[idx])
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            acc = (logits.argmax(1) == y[idx]).float().mean()
        progress.update(loss.item(), acc.item())
        stopped_by = rule.update(progress.loss[-1])
    return {**progress.close(), "stopped_by": stopped_by}
