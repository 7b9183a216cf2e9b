"""The published Monte-Carlo Fisher ("montecarlo", aws-cv-task2vec), same semantics and defaults.

For each task, ``fisher_epochs`` epochs of the class-balanced sampler (``epoch_images`` draws
with replacement, batches of ``batch_size``, last partial batch dropped); per batch: a forward
pass with train-mode BatchNorm (statistics of that batch), one label per image drawn from
softmax(output), the batch-mean cross-entropy, its gradient g, and ``acc += g**2``. After the
epochs ``acc / n_batches``; the embedding value of a filter (BN channel) is the mean of acc over
everything but the output channel. Note this is the square of the *batch-mean* gradient.

Two engines, same numbers (same per-task random streams):
- ``loop``: one task at a time, plain autograd w.r.t. the weights (no copy of the probe: the
  head is a tensor, the body is shared and never updated);
- ``batched``: the batches of several tasks in one forward pass, each normalised with its own
  statistics (Trace groups), gradients taken w.r.t. layer outputs once, and every task's weight
  gradient formed from them (G A^T per group, or its Gram form).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from divcoeff.models.probes import Probe
from divcoeff.task2vec.head import epoch_batches, head_logits, sample_labels
from divcoeff.task2vec.trace import Layer, Trace, per_filter_sq_grads


def cache_features(probe: Probe, layers: list[Layer], images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Published ``_cache_features``: the task's images in order, batches of `batch_size`, train-mode BN.

    images (T, n, C, H, W), preprocessed -> features (T, n, D). Tasks are batched together,
    each normalised with its own statistics."""
    T, n = images.shape[:2]
    out = []
    with torch.no_grad():
        for c0 in range(0, n, batch_size):
            x = images[:, c0:c0 + batch_size]
            k = x.shape[1]
            with Trace(probe.body, layers, group_size=k):
                out.append(probe.body(x.reshape(T * k, *x.shape[2:])).view(T, k, -1))
    return torch.cat(out, 1)


def _label_uniforms(generators: list[torch.Generator], n: int, device) -> torch.Tensor:
    return torch.stack([torch.rand(n, generator=g) for g in generators]).to(device)


def fisher_loop(probe: Probe, layers: list[Layer], images: torch.Tensor, labels: torch.Tensor,
                weight: torch.Tensor, bias: torch.Tensor, sampler_gens, label_gens, epochs: int,
                epoch_images: int, batch_size: int) -> list[torch.Tensor]:
    """Per-filter Fisher (list over layers of (T, C_l)), one task at a time."""
    params = [layer.module.weight for layer in layers]
    result = [torch.zeros(images.shape[0], layer.channels, device=images.device) for layer in layers]
    for t in range(images.shape[0]):
        count = 0
        for _ in range(epochs):
            batches = epoch_batches(labels[t:t + 1], [sampler_gens[t]], epoch_images, batch_size)[0]
            for idx in batches.to(images.device):
                with Trace(probe.body, layers):
                    feats = probe.body(images[t, idx])
                logits = feats @ weight[t].T + bias[t]
                u = _label_uniforms([label_gens[t]], len(idx), images.device)[0]
                y = sample_labels(F.softmax(logits.detach(), -1), u)
                grads = torch.autograd.grad(F.cross_entropy(logits, y), params)
                for r, layer, g in zip(result, layers, grads):
                    r[t] += g.pow(2).reshape(g.shape[0], -1).mean(1)
                count += 1
        for r in result:
            r[t] /= count
    return result


def fisher_batched(probe: Probe, layers: list[Layer], images: torch.Tensor, labels: torch.Tensor,
                   weight: torch.Tensor, bias: torch.Tensor, sampler_gens, label_gens, epochs: int,
                   epoch_images: int, batch_size: int, chunk_size: int = 4096) -> list[torch.Tensor]:
    """Per-filter Fisher (list over layers of (T, C_l)), all tasks' batches in one pass per step."""
    T = images.shape[0]
    dev = images.device
    rows = torch.arange(T, device=dev)[:, None]
    result = [torch.zeros(T, layer.channels, device=dev) for layer in layers]
    count = 0
    for _ in range(epochs):
        batches = epoch_batches(labels, sampler_gens, epoch_images, batch_size).to(dev)  # (T, S, B)
        for s in range(batches.shape[1]):
            idx = batches[:, s]
            B = idx.shape[1]
            x = images[rows, idx].reshape(T * B, *images.shape[2:])
            with Trace(probe.body, layers, group_size=B, capture=True) as trace:
                feats = probe.body(x).view(T, B, -1)
            logits = head_logits(feats, weight, bias)
            y = sample_labels(F.softmax(logits.detach(), -1), _label_uniforms(label_gens, B, dev))
            # sum over tasks of each task's batch-mean loss: task t's gradients are its own
            loss = F.cross_entropy(logits.reshape(T * B, -1), y.reshape(-1), reduction="sum") / B
            grads = torch.autograd.grad(loss, trace.grad_inputs())
            trace.check_unmodified()
            for r, sq in zip(result, per_filter_sq_grads(trace, grads, group=B, chunk=chunk_size)):
                r += sq
            count += 1
    return [r / count for r in result]
