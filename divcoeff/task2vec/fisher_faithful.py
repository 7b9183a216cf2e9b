"""The published Monte-Carlo Fisher ("montecarlo", aws-cv-task2vec), same semantics and defaults.

For each task, ``fisher_epochs`` epochs of the class-balanced sampler (``epoch_images`` draws
with replacement, batches of ``batch_size``, last partial batch dropped); per batch: a forward
pass with train-mode BatchNorm (statistics of that batch), one label per image drawn from
softmax(output), the batch-mean cross-entropy, its gradient g, and ``acc += g**2``. After the
epochs ``acc / n_batches``; the embedding value of a filter (BN channel) is the mean of acc over
everything but the output channel. Note this is the square of the *batch-mean* gradient.

Two engines, one pass (fisher_pass.FisherPass: each distinct image of a batch once with its
multiplicity, only the weight gradients the embedding needs, per task); same numbers:
- ``loop``: one task's batch per pass (no copy of the probe: the head is a tensor, the body is
  shared and never updated);
- ``batched``: the batches of all the tasks of a call in one pass, each normalised with its own
  statistics, every task's weight gradient formed from the shared backward pass.

Float32: why implementations differ by up to ~1e-2, and what agrees. In float64 both engines
equal the published code path (bench/task2vec.py ``baseline_embed_task``) to ~6e-13 relative on
the same draws (tests/test_task2vec.py); so the math, copies and cropped taps included, is the
published one. In float32 every implementation, the published code included, moves away from
its own float64 value, and mostly not by accumulated rounding: a batch's gradient passes through
thresholds - a ReLU mask (a pre-activation within rounding of 0), in principle also a max-pool
choice or a sampled label (u within rounding of a softmax CDF step) - and one crossing reroutes a
gradient, changing that batch's squares by up to a few 1e-2 of a layer's largest value (a
ResNet-18 at 32 px has ~1M pre-activations per batch of ~47 images: a crossing every few
batches). Measured on one real glyph task (random ResNet-18, 32 px, 156 batches, each batch
compared with float64 on the same head and draws): the published code path crossed differently
from float64 in 21 batches, ours in 28, both in 14 of those (float64 falls on the other side);
each of the 9 such batches of ours examined held exactly one flipped ReLU mask (no max-pool or
label flip); the other batches agree with float64 to ~2e-5 of the layer maximum, as they do
in a probe too small to cross a threshold (test: 7e-6 to 1.2e-5). Two float32 implementations
differ from each other wherever either crosses: after 156 batches ~1e-3 to 1e-2 of a layer's
largest value, per entry more (bench/task2vec.py prints it, and with ``--float64-reference``
each one's distance from float64: on 2 glyph tasks 1.9e-3 (published) and 1.4e-2 (ours) of the
layer maximum, by which crossings each happened to make). That was also the old batched
engine's "1e-2 in BatchNorm entries": its different order of summation crossed differently,
while the old loop engine matched the published path to 9e-7 only because it ran the same
kernels in the same order. Shrinking it would need float64 through the network (2-3x slower on
CPU); accumulating BatchNorm's sums in float64, as torch's CPU kernels do, changed nothing
measurable (median batch error 2.2e-5 vs 1.9e-5) and cost 8-14%, so it is not done.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from divcoeff.settings import DiversityCompute, DiversitySettings
from divcoeff.task2vec.probes import Probe
from divcoeff.task2vec.fisher_pass import FisherPass, RowGroups
from divcoeff.task2vec.head import epoch_batches, sample_labels, train_heads
from divcoeff.task2vec.trace import Layer, Trace


# CPU inputs up to this size (px) run the faithful Fisher batched across tasks (see faithful_engine).
CPU_BATCHED_MAX_SIZE = 32


def faithful_engine(setting: str, device: torch.device, image_size: int) -> str:
    """Which faithful Fisher engine to use: the setting, or for ``auto`` the one measured faster.

    CPU, measured with bench/task2vec.py (1 thread, real glyph tasks, random ResNet-18, alternating
    rounds, CPU seconds per task): at 32 px with 8 tasks per pass ``batched`` 4.24 vs ``loop``
    4.91 s/task (40 batches per task; 19.5 vs 20.6 with 2 tasks and the full 156) - one pass of
    ~380 distinct images keeps oneDNN's kernels busier than ~47 at a time on spatially tiny maps;
    at 84 px with 4 tasks ``loop`` 7.96 vs ``batched`` 8.94 s/task (10 batches) - the maps are big
    enough already, and one task's activations stay in cache. CUDA: ``batched``, not measured
    here (no GPU in reach); bench/gpu.sh times both engines at 32 and 84 px."""
    if setting in ("loop", "batched"):
        return setting
    if setting != "auto":
        raise ValueError(f"diversity.faithful.engine: expected auto, loop or batched, got {setting!r}")
    if device.type == "cpu" and image_size > CPU_BATCHED_MAX_SIZE:
        return "loop"
    return "batched"


def embed(probe: Probe, layers: list[Layer], x: torch.Tensor, labels: torch.Tensor, w0: torch.Tensor,
          b0: torch.Tensor, gens: dict, settings: DiversitySettings, compute: DiversityCompute) -> list[torch.Tensor]:
    """Method ``faithful`` (task2vec.embedding.METHODS): the published head step on cached features,
    then the Monte-Carlo Fisher; x (T, n, C, H, W) preprocessed, gens the tasks' generators by stream."""
    f = settings.faithful
    feats = cache_features(probe, layers, x, f.batch_size)
    w, b = train_heads(feats, labels, w0, b0, gens["head_sampler"], f.head_epochs, f.epoch_images, f.batch_size,
                       f.lr, f.weight_decay)
    engine = faithful_engine(compute.engine, x.device, x.shape[-1])
    return fisher_montecarlo(probe, layers, x, labels.to(x.device), w, b, gens["fisher_sampler"], gens["labels"],
                             f.fisher_epochs, f.epoch_images, f.batch_size,
                             tasks_per_pass=1 if engine == "loop" else len(x))


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


def fisher_montecarlo(probe: Probe, layers: list[Layer], images: torch.Tensor, labels: torch.Tensor,
                      weight: torch.Tensor, bias: torch.Tensor, sampler_gens, label_gens, epochs: int,
                      epoch_images: int, batch_size: int, tasks_per_pass: int = 1) -> list[torch.Tensor]:
    """Per-filter Fisher (list over layers of (T, C_l)) of T tasks, `tasks_per_pass` tasks per pass.

    images (T, n, C, H, W) preprocessed; labels (T, n); weight (T, N, D) / bias (T, N) the heads."""
    T = images.shape[0]
    result = [images.new_zeros(T, layer.channels) for layer in layers]
    for t0 in range(0, T, tasks_per_pass):
        tasks = list(range(t0, min(T, t0 + tasks_per_pass)))
        for r, f in zip(result, _fisher_of_tasks(probe, layers, images, labels, weight, bias, tasks, sampler_gens,
                                                  label_gens, epochs, epoch_images, batch_size)):
            r[tasks] = f
    return result


def _fisher_of_tasks(probe, layers, images, labels, weight, bias, tasks, sampler_gens, label_gens, epochs,
                     epoch_images, batch_size) -> list[torch.Tensor]:
    acc = [images.new_zeros(len(tasks), layer.channels) for layer in layers]
    count = 0
    cache: dict = {}
    for _ in range(epochs):
        batches = epoch_batches(labels[tasks], [sampler_gens[t] for t in tasks], epoch_images, batch_size)
        for s in range(batches.shape[1]):
            sq = batch_fisher(probe, layers, images, weight, bias, tasks, batches[:, s],
                              _label_uniforms([label_gens[t] for t in tasks], batch_size, images.device), cache)
            for a, v in zip(acc, sq):
                a += v
            count += 1
    return [a / count for a in acc]


def batch_fisher(probe: Probe, layers: list[Layer], images: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor, tasks: list[int], batch: torch.Tensor, uniforms: torch.Tensor,
                 cache: dict | None = None) -> list[torch.Tensor]:
    """One Monte-Carlo step for each of `tasks`: the per-filter squares of the gradient of the task's
    batch-mean cross-entropy, labels drawn from the model by `uniforms` (G, B), batch (G, B) the
    indices of the task's images. A list over layers of (G, C_l)."""
    dev = images.device
    B = batch.shape[1]
    distinct, position, counts = [], [], []
    offset = 0
    for g, t in enumerate(tasks):
        u, inv, c = torch.unique(batch[g], return_inverse=True, return_counts=True)
        distinct.append(u)
        position.append(inv + offset)  # the pass's row of each of the batch's B images
        counts.append(c)
        offset += len(u)
    rows = RowGroups.from_counts(counts, dev, images.dtype)
    x = torch.cat([images[t, u.to(dev)] for t, u in zip(tasks, distinct)])
    with torch.enable_grad(), FisherPass(probe.body, layers, rows, cache) as fp:
        feats = probe.body(x)
        logits = torch.cat([feats[sl] @ weight[t].T + bias[t] for t, sl in zip(tasks, rows.slices())])
    probs = F.softmax(logits.detach(), -1)
    position = torch.stack(position).to(dev)                                      # (G, B)
    y = sample_labels(probs[position], uniforms)
    # d(batch-mean cross-entropy)/d logits of a row: the sum over its copies of (p - onehot(y)) / B
    dlogits = probs * rows.share[:, None]
    dlogits.index_put_((position.flatten(), y.flatten()), torch.tensor(-1.0 / B, device=dev, dtype=dlogits.dtype),
                      accumulate=True)
    grads = torch.autograd.grad(logits, fp.leaves(), grad_outputs=dlogits)
    return fp.per_filter_sq(grads)
