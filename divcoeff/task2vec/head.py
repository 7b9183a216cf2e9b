"""Task heads: the published head step, for many tasks in one tensor program.

Published (aws-cv-task2vec ``_fit_classifier``): a fresh ``Linear(D, N)`` per task, trained on
the task's cached penultimate features with Adam (lr 4e-4, weight decay 1e-4) for 10 epochs;
an epoch is ``epoch_images`` (10,000) indices drawn with replacement by a class-balanced
weighted sampler, in batches of 64, the last incomplete batch dropped.

Here the T heads are one (T, N, D) weight and one (T, N) bias. The loss is the sum over tasks
of each task's batch-mean cross-entropy, so each head's gradient is that of its own task, and
Adam is element-wise: one Adam over the stacked tensors *is* T independent Adams.

Every head starts from the same init (as published); the sampler draws from the task's own
generator, so a task's head does not depend on which other tasks share its batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def init_heads(feature_dim: int, ways: int, generators: list[torch.Generator],
               device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """nn.Linear's default init (weight and bias ~ U(-1/sqrt(D), 1/sqrt(D))), one head per generator."""
    bound = 1.0 / feature_dim ** 0.5
    w, b = [], []
    for g in generators:
        w.append(torch.empty(ways, feature_dim).uniform_(-bound, bound, generator=g))
        b.append(torch.empty(ways).uniform_(-bound, bound, generator=g))
    return torch.stack(w).to(device), torch.stack(b).to(device)


def balanced_sampler_indices(labels: torch.Tensor, n_draws: int, generator: torch.Generator) -> torch.Tensor:
    """WeightedRandomSampler with class-balanced weights: each class equally likely, then an image in it."""
    labels = labels.cpu()
    counts = torch.bincount(labels).double()
    weights = 1.0 / counts[labels]
    return torch.multinomial(weights / weights.sum(), n_draws, replacement=True, generator=generator)


def epoch_batches(labels: torch.Tensor, generators: list[torch.Generator], epoch_images: int,
                  batch_size: int) -> torch.Tensor:
    """One sampler epoch per task: (T, n_batches, batch_size) indices into each task's images."""
    n_batches = epoch_images // batch_size
    if n_batches == 0:
        raise ValueError(f"diversity: epoch_images ({epoch_images}) is smaller than batch_size ({batch_size})")
    idx = [balanced_sampler_indices(labels[t], epoch_images, g)[: n_batches * batch_size]
           for t, g in enumerate(generators)]
    return torch.stack(idx).view(len(generators), n_batches, batch_size)


class BatchedAdam:
    """torch.optim.Adam's update (single-tensor CPU path, no amsgrad), written out.

    The same element-wise arithmetic in the same order, so T stacked heads follow exactly the
    trajectories of T ``torch.optim.Adam`` instances; and no per-process start-up cost (the
    first ``torch.optim`` step imports several seconds' worth of modules)."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.wd, self.betas, self.eps = params, lr, weight_decay, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        bias_correction1 = 1 - beta1 ** self.t
        bias_correction2_sqrt = (1 - beta2 ** self.t) ** 0.5
        step_size = self.lr / bias_correction1
        for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq):
            if self.wd:
                g = g.add(p, alpha=self.wd)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)


def train_heads(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                sampler_generators: list[torch.Generator], epochs: int, epoch_images: int, batch_size: int,
                lr: float, weight_decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Train T heads on fixed features (T, n, D) with labels (T, n); returns the trained (W, b).

    The gradient of a batch-mean cross-entropy of a linear head is written out
    ((softmax - onehot) / B against the features): no autograd graph per step."""
    features = features.detach()
    T, _, _ = features.shape
    ways = weight.shape[1]
    w, b = weight.clone(), bias.clone()
    opt = BatchedAdam([w, b], lr=lr, weight_decay=weight_decay)
    dev = features.device
    labels_dev = labels.to(dev)
    rows = torch.arange(T, device=dev)[:, None]
    with torch.no_grad():
        for _ in range(epochs):
            batches = epoch_batches(labels, sampler_generators, epoch_images, batch_size).to(dev)
            for s in range(batches.shape[1]):
                idx = batches[:, s]                                   # (T, B)
                x = features[rows, idx]                               # (T, B, D)
                y = labels_dev[rows, idx]
                dlogits = torch.softmax(torch.baddbmm(b[:, None, :], x, w.transpose(1, 2)), -1)
                dlogits -= F.one_hot(y, ways).to(dlogits.dtype)
                dlogits /= idx.shape[1]                               # batch-mean loss per task
                opt.step([torch.bmm(dlogits.transpose(1, 2), x), dlogits.sum(1)])
    return w, b


def head_logits(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(T, n, D) features -> (T, n, N) logits, task t through head t."""
    return torch.baddbmm(bias[:, None, :], features, weight.transpose(1, 2))


def sample_labels(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One label per row of `probs` by inverse CDF: P(label = k) = probs[..., k].

    Taking the uniforms as input (drawn from each task's generator) keeps the draws
    independent of how tasks are batched."""
    cdf = probs.cumsum(-1)
    y = torch.searchsorted(cdf, uniforms.unsqueeze(-1).to(cdf.dtype), right=True).squeeze(-1)
    return y.clamp_(max=probs.shape[-1] - 1)
