"""The exact diagonal Fisher of a task: per-sample squared gradients on the task's own images.

How it differs from the published Monte-Carlo estimate (fisher_faithful) and why:

- Published: ~156 batches of 64 images resampled (with replacement) from the task's 100
  images, one model-sampled label per image, and the *square of each batch-mean gradient*.
  That is (1/64) x the Fisher plus the square of the mean score, estimated from ~10,000 draws,
  with each batch normalised by its own BatchNorm statistics: 156 forward+backward passes.
- Exact: F_k = 1/(n L) sum_i sum_l (d/dθ_k log p(y_il | x_i))^2, y_il ~ p(. | x_i), over the
  task's n images once (all of them, support and query, as published), L label draws each
  (``label_draws``); or, with ``label_draws: 0``, the expectation over the label taken
  exactly, sum_k p_k (d/dθ_k log p_k)^2 (N backward passes, no sampling noise). BatchNorm uses the statistics of the whole task, held fixed
  (detached): per-sample gradients are only defined when a sample's loss does not depend on
  the other samples. One forward pass and L backward passes w.r.t. the layer outputs; the
  per-filter means of the per-sample squared weight gradients come from layer inputs and
  output gradients (G A^T, or the Gram form G K G^T which costs nothing extra per label draw
  in the deep, spatially small layers). Nothing of size (n, #params) is ever built.
- The head is the published head step (trained on the task's features, body frozen), fed
  with features from the same forward pass (whole-task statistics).

The two estimates differ in scale (the published one is ~1/64 of the Fisher) and in noise;
the normalised cosine distance (a / (a + b)) is scale-free, so coefficients are comparable
across tasks of one method but not between methods.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from divcoeff.settings import DiversityCompute, DiversitySettings
from divcoeff.task2vec.probes import Probe
from divcoeff.task2vec.head import head_logits, sample_labels, train_heads
from divcoeff.task2vec.trace import Layer, Trace, per_filter_sq_grads

def embed(probe: Probe, layers: list[Layer], x: torch.Tensor, labels: torch.Tensor, w0: torch.Tensor,
          b0: torch.Tensor, gens: dict, settings: DiversitySettings, compute: DiversityCompute) -> list[torch.Tensor]:
    """Method ``exact`` (task2vec.embedding.METHODS); x (T, n, C, H, W) preprocessed, gens by stream."""
    return exact_fisher(probe, layers, x, labels, w0, b0, gens["head_sampler"], gens["labels"], settings,
                        compute.exact_chunk_size)


def exact_fisher(probe: Probe, layers: list[Layer], images: torch.Tensor, labels: torch.Tensor,
                 weight: torch.Tensor, bias: torch.Tensor, head_sampler_gens, label_gens,
                 settings: DiversitySettings, chunk_size: int) -> list[torch.Tensor]:
    """Train the heads and return the per-filter Fisher, a list over layers of (T, C_l).

    images (T, n, C, H, W) preprocessed; labels (T, n); weight/bias the initial heads;
    head_sampler_gens / label_gens one generator per task. The head step is the published one
    (``diversity.faithful``'s images, batches and optimiser) for ``diversity.exact.head_epochs``;
    chunk_size: samples per per-sample-gradient block (``compute.diversity.exact_chunk_size``)."""
    T, n = images.shape[:2]
    dev = images.device
    f, label_draws = settings.faithful, settings.exact.label_draws
    with torch.enable_grad(), Trace(probe.body, layers, group_size=n, detach_stats=True, capture=True) as trace:
        feats = probe.body(images.reshape(T * n, *images.shape[2:])).view(T, n, -1)
    w, b = train_heads(feats, labels, weight, bias, head_sampler_gens, settings.exact.head_epochs, f.epoch_images,
                       f.batch_size, f.lr, f.weight_decay)
    logits = head_logits(feats, w, b)
    probs = F.softmax(logits.detach(), -1)
    acc = [images.new_zeros(T * n, layer.channels) for layer in layers]
    cache: dict = {}
    inputs = trace.grad_inputs()
    ways = probs.shape[-1]
    passes = label_draws if label_draws > 0 else ways
    eye = torch.eye(ways, device=dev, dtype=probs.dtype)
    for d in range(passes):
        if label_draws > 0:
            u = torch.stack([torch.rand(n, generator=g) for g in label_gens]).to(dev)
            # d(-log p_y)/d logits, per sample (the loss is a sum over samples)
            gout = probs - eye[sample_labels(probs, u)]
        else:
            # expectation over y ~ p: sum_k p_k (d/dθ -log p_k)^2, no sampling noise
            gout = probs[..., d:d + 1].sqrt() * (probs - eye[d])
        grads = torch.autograd.grad(logits, inputs, grad_outputs=gout, retain_graph=d < passes - 1)
        trace.check_unmodified()
        for a, sq in zip(acc, per_filter_sq_grads(trace, grads, group=1, chunk=chunk_size, cache=cache,
                                                  draws=passes)):
            a += sq
    per_label = label_draws if label_draws > 0 else 1
    return [a.view(T, n, -1).sum(1) / (n * per_label) for a in acc]
