"""Task2Vec per task: the published algorithm, reimplemented plainly, side by side with this project's.

The published code path (`baseline_embed_task`) is written here, straightforwardly, the way
aws-cv-task2vec ``Task2Vec.embed`` runs it with the ``montecarlo`` Fisher (REFERENCE.md 1): one
task at a time, a deep copy of the probe with one fresh ``fc`` per task, train mode, features
cached in loader order, the head trained with ``torch.optim.Adam`` on batches from a class-balanced
``WeightedRandomSampler``-style sampler, then the Monte-Carlo Fisher with ``loss.backward()`` and
``p.grad ** 2`` accumulated for every parameter, then per-filter means. It takes its random draws
from the same per-task streams as divcoeff.task2vec, so with the same seed both compute the same
embedding (tests/test_task2vec.py checks it to 1e-9 in float64).

How it is measured (the machine may be shared): the published path and each of our engines
embed the same tasks in turn, and that round is repeated ``--rounds`` times; each figure is the
median over rounds of the seconds per task, and the speed-up is the median over rounds of the
per-round ratio (a busy spell slows both sides of one round alike). Wall seconds are reported,
and, on CPU, process CPU seconds (with 1 thread the better estimate of an uncontended run).
Ours embeds the round's tasks in one call (head step of all of them together, Fisher per engine).

Differences of the embeddings are reported as the largest relative difference per entry and
relative to the largest value of each layer, split by layer kind (conv / BatchNorm); with
``--float64-reference`` also each float32 result's distance from our engine run in float64 on the
same draws, which shows how far float32 rounding alone moves the published code's own result.

    .venv/bin/python bench/task2vec.py --glyphs --threads 1             # real glyph tasks (DejaVu)
    .venv/bin/python bench/task2vec.py --tasks 2 --rounds 3              # synthetic tasks
    .venv/bin/python bench/task2vec.py --size 84 --tasks 1 --rounds 1 --methods faithful-loop
    .venv/bin/python bench/task2vec.py --view results/views/glyphs-all.tsv \
        --episodes results/episodes/glyphs-all/5way-5shot-15query-24x-seed31.json

Not a test: nothing here is asserted. Prints ``FIGURE task2vec-...`` lines (bench/figure.py).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from divcoeff.task2vec.probes import Probe, torchvision_probe  # noqa: E402
from divcoeff.settings import DiversityCompute, DiversitySettings, compute_settings  # noqa: E402
from divcoeff.task2vec import embed_batch, task_streams  # noqa: E402
from divcoeff.task2vec.trace import embedding_layout  # noqa: E402
from figure import device_name, figure, pick_device, synchronize  # noqa: E402

BASELINE = "published"


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
    first = next(probe.body.parameters())  # float32 as published; float64 in the exactness test
    model.to(device=first.device, dtype=first.dtype).train()
    x = probe.preprocess(images.to(device=first.device, dtype=first.dtype))
    labels = labels.to(first.device)

    def sampler(generator):  # class-balanced WeightedRandomSampler, batches, drop_last
        counts = torch.bincount(labels.cpu()).double()
        weights = 1.0 / counts[labels.cpu()]
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
            u = torch.rand(len(idx), generator=streams["labels"]).to(x.device)
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
    return torch.cat(hess).detach().cpu().numpy()


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
    from divcoeff.task2vec.coefficient import task_images

    view = View.load(view_tsv)
    eps = load_episodes(episodes_json, view)
    return task_images(view, eps, list(range(min(n_tasks, eps.n_episodes))), size, 3)


def glyph_tasks(n_tasks: int, size: int, seed: int = 1):
    """5-way tasks of 5 + 15 real glyph images, drawn mixture-style over every script that the
    DejaVu fonts cover (rendered into a temporary folder, a few seconds)."""
    from divcoeff.data.episodes import sample_episodes
    from divcoeff.data.indexed import IndexedDataset
    from divcoeff.data.views import View, build_view, write_view
    from divcoeff.task2vec.coefficient import task_images
    from divcoeff.glyphs.build import render_benchmark

    spec = {"source": "glyphs", "image_size": 28, "font_dirs": ["/usr/share/fonts/truetype/dejavu"],
            "images_per_class": 20, "heldout_class_fraction": 0.3, "heldout_family_fraction": 0.34,
            "max_classes_per_script": 30, "jitter": {"rotate_deg": 8.0, "translate": 0.06, "scale": 0.08},
            "seed": 11}
    with tempfile.TemporaryDirectory() as tmp:
        ds = IndexedDataset.load(render_benchmark("glyphs", spec, Path(tmp) / "glyphs"))
        table, meta = build_view("bench", {"benchmarks": ["glyphs"], "domains": "all", "images_per_class": 20},
                                 {"glyphs": ds}, seed=0)
        write_view(Path(tmp) / "v.tsv", Path(tmp) / "v.json", table, meta)
        view = View.load(Path(tmp) / "v.tsv")
        eps = sample_episodes(view, ways=5, shots=5, queries=15, n=n_tasks, seed=seed)
        return task_images(view, eps, list(range(n_tasks)), size, 3)


def layer_kinds(probe: Probe) -> list[tuple[str, slice]]:
    out, o = [], 0
    for layer in embedding_layout(probe.body):
        out.append((layer.kind, slice(o, o + layer.channels)))
        o += layer.channels
    return out


def differences(probe: Probe, emb: np.ndarray, ref: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per layer kind: (largest relative difference of an entry, largest difference relative to the
    largest value of its layer), over tasks."""
    out: dict[str, tuple[float, float]] = {}
    for kind, sl in layer_kinds(probe):
        a, b = emb[:, sl].astype(np.float64), ref[:, sl].astype(np.float64)
        entry = float((np.abs(a - b) / np.abs(b).clip(min=np.finfo(np.float64).tiny)).max())
        layer = float((np.abs(a - b) / np.abs(b).max(axis=1, keepdims=True)).max())
        e0, l0 = out.get(kind, (0.0, 0.0))
        out[kind] = (max(e0, entry), max(l0, layer))
    return out


def describe(diff: dict[str, tuple[float, float]]) -> str:
    return "; ".join(f"{kind} {e:.1e} per entry, {l:.1e} of the layer max" for kind, (e, l) in diff.items())


class Clock:
    def __init__(self, device):
        self.device = device
        synchronize(device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        synchronize(self.device)
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def settings_of(method: str, args, head_epochs: int | None = None, epoch_images: int | None = None,
                task_batch: int | None = None) -> tuple[DiversitySettings, DiversityCompute]:
    """A method name (exact, faithful-loop, ...) and the bench's arguments as the settings the
    Task2Vec code takes; head_epochs, epoch_images and task_batch override the arguments."""
    name, _, engine = method.partition("-")
    head_epochs = args.head_epochs if head_epochs is None else head_epochs
    div = DiversitySettings.from_config({
        "method": name, "exact": {"head_epochs": head_epochs, "label_draws": args.label_draws},
        "faithful": {"head_epochs": head_epochs, "epoch_images": epoch_images or args.epoch_images}})
    compute = compute_settings({"diversity": {"engine": engine or "auto", "task_batch": task_batch or args.tasks}})
    return div, compute.diversity


def run_round(probe, images, labels, args, methods, device) -> tuple[dict, dict]:
    """One round: the published path, then each method, on the same tasks. Seconds per task
    (wall, cpu) and the embeddings of each."""
    T = images.shape[0]
    seconds, embeddings = {}, {}
    if args.baseline:
        clock = Clock(device)
        embeddings[BASELINE] = np.stack([
            baseline_embed_task(probe, images[t], labels[t], t, args.seed, head_epochs=args.head_epochs,
                                epoch_images=args.epoch_images) for t in range(T)])
        seconds[BASELINE] = tuple(v / T for v in clock.stop())
    for method in methods:
        clock = Clock(device)
        embeddings[method] = embed_batch(probe, images, labels, list(range(T)), args.seed, *settings_of(method, args),
                                         device).cpu().numpy()
        seconds[method] = tuple(v / T for v in clock.stop())
    return seconds, embeddings


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18", choices=["resnet18", "resnet34"])
    ap.add_argument("--size", type=int, default=32, help="probe input size (px)")
    ap.add_argument("--tasks", type=int, default=2, help="tasks per round (all methods embed the same ones)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; figures are medians over rounds")
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--per-class", type=int, default=20, help="images per class (shots + queries)")
    ap.add_argument("--glyphs", action="store_true", help="real 5-way 5+15 glyph tasks from the DejaVu fonts")
    ap.add_argument("--view", help="use real episodes: a view TSV ...")
    ap.add_argument("--episodes", help="... and an episode file drawn from it")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--head-epochs", type=int, default=10)
    ap.add_argument("--epoch-images", type=int, default=10000, help="sampler draws per epoch (head and Fisher)")
    ap.add_argument("--label-draws", type=int, default=0, help="exact method: label draws (0: expectation)")
    ap.add_argument("--methods", default="faithful-loop,faithful-batched",
                    help="comma-separated: faithful-loop, faithful-batched, faithful (auto), exact")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the published path")
    ap.add_argument("--float64-reference", action="store_true",
                    help="also run faithful-loop in float64 on the same draws and compare everything to it")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    methods = [m for m in args.methods.split(",") if m]

    probe = torchvision_probe(args.arch, "random", args.size, seed=args.seed).to(device)
    if args.glyphs:
        images, labels = glyph_tasks(args.tasks, args.size)
        source = "real glyph tasks (DejaVu)"
    elif args.view:
        images, labels = episode_tasks(args.view, args.episodes, args.tasks, args.size)
        source = f"episodes of {args.view}"
    else:
        images, labels = synthetic_tasks(args.tasks, args.ways, args.per_class, args.size, args.seed)
        source = "synthetic tasks"
    T, n = images.shape[:2]
    print(f"probe {args.arch} random init, {args.size} px, {T} {source} of {n} images, "
          f"{args.epoch_images} draws per epoch, on {device_name(device)}, torch {torch.__version__}", flush=True)
    # warm-up: first calls pay one-off costs (lazy imports of torch.optim, kernel selection)
    if args.baseline:
        baseline_embed_task(probe, images[0], labels[0], 0, args.seed, head_epochs=1, epoch_images=128)
    for method in methods:
        warm = settings_of(method, args, head_epochs=1, epoch_images=128, task_batch=1)
        embed_batch(probe, images[:1], labels[:1], [0], args.seed, *warm, device)

    rounds = []
    for r in range(args.rounds):
        seconds, embeddings = run_round(probe, images, labels, args, methods, device)
        rounds.append(seconds)
        print(f"round {r + 1}: " + ", ".join(f"{k} {w:.2f} s/task (cpu {c:.2f})" for k, (w, c) in seconds.items()),
              flush=True)

    names = ([BASELINE] if args.baseline else []) + methods
    median = {k: tuple(statistics.median(s[k][i] for s in rounds) for i in (0, 1)) for k in names}
    print(f"{'method':28s} {'s/task wall':>12s} {'s/task cpu':>11s} {'speed-up wall':>14s} {'cpu':>6s}")
    for k in names:
        line = f"{k:28s} {median[k][0]:12.3f} {median[k][1]:11.3f}"
        if args.baseline and k != BASELINE:
            ratio = [statistics.median(s[BASELINE][i] / s[k][i] for s in rounds) for i in (0, 1)]
            line += f" {ratio[0]:13.2f}x {ratio[1]:5.2f}x"
        print(line)

    for k in methods:
        what = f"{median[k][0]:.3f} s/task"
        if args.baseline and k != BASELINE and k.startswith("faithful"):
            ratio = statistics.median(s[BASELINE][0] / s[k][0] for s in rounds)
            cpu_ratio = statistics.median(s[BASELINE][1] / s[k][1] for s in rounds)
            diff = describe(differences(probe, embeddings[k], embeddings[BASELINE]))
            what = (f"published {median[BASELINE][0]:.3f} s/task, ours ({k}) {median[k][0]:.3f} s/task, "
                    f"speed-up {ratio:.2f}x (cpu time {cpu_ratio:.2f}x), median of {args.rounds} round(s) "
                    f"of {T} task(s); embeddings differ by {diff}")
        figure(f"task2vec-{k}", device, f"{args.arch} {args.size} px, {what}")

    if args.float64_reference:
        probe64 = copy.deepcopy(probe).to(device)
        probe64.body.double()
        s64 = settings_of("faithful-loop", args)
        ref = embed_batch(probe64, images.double(), labels, list(range(T)), args.seed, *s64, device).cpu().numpy()
        for k, emb in embeddings.items():
            if k == BASELINE or k.startswith("faithful"):
                print(f"float32 {k} vs float64 (ours, same draws): {describe(differences(probe, emb, ref))}")


if __name__ == "__main__":
    main()
