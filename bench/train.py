"""Time one PT and one MAML checkpoint with the config's `training:` section, and check they learn.

    .venv/bin/python bench/train.py                       # synthetic stand-in: 40 classes x 16 images, 28x28 grey
    .venv/bin/python bench/train.py --view results/views/glyphs-1s-d0.tsv \
        --heldout results/views/glyphs-heldout.tsv        # a real training set and the held-out set

Prints seconds per checkpoint, wall and CPU (single thread unless --threads; on a shared
machine the CPU time is the better estimate of an uncontended run) and the accuracy on 100 held-out
5-way 5-shot episodes: PT by nearest centroid on L2-normalised features, MAML by adaptation
(the evaluation settings of the config). Chance is 0.2. Ends with one ``FIGURE train-<family>``
line per family (bench/figure.py). Not a test: nothing here is asserted.

    .venv/bin/python bench/train.py --device cuda --set 'widths=[64,160,320,640]' --set steps=300

Replicates (``--replicates 2,3,5``): CPU seconds per checkpoint, each run in a fresh process as a
workflow job is (interpreter, torch and the view included), one checkpoint a process ("one at a
time": the jobs before training.replicate_group) against one process training R replicates
one after another (a group job), and the per-step cost of the same R PT networks as one vmapped
computation (torch.func stacked parameters, i.e. grouped convolutions) against one at a time.
Figures ``train-replicates-<family>``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from divcoeff.config import validate_config  # noqa: E402
from divcoeff.data.episodes import sample_episodes  # noqa: E402
from divcoeff.data.views import View  # noqa: E402
from divcoeff.maml import adapt_and_predict  # noqa: E402
from divcoeff.seeding import derive_seed  # noqa: E402
from divcoeff.training.run import train_checkpoint  # noqa: E402
from divcoeff.settings import TrainSettings  # noqa: E402
from divcoeff.training.common import MEAN, STD  # noqa: E402
from figure import device_name, figure, pick_device, synchronize  # noqa: E402


def synthetic_views(tmp: Path, size: int) -> tuple[View, View]:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import synthetic_dataset, synthetic_view

    # 4 domains x 20 classes, half of them held out: a 40-class training view like the glyph ones.
    synthetic_dataset(tmp / "data" / "synth", n_domains=4, classes_per_domain=20, images_per_class=20, size=size)
    train = synthetic_view(tmp, split="train", domains=4, classes=40, images_per_class=16)
    test = synthetic_view(tmp, split="test")
    return train, test


def heldout_accuracy(trained, test: View, cfg: dict, episodes: int = 100) -> float:
    ev = cfg["evaluation"]
    eps = sample_episodes(test, 5, 5, 15, episodes, seed=7)
    x = ((test.images() - MEAN) / STD).to(next(trained.model.parameters()).device)
    W, K, Q = 5, 5, 15
    sx, qx = x[torch.from_numpy(eps.support.reshape(episodes, -1))], x[torch.from_numpy(eps.query.reshape(episodes, -1))]
    sy = torch.arange(W, device=x.device).repeat_interleave(K).expand(episodes, -1)
    qy = torch.arange(W, device=x.device).repeat_interleave(Q).expand(episodes, -1)
    model = trained.model.eval()
    with torch.no_grad():
        if trained.family == "pt":
            f = F.normalize(model.features(x), dim=1)
            fs = f[torch.from_numpy(eps.support).to(x.device)]
            fq = f[torch.from_numpy(eps.query.reshape(episodes, -1)).to(x.device)]
            centroids = F.normalize(fs.mean(2), dim=-1)                  # (E, W, D)
            pred = torch.einsum("eqd,ewd->eqw", fq, centroids).argmax(-1)
        else:
            m = ev["maml"]
            logits = adapt_and_predict(model, sx, sy, qx, steps=m["inner_steps"], inner_lr=m["inner_lr"],
                                       first_order=m["first_order"], bn_mode=m["bn_mode"])
            pred = logits.argmax(-1)
    return float((pred == qy).float().mean())


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def worker(args, settings, train: View, device, cfg) -> None:
    """--worker: train `--worker` replicates of one family one after another (a group job)."""
    family, n = args.worker.split(":")
    steps = []
    for k in range(int(n)):
        name = f"{family}-{train.name}-r{k}"
        t = train_checkpoint(train, family, settings, seed=derive_seed(cfg.get("seed", 0), settings.seed, name),
                             name=name, device=device)
        steps.append(t.meta["train_steps"])
    print("WORKER " + json.dumps({"steps": steps}), flush=True)


def replicate_figures(args, settings, train: View, device) -> None:
    """One process a checkpoint vs one process a group of R, and vmapped PT steps (see the docstring)."""
    sizes = [int(r) for r in args.replicates.split(",")]
    base = [sys.executable, __file__, "--config", args.config, "--threads", str(args.threads), "--device",
            args.device] + [a for item in args.set for a in ("--set", item)]
    if args.view:
        base += ["--view", args.view, "--heldout", args.heldout]

    def run(family: str, n: int) -> tuple[float, list[int]]:
        c0 = child_cpu()
        out = subprocess.run(base + ["--worker", f"{family}:{n}"], capture_output=True, text=True, check=True)
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("WORKER "))
        return child_cpu() - c0, json.loads(line[7:])["steps"]

    for family in args.families.split(","):
        singles = [run(family, 1) for _ in range(args.singles)]
        one = sum(c for c, _ in singles) / len(singles)
        parts = [f"one a process {one:.1f} CPU-s/checkpoint ({singles[0][1][0]} steps)"]
        for r in sizes:
            cpu, steps = run(family, r)
            parts.append(f"group of {r} {cpu / r:.1f} ({one / (cpu / r):.2f}x)")
        if family == "pt":
            for r in sizes:
                loop, vm = vmap_step_cost(settings, train, r)
                parts.append(f"PT step x{r}: loop {loop * 1e3:.0f} ms/network, vmap {vm * 1e3:.0f}")
        print(f"{family}: " + "; ".join(parts), flush=True)
        figure(f"train-replicates-{family}", device, "; ".join(parts))


def vmap_step_cost(settings, train: View, r: int, steps: int = 5) -> tuple[float, float]:
    """CPU seconds per network per PT step (process time): r networks one by one vs vmapped together."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    from divcoeff.training.common import build_model, load_view_tensors

    dev = torch.device("cpu")
    x, y = load_view_tensors(train, dev)
    models = [build_model(settings, train.channels, train.n_classes, dev).train() for _ in range(r)]
    idx = torch.arange(settings.images_per_step) % len(x)
    xb, yb = x[idx].contiguous(memory_format=torch.channels_last), y[idx]
    opts = [torch.optim.Adam(m.parameters(), lr=settings.lr) for m in models]

    def loop():
        for m, o in zip(models, opts):
            loss = F.cross_entropy(m(xb), yb)
            o.zero_grad()
            loss.backward()
            o.step()

    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.Adam(params.values(), lr=settings.lr)

    def batched():
        losses = vmap(lambda p, b: F.cross_entropy(functional_call(base, (p, b), (xb,)), yb),
                      randomness="different")(params, buffers)
        opt.zero_grad()
        losses.sum().backward()
        opt.step()

    out = []
    for fn in (loop, batched):
        fn()
        c0 = time.process_time()
        for _ in range(steps):
            fn()
        out.append((time.process_time() - c0) / steps / r)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config/config.yaml"))
    ap.add_argument("--view", help="a training view TSV (default: a synthetic stand-in)")
    ap.add_argument("--heldout", help="the held-out view TSV (with --view)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--heldout-episodes", type=int, default=100)
    ap.add_argument("--families", default="pt,maml")
    ap.add_argument("--replicates", default="", metavar="R,R,...",
                    help="also time groups of R replicates against one checkpoint a process, e.g. 2,3,5")
    ap.add_argument("--singles", type=int, default=2, help="one-checkpoint processes timed (with --replicates)")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=YAML",
                    help="override a training key, e.g. --set steps=100 --set maml.inner_steps=3")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cfg = yaml.safe_load(Path(args.config).read_text())
    validate_config(cfg, REPO / "config/schemas/config.schema.yaml", args.config)
    training = cfg["training"]
    for item in args.set:
        key, value = item.split("=", 1)
        *path, last = key.split(".")
        node = training
        for p in path:
            node = node[p]
        node[last] = yaml.safe_load(value)
    settings = TrainSettings.from_config(training)
    with tempfile.TemporaryDirectory() as tmp:
        if args.view:
            train, test = View.load(args.view), View.load(args.heldout)
        else:
            size = cfg["benchmarks"].get("glyphs", {}).get("image_size", 28)
            train, test = synthetic_views(Path(tmp), size)
        if args.worker:
            return worker(args, settings, train, device, cfg)
        if args.replicates:
            return replicate_figures(args, settings, train, device)
        print(f"view {train.name}: {train.n_classes} classes, {len(train.table)} images, {train.image_size}px; "
              f"widths {list(settings.widths)}, {settings.steps} steps x {settings.images_per_step} images, "
              f"on {device_name(device)}")
        for family in args.families.split(","):
            name = f"{family}-{train.name}"
            synchronize(device)
            t0, c0 = time.perf_counter(), time.process_time()
            trained = train_checkpoint(train, family, settings, seed=derive_seed(cfg.get("seed", 0), settings.seed, name),
                                       name=name, device=device)
            synchronize(device)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            loss = trained.meta["history"]["loss"]
            n = max(1, len(loss) // 10)
            acc = heldout_accuracy(trained, test, cfg, args.heldout_episodes)
            print(f"{family:5s} {seconds:6.1f} s wall, {cpu:6.1f} s CPU  train loss {sum(loss[:n]) / n:.3f} -> {sum(loss[-n:]) / n:.3f}  "
                  f"held-out 5-way 5-shot accuracy {acc:.3f}", flush=True)
            taken, why = trained.meta["train_steps"], trained.meta["stopped_by"]
            figure(f"train-{family}", device,
                   f"widths {list(settings.widths)}, {taken} steps (stopped by the {why}, cap {settings.steps}) x "
                   f"{settings.images_per_step} images: "
                   f"{seconds:.1f} s ({seconds / taken * 1e3:.1f} ms/step), train loss "
                   f"{sum(loss[:n]) / n:.3f} -> {sum(loss[-n:]) / n:.3f}, held-out accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
