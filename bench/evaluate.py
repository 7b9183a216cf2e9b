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
of both with their ratio, split into features and classifier. Without --checkpoint the
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

from divcoeff.data.episodes import load_episodes, sample_episodes  # noqa: E402
from divcoeff.data.views import View  # noqa: E402
from divcoeff.fewshot import evaluate_checkpoint  # noqa: E402
from divcoeff.settings import EvaluationSettings  # noqa: E402
from divcoeff.fewshot.features import input_spec, load_inputs  # noqa: E402
from divcoeff.models.resnet12 import ResNet12  # noqa: E402


class Clock:
    def __init__(self):
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def synthetic_view(tmp: Path) -> View:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import synthetic_dataset, synthetic_view as make

    synthetic_dataset(tmp / "data" / "synth", n_domains=4, classes_per_domain=20, images_per_class=20, size=28)
    return make(tmp, split="test")


def checkpoint(args, view: View):
    if args.checkpoint:
        from divcoeff.checkpoints import load_checkpoint
        return load_checkpoint(args.checkpoint, family="pt")
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    torch.manual_seed(0)
    model = ResNet12(cfg["training"]["widths"], in_channels=view.channels, num_classes=40).eval()
    pre = {"image_size": view.image_size, "channels": view.channels, "mean": [0.5] * view.channels,
           "std": [0.5] * view.channels}
    return types.SimpleNamespace(model=model, family="pt", num_classes=40, preprocess=pre, meta={})


def straightforward(ckpt, view: View, eps, C: float) -> tuple[np.ndarray, dict]:
    from sklearn.linear_model import LogisticRegression

    spec = input_spec(ckpt.preprocess, ckpt.model.in_channels, view)
    W, K, Q = eps.ways, eps.shots, eps.queries
    ys, yq = np.repeat(np.arange(W), K), np.repeat(np.arange(W), Q)
    acc = np.empty(eps.n_episodes)
    t_feat = t_clf = 0.0
    for e in range(eps.n_episodes):
        t0 = time.perf_counter()
        rows = np.concatenate([eps.support[e].ravel(), eps.query[e].ravel()])
        with torch.no_grad():
            f = F.normalize(ckpt.model.features(load_inputs(view, rows, spec)), dim=-1).numpy()
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
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits  # scikit-learn's BLAS gets the same threads as torch

    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as tmp:
        view = View.load(args.view) if args.view else synthetic_view(Path(tmp))
        eps = load_episodes(args.episodes, view) if args.episodes else \
            sample_episodes(view, 5, 5, 15, args.n_episodes, seed=21)
        ckpt = checkpoint(args, view)
        ckpt.model.eval()
        print(f"{view.name}: {len(view.table)} images; {eps.n_episodes} episodes {eps.ways}-way {eps.shots}-shot "
              f"{eps.queries}-query touching {len(eps.rows())} distinct images; {args.threads} thread(s)")

        clock = Clock()
        acc_plain, parts_plain = straightforward(ckpt, view, eps, 1.0)
        wall_plain, cpu_plain = clock.stop()

        settings = EvaluationSettings.from_config({"name": view.name, "benchmarks": ["bench"],
                                                   "pt_methods": ["logreg"], "calibrate_temperature": False})
        clock = Clock()
        result = evaluate_checkpoint(ckpt, view, eps, settings, progress=False)
        wall_ours, cpu_ours = clock.stop()
        acc_ours = result.methods["logreg"].accuracy

    diff = np.abs(acc_plain - acc_ours)
    print(f"accuracy  straightforward {acc_plain.mean():.4f}   project {acc_ours.mean():.4f}   "
          f"per-episode |diff| max {diff.max():.4f}, episodes differing {int((diff > 0).sum())}/{len(diff)}")
    print(f"straightforward: wall {wall_plain:7.2f} s  cpu {cpu_plain:7.2f} s  "
          f"(features {parts_plain['features']:.2f} s, sklearn {parts_plain['classifier']:.2f} s)")
    print(f"project:         wall {wall_ours:7.2f} s  cpu {cpu_ours:7.2f} s  "
          f"(features {result.seconds['features']:.2f} s, batched logreg {result.seconds['logreg']:.2f} s)")
    print(f"speed-up: wall {wall_plain / wall_ours:.1f}x, cpu {cpu_plain / cpu_ours:.1f}x; classifier alone "
          f"{parts_plain['classifier'] / result.seconds['logreg']:.1f}x; features alone "
          f"{parts_plain['features'] / result.seconds['features']:.1f}x")


if __name__ == "__main__":
    main()
