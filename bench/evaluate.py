"""PT evaluation, the straightforward way vs the project's way, on the same checkpoint and episodes.

    .venv/bin/python bench/evaluate.py                                   # synthetic stand-in (see below)
    .venv/bin/python bench/evaluate.py --view results/views/glyphs-heldout.tsv \
        --episodes results/episodes/glyphs-heldout/5way-5shot-15query-300x-seed21.json \
        --checkpoint results/checkpoints/pt-glyphs-all.pt

Straightforward (what the published scripts do): for each episode, load its 100 images, run the
backbone on them, L2-normalise, fit scikit-learn's LogisticRegression(C=1, lbfgs, max_iter=1000)
on the support set and predict the queries. Project: divcoeff.fewshot.evaluate_checkpoint with
the logistic regression only and no calibration (the same work): features once per distinct
image, one batched exact solve for all episodes.

Prints both mean accuracies, how far the per-episode accuracies differ, and wall and CPU seconds
of both with their ratio, split into features and classifier, and a ``FIGURE evaluate-pt`` line
(bench/figure.py). ``--straightforward-episodes`` limits the (slow) per-episode way to the first
episodes; times are then compared per episode. Without --checkpoint the
backbone is a seeded random ResNet-12 with the config's training widths (timing does not depend
on the weights; accuracy only has to be equal). Without --view: a synthetic 28x28 grey view
(the tests' generator, 4 x 20 classes, 20 images each; held-out half: 800 images).
Not a test: nothing here is asserted.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from divcoeff.data.episodes import load_episodes, sample_episodes  # noqa: E402
from divcoeff.data.views import View  # noqa: E402
from divcoeff.fewshot import evaluate_checkpoint  # noqa: E402
from divcoeff.settings import EvaluationSettings  # noqa: E402
from divcoeff.fewshot.features import input_spec, load_inputs  # noqa: E402
from divcoeff.models.resnet12 import ResNet12  # noqa: E402
from figure import device_name, figure, pick_device, synchronize  # noqa: E402


class Clock:
    def __init__(self, device="cpu"):
        self.device = device
        synchronize(device)
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self) -> tuple[float, float]:
        synchronize(self.device)
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def synthetic_view(tmp: Path, classes_per_domain: int = 20, images_per_class: int = 20) -> View:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import synthetic_dataset, synthetic_view as make

    synthetic_dataset(tmp / "data" / "synth", n_domains=4, classes_per_domain=classes_per_domain,
                      images_per_class=images_per_class, size=28)
    return make(tmp, split="test")


def checkpoint(args, view: View):
    if args.checkpoint:
        from divcoeff.checkpoints import load_checkpoint
        return load_checkpoint(args.checkpoint, family="pt")
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    widths = [int(w) for w in args.widths.split(",")] if args.widths else cfg["training"]["widths"]
    torch.manual_seed(0)
    model = ResNet12(widths, in_channels=view.channels, num_classes=40).eval()
    pre = {"image_size": view.image_size, "channels": view.channels, "mean": [0.5] * view.channels,
           "std": [0.5] * view.channels}
    return types.SimpleNamespace(model=model, family="pt", num_classes=40, preprocess=pre, meta={})


def straightforward(ckpt, view: View, eps, C: float, n: int, device) -> tuple[np.ndarray, dict]:
    """The first `n` episodes, one at a time."""
    from sklearn.linear_model import LogisticRegression

    spec = input_spec(ckpt.preprocess, ckpt.model.in_channels, view)
    W, K, Q = eps.ways, eps.shots, eps.queries
    ys, yq = np.repeat(np.arange(W), K), np.repeat(np.arange(W), Q)
    acc = np.empty(n)
    t_feat = t_clf = 0.0
    for e in range(n):
        t0 = time.perf_counter()
        rows = np.concatenate([eps.support[e].ravel(), eps.query[e].ravel()])
        with torch.no_grad():
            f = F.normalize(ckpt.model.features(load_inputs(view, rows, spec).to(device)), dim=-1).cpu().numpy()
        t1 = time.perf_counter()
        clf = LogisticRegression(C=C, solver="lbfgs", max_iter=1000).fit(f[: W * K], ys)
        acc[e] = (clf.predict(f[W * K:]) == yq).mean()
        t_feat += t1 - t0
        t_clf += time.perf_counter() - t1
    return acc, {"features": t_feat, "classifier": t_clf}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--view", help="view TSV (default: a synthetic 28x28 view)")
    ap.add_argument("--episodes", help="episode file of that view (default: --n-episodes drawn with seed 21)")
    ap.add_argument("--n-episodes", type=int, default=300)
    ap.add_argument("--checkpoint", help="a PT checkpoint file (default: a seeded random ResNet-12)")
    ap.add_argument("--straightforward-episodes", type=int, default=0,
                    help="episodes the per-episode way solves (0: all); the project always solves all")
    ap.add_argument("--widths", help="widths of the random ResNet-12 (default: the config's training widths)")
    ap.add_argument("--classes-per-domain", type=int, default=20, help="synthetic view: classes per domain (x4)")
    ap.add_argument("--images-per-class", type=int, default=20, help="synthetic view: images per class")
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    from threadpoolctl import threadpool_limits  # scikit-learn's BLAS gets the same threads as torch

    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as tmp:
        view = View.load(args.view) if args.view else synthetic_view(Path(tmp), args.classes_per_domain,
                                                                      args.images_per_class)
        eps = load_episodes(args.episodes, view) if args.episodes else \
            sample_episodes(view, 5, 5, 15, args.n_episodes, seed=21)
        ckpt = checkpoint(args, view)
        ckpt.model.eval().to(device)
        n_plain = min(args.straightforward_episodes or eps.n_episodes, eps.n_episodes)
        print(f"{view.name}: {len(view.table)} images; {eps.n_episodes} episodes {eps.ways}-way {eps.shots}-shot "
              f"{eps.queries}-query touching {len(eps.rows())} distinct images; the per-episode way on {n_plain}; "
              f"on {device_name(device)}")

        clock = Clock(device)
        acc_plain, parts_plain = straightforward(ckpt, view, eps, 1.0, n_plain, device)
        wall_plain, cpu_plain = clock.stop()

        settings = EvaluationSettings.from_config({"name": view.name, "benchmarks": ["bench"],
                                                   "pt_methods": ["logreg"], "calibrate_temperature": False})
        clock = Clock(device)
        result = evaluate_checkpoint(ckpt, view, eps, settings, device=device, progress=False)
        wall_ours, cpu_ours = clock.stop()
        acc_ours = result.methods["logreg"].accuracy

    E = eps.n_episodes
    diff = np.abs(acc_plain - acc_ours[:n_plain])
    print(f"accuracy  straightforward {acc_plain.mean():.4f}   project {acc_ours[:n_plain].mean():.4f}   "
          f"per-episode |diff| max {diff.max():.4f}, episodes differing {int((diff > 0).sum())}/{len(diff)}")
    print(f"straightforward: wall {wall_plain:7.2f} s  cpu {cpu_plain:7.2f} s  for {n_plain} episodes "
          f"(features {parts_plain['features']:.2f} s, sklearn {parts_plain['classifier']:.2f} s)")
    print(f"project:         wall {wall_ours:7.2f} s  cpu {cpu_ours:7.2f} s  for {E} episodes "
          f"(features {result.seconds['features']:.2f} s, batched logreg {result.seconds['logreg']:.2f} s)")
    per_plain, per_ours = wall_plain / n_plain, wall_ours / E
    print(f"per episode: speed-up wall {per_plain / per_ours:.1f}x, cpu {cpu_plain / n_plain / (cpu_ours / E):.1f}x; "
          f"classifier alone {parts_plain['classifier'] / n_plain / (result.seconds['logreg'] / E):.1f}x; "
          f"features alone {parts_plain['features'] / n_plain / (result.seconds['features'] / E):.1f}x")
    figure("evaluate-pt", device, f"{E} episodes: per-episode sklearn way {per_plain * 1e3:.2f} ms/episode, "
           f"ours {per_ours * 1e3:.2f} ms/episode, speed-up {per_plain / per_ours:.1f}x; "
           f"accuracy {acc_ours.mean():.4f}, per-episode |diff| max {diff.max():.4f}")


if __name__ == "__main__":
    main()
