"""MAML training: `ways`-way episodes drawn from the training set, the inner loop of divcoeff.maml.

Tasks: ``steps * meta_batch`` episodes are drawn up front, mixture style, by the same sampler
as the persisted episode files (:func:`divcoeff.data.episodes.sample_episodes`: a component
uniformly, then `ways` classes inside it, then ``shots + queries`` distinct images per class),
seeded. Each step adapts the whole network (head included) on each task's support set with
``inner_steps`` SGD steps of ``inner_lr`` and takes one Adam step on the mean query
cross-entropy, first- or second-order.

BatchNorm (``maml.bn_mode``):
- ``batch`` (learn2learn): support and query sets are normalised with their own batch
  statistics. Running statistics play no part in training; at the end they are set to the
  population statistics of the training set under the final meta-parameters
  (:func:`divcoeff.training.common.calibrate_bn`), so that ``bn_mode: running`` at evaluation
  is meaningful too.
- ``running``: before each step a no-grad pass over the step's images updates the running
  statistics (momentum 0.1); the inner loop and the query pass use them (eval-mode BN).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from divcoeff.data.episodes import sample_episodes
from divcoeff.data.views import View
from divcoeff.maml import meta_forward, split_state
from divcoeff.models.resnet12 import ResNet12
from divcoeff.training.common import Progress, calibrate_bn, make_optimizer
from divcoeff.training.convergence import StopRule
from divcoeff.settings import TrainSettings


def train_maml(model: ResNet12, view: View, x: torch.Tensor, settings: TrainSettings, task_seed: int,
               desc: str = "maml") -> dict:
    """Meta-train `model` (a ``ways``-way head) in place on tasks of `view` (images `x`, normalised,
    indexed by view row) until the stopping rule (training.convergence, cap training.steps) says so;
    returns the per-step history (query loss and accuracy after adaptation) and ``stopped_by``.
    Tasks are drawn for the cap, so a run that stops earlier saw a prefix of them."""
    m = settings.maml
    if model.num_classes != m.ways:
        raise ValueError(f"{desc}: the head has {model.num_classes} outputs, MAML needs maml.ways = {m.ways}")
    T, W = m.meta_batch, m.ways
    eps = sample_episodes(view, m.ways, m.shots, m.queries, settings.steps * T, task_seed)
    support = torch.from_numpy(eps.support.reshape(settings.steps, T, W * m.shots)).to(x.device)
    query = torch.from_numpy(eps.query.reshape(settings.steps, T, W * m.queries)).to(x.device)
    # Episode rows are class-major (class w's K images, then class w+1's), so local labels repeat.
    sy = torch.arange(W, device=x.device).repeat_interleave(m.shots).expand(T, -1)
    qy = torch.arange(W, device=x.device).repeat_interleave(m.queries).expand(T, -1)

    opt = make_optimizer(model, settings)
    progress = Progress(settings.steps, desc)
    rule = StopRule.from_settings(settings)
    model.train()
    stopped_by, s = None, 0
    while stopped_by is None:
        sx, qx = x[support[s]], x[query[s]]                       # (T, W*K, C, H, W), (T, W*Q, C, H, W)
        if m.bn_mode == "running":
            _track_running_stats(model, torch.cat([sx, qx], 1).flatten(0, 1))
        params, buffers = split_state(model)
        logits = meta_forward(model, params, buffers, sx, sy, qx, steps=m.inner_steps, inner_lr=m.inner_lr,
                              first_order=m.first_order, bn_mode=m.bn_mode)
        loss = F.cross_entropy(logits.flatten(0, 1), qy.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            acc = (logits.argmax(-1) == qy).float().mean()
        progress.update(loss.item(), acc.item())
        stopped_by = rule.update(progress.loss[-1])
        s += 1
    history = {**progress.close(), "stopped_by": stopped_by}
    if m.bn_mode == "batch":
        calibrate_bn(model, x, settings.images_per_step)
    return history


@torch.no_grad()
def _track_running_stats(model: ResNet12, images: torch.Tensor) -> None:
    """One train-mode BN pass (dropout off) that moves the running statistics towards `images`'."""
    bns = [mod for mod in model.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for b in bns:
        b.train()
    model(images)
    model.train()
