"""What the published evaluation protocol costs next to the clean one, and how our exact logistic regression
compares with scikit-learn's lbfgs as the authors ran it (C=1, max_iter=1000, default tol).

    python bench/published_protocol.py [--episodes 20] [--threads 1] [--size 84] [--maml-episodes 4]

A random RFS ResNet-12 (64-160-320-640, dropout 0.1) on synthetic 5-way 5-shot 15-query episodes:

* PT features: clean = every distinct image once, eval mode, batched (divcoeff.fewshot.features);
  published = per episode, support then query in train() mode, seeded (divcoeff.fewshot.published).
* MAML, 5 inner steps: clean = divcoeff.maml.evaluate (eval-mode dropout, batch-statistics BN);
  published = per episode in train() mode with dropout, seeded.
* Logistic regression on the published (unnormalised) features: ours (exact optimum, batched) vs
  sklearn LogisticRegression(C=1, lbfgs, max_iter=1000) per episode: time, largest probability gap,
  episodes whose accuracy differs.
Prints one line per measurement; no file is written outside a temporary folder.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import synthetic_dataset  # noqa: E402
from divcoeff.data.episodes import sample_episodes  # noqa: E402
from divcoeff.data.indexed import IndexedDataset  # noqa: E402
from divcoeff.data.views import View, build_view, write_view  # noqa: E402
from divcoeff.fewshot import published as pub  # noqa: E402
from divcoeff.fewshot.features import compute_features, episode_positions, input_spec, load_inputs  # noqa: E402
from divcoeff.fewshot.logreg import fit_logreg  # noqa: E402
from divcoeff.maml.evaluate import maml_logits  # noqa: E402
from divcoeff.models.resnet12 import ResNet12  # noqa: E402
from divcoeff.settings import MamlEvalSettings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--maml-episodes", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=84)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    ds = IndexedDataset.load(synthetic_dataset(tmp / "synth", n_domains=2, classes_per_domain=10, images_per_class=20,
                                               size=args.size, channels=3))
    table, meta = build_view("bench", {"benchmarks": ["synth"], "split": "test"}, {"synth": ds}, seed=0)
    write_view(tmp / "v.tsv", tmp / "v.json", table, meta)
    view = View.load(tmp / "v.tsv")
    eps = sample_episodes(view, 5, 5, 15, args.episodes, seed=1)
    E = eps.n_episodes
    torch.manual_seed(0)
    pre = {"image_size": args.size, "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3}
    model = ResNet12(in_channels=3, num_classes=5, drop_rate=0.1, dropblock_size=5).eval()
    spec = input_spec(pre, 3, view)

    rows = eps.rows()
    t0 = time.perf_counter()
    compute_features(model, view, rows, spec, batch_size=128, progress=False)
    clean = time.perf_counter() - t0
    print(f"PT features, clean (distinct images once, eval mode, batched): {clean / E:.3f} s/episode "
          f"({len(rows)} images for {E} episodes)")
    seed_of = lambda e: pub.episode_seed(0, 61, ("pt-features",), e)  # noqa: E731
    t0 = time.perf_counter()
    sup, qry = pub.train_mode_features(model, view, spec, eps.support, eps.query.reshape(E, -1), seed_of,
                                       progress=False)
    published = time.perf_counter() - t0
    print(f"PT features, published (per episode, support and query in train mode, seeded): {published / E:.3f} "
          f"s/episode ({published / clean:.2f}x clean)")

    from sklearn.linear_model import LogisticRegression

    y = torch.arange(5).repeat_interleave(5).expand(E, -1)
    qy = np.repeat(np.arange(5), 15)
    t0 = time.perf_counter()
    fit = fit_logreg(sup.reshape(E, 25, -1), y, 5, C=1.0)
    ours = torch.softmax(fit.logits(qry.double()), -1).numpy()
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs, iters = [], []
    for e in range(E):
        clf = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000, random_state=0).fit(
            sup[e].reshape(25, -1).numpy(), y[e].numpy())
        theirs.append(clf.predict_proba(qry[e].numpy()))
        iters.append(int(clf.n_iter_[0]))
    t_sk = time.perf_counter() - t0
    theirs = np.stack(theirs)
    acc_ours = (ours.argmax(-1) == qy).mean(-1)
    acc_sk = (theirs.argmax(-1) == qy).mean(-1)
    print(f"logistic regression on published features: ours {t_ours / E * 1e3:.1f} ms/episode (batched), sklearn "
          f"lbfgs {t_sk / E * 1e3:.1f} ms/episode ({np.median(iters):.0f} iterations); largest probability gap "
          f"{np.abs(ours - theirs).max():.3g}; episodes with another accuracy {int((acc_ours != acc_sk).sum())}/{E}; "
          f"mean accuracy {acc_ours.mean():.4f} vs {acc_sk.mean():.4f}")

    M = min(args.maml_episodes, E)
    settings = MamlEvalSettings(inner_steps=5, inner_lr=0.1, first_order=True, bn_mode="batch", calibration_episodes=0)
    images = load_inputs(view, rows, spec)
    sp = episode_positions(rows, eps.support[:M])
    qp = episode_positions(rows, eps.query[:M]).reshape(M, -1)
    t0 = time.perf_counter()
    maml_logits(model, images, sp, qp, settings, progress=False)
    t_clean = time.perf_counter() - t0
    t0 = time.perf_counter()
    pub.train_mode_maml_logits(model, view, spec, eps.support[:M], eps.query[:M].reshape(M, -1), steps=5,
                               inner_lr=0.1, first_order=True, seed_of=seed_of, progress=False)
    t_pub = time.perf_counter() - t0
    print(f"MAML 5 steps: clean {t_clean / M:.3f} s/episode, published (train mode, dropout) {t_pub / M:.3f} "
          f"s/episode ({t_pub / t_clean:.2f}x)")
    print(f"({args.threads} thread(s), {args.size} px, torch {torch.__version__})")


if __name__ == "__main__":
    main()
