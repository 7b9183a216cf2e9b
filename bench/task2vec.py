"""Per-task cost of Task2Vec: the published one-task-at-a-time algorithm vs this project's modes.

The baseline (`baseline_embed_task`) is written here, straightforwardly, the way the
published code runs it (aws-cv-task2vec ``Task2Vec.embed`` with ``montecarlo`` Fisher): a deep
copy of the probe and its one fresh ``fc`` per task, train mode, features cached in loader order,
the head trained with ``torch.optim.Adam`` one batch at a time, then the Monte-Carlo Fisher
with ``p.grad ** 2`` accumulated after every backward pass, then per-filter means. It takes
its random draws from the same per-task streams as divcoeff.task2vec, so with the same seed
it must give the same embedding as the project's faithful mode (tests/test_task2vec.py).

    .venv/bin/python bench/task2vec.py                       # 32 px ResNet-18, random init
    .venv/bin/python bench/task2vec.py --size 84 --tasks 4 --baseline-tasks 1
    .venv/bin/python bench/task2vec.py --view results/views/glyphs-all.tsv \
        --episodes results/episodes/glyphs-all/5way-5shot-15query-24x-seed31.json

Prints per-task seconds of each method and the ratios to the baseline.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from divcoeff.models.probes import Probe, torchvision_probe  # noqa: E402
from divcoeff.task2vec import Task2VecSettings, embed_batch, task_streams  # noqa: E402


def baseline_embed_task(probe: Probe, images: torch.Tensor, labels: torch.Tensor, task_id: int, seed: int,
                        head_epochs: int = 10, epoch_images: int = 10000, batch_size: int = 64,
                        lr: float = 4e-4, weight_decay: float = 1e-4, fisher_epochs: int = 1) -> np.ndarray:
    """The published Task2Vec embedding of one task; images (n, C, H, W) in [0, 1], labels (n,)."""
    streams = task_streams(seed, task_id)
    ways = int(labels.max()) + 1
    model = nn.Sequential(OrderedDict(body=copy.deepcopy(probe.body), fc=nn.Linear(probe.feature_dim, ways)))
    bound = 1.0 / probe.feature_dim ** 0.5
    with torch.no_grad():  # nn.Linear's init, drawn from the task's head-init stream
        model.fc.weight.uniform_(-bound, bound, generator=streams["head_init"])
        model.fc.bias.uniform_(-bound, bound, generator=streams["head_init"])
    dtype = next(probe.body.parameters()).dtype  # float32 as published; float64 in the exactness test
    model.to(dtype).train()
    x = probe.preprocess(images.to(dtype))

    def sampler(generator):  # class-balanced WeightedRandomSampler, batches, drop_last
        counts = torch.bincount(labels).double()
        weights = 1.0 / counts[labels]
        idx = torch.multinomial(weights / weights.sum(), epoch_images, replacement=True, generator=generator)
        n_batches = epoch_images // batch_size
        return idx[: n_batches * batch_size].view(n_batches, batch_size)

    # 1. cache the penultimate features (train mode, loader order, batches of 64)
    with torch.no_grad():
        feats = torch.cat([model.body(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    # 2. fit the head on the cached features
    opt = torch.optim.Adam(model.fc.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(head_epochs):
        for idx in sampler(streams["head_sampler"]):
            opt.zero_grad()
            F.cross_entropy(model.fc(feats[idx]), labels[idx]).backward()
            opt.step()
    # 3. Monte-Carlo Fisher: square of the batch-mean gradient, labels drawn from the model
    acc = {p: torch.zeros_like(p) for p in model.parameters()}
    count = 0
    for _ in range(fisher_epochs):
        for idx in sampler(streams["fisher_sampler"]):
            out = model(x[idx])
            cdf = F.softmax(out.detach(), -1).cumsum(-1)
            u = torch.rand(len(idx), generator=streams["labels"])
            y = torch.searchsorted(cdf, u[:, None], right=True).squeeze(1).clamp(max=ways - 1)
            loss = F.cross_entropy(out, y)
            model.zero_grad()
            loss.backward()
            for p in model.parameters():
                acc[p] += p.grad ** 2
            count += 1
    # 4. one value per conv filter / BN channel, head excluded
    hess = [(acc[m.weight] / count).reshape(m.weight.shape[0], -1).mean(1)
            for _, m in model.body.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    return torch.cat(hess).detach().numpy()


def synthetic_tasks(n_tasks: int, ways: int, per_class: int, size: int, seed: int = 0):
    """Tasks of learnable classes: a random blob pattern per class plus noise, RGB in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(n_tasks):
        protos = (torch.rand(ways, 3, size, size, generator=g) < 0.3).float()
        noise = torch.randn(ways, per_class, 3, size, size, generator=g) * 0.15
        images.append((protos[:, None] * 0.8 + noise).clamp(0, 1).flatten(0, 1))
    labels = torch.arange(ways).repeat_interleave(per_class)
    return torch.stack(images), labels.repeat(n_tasks, 1)


def episode_tasks(view_tsv: str, episodes_json: str, n_tasks: int, size: int):
    from divcoeff.data.episodes import load_episodes
    from divcoeff.data.views import View
    from divcoeff.diversity import task_images

    view = View.load(view_tsv)
    eps = load_episodes(episodes_json, view)
    return task_images(view, eps, list(range(min(n_tasks, eps.n_episodes))), size, 3)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18", choices=["resnet18", "resnet34"])
    ap.add_argument("--size", type=int, default=32, help="probe input size (px)")
    ap.add_argument("--tasks", type=int, default=8, help="tasks embedded by the project's modes")
    ap.add_argument("--baseline-tasks", type=int, default=2, help="tasks embedded by the (slow) baseline")
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--per-class", type=int, default=20, help="images per class (shots + queries)")
    ap.add_argument("--view", help="use real episodes: a view TSV ...")
    ap.add_argument("--episodes", help="... and an episode file drawn from it")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--head-epochs", type=int, default=10)
    ap.add_argument("--label-draws", type=int, default=4)
    ap.add_argument("--methods", default="exact,faithful-loop,faithful-batched")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    probe = torchvision_probe(args.arch, "random", args.size, seed=args.seed)
    if args.view:
        images, labels = episode_tasks(args.view, args.episodes, args.tasks, args.size)
    else:
        images, labels = synthetic_tasks(args.tasks, args.ways, args.per_class, args.size, args.seed)
    T, n = images.shape[:2]
    print(f"probe {args.arch} random init, {args.size} px, {T} tasks of {n} images, "
          f"{args.threads} thread(s), torch {torch.__version__}")
    # warm-up: first calls pay one-off costs (lazy imports of torch.optim, kernel selection)
    baseline_embed_task(probe, images[0], labels[0], 0, args.seed, head_epochs=1, epoch_images=128)
    embed_batch(probe, images[:1], labels[:1], [0], args.seed,
                Task2VecSettings(method="exact", exact_head_epochs=1, label_draws=1))

    nb = min(args.baseline_tasks, T)
    t0 = time.perf_counter()
    base = [baseline_embed_task(probe, images[t], labels[t], t, args.seed, head_epochs=args.head_epochs)
            for t in range(nb)]
    BASE = "baseline (published, one task at a time)"
    per_task = {BASE: (time.perf_counter() - t0) / nb} if nb else {}
    results = {}
    for method in args.methods.split(","):
        name, _, engine = method.partition("-")
        s = Task2VecSettings(method=name, head_epochs=args.head_epochs, exact_head_epochs=args.head_epochs,
                             label_draws=args.label_draws, engine=engine or "auto", task_batch=T)
        t0 = time.perf_counter()
        results[method] = embed_batch(probe, images, labels, list(range(T)), args.seed, s).numpy()
        per_task[method] = (time.perf_counter() - t0) / T
    ref = per_task.get(BASE)
    print(f"{'method':45s} {'s/task':>8s} {'speed-up':>9s}")
    for k, v in per_task.items():
        print(f"{k:45s} {v:8.3f} " + (f"{ref / v:8.1f}x" if ref else "       -"))
    for method, emb in results.items():
        if method.startswith("faithful") and nb:
            err = max(float(np.abs(emb[t] - base[t]).max() / np.abs(base[t]).max()) for t in range(nb))
            print(f"{method}: max relative deviation from the baseline over {nb} task(s): {err:.2e}")


if __name__ == "__main__":
    main()
