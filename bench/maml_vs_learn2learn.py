"""Check on your machine that our MAML adaptation (divcoeff.maml, torch.func) equals learn2learn's
``MAML.clone()`` + ``adapt()`` loop, as ultimate-utils' fast_adapt runs it (REFERENCE section 8).

learn2learn is not a dependency of divcoeff (0.2.0 does not build on Python 3.11+ and pins numpy<2),
so this runs where it is importable, for example::

    python3.10 -m venv /tmp/l2l && /tmp/l2l/bin/pip install "learn2learn==0.2.0" "torch>=2.1" pandas
    PYTHONPATH=. /tmp/l2l/bin/python bench/maml_vs_learn2learn.py

(only divcoeff.maml and divcoeff.models.resnet12 are imported, which need torch alone).

For each setting it adapts one RFS ResNet-12 on the same support set both ways and compares the query
logits; exit status 0 when every comparison that should be exact is, 1 otherwise, 2 without learn2learn:

* dropout off, BatchNorm on batch statistics (train mode), float32 and float64, first and second order;
* dropout on (train mode, the published protocol), the global RNG seeded before each: both draw the
  masks in the same order, so these agree too.
Channels-last inputs (our CPU fast path) are compared as well and only reported: their convolutions
round differently (REFERENCE section 8: up to a few logits after 5 steps in float32).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from divcoeff.maml import adapt_and_predict  # noqa: E402
from divcoeff.models.resnet12 import ResNet12  # noqa: E402


def learn2learn_logits(l2l, model, sx, sy, qx, steps, lr, first_order):
    """ultimate-utils fast_adapt: learner = MAML(model).clone(); adapt on the support loss; predict."""
    learner = l2l.algorithms.MAML(model, lr=lr, first_order=first_order).clone()
    for _ in range(steps):
        learner.adapt(F.cross_entropy(learner(sx), sy))
    return learner(qx).detach()


def ours_logits(model, sx, sy, qx, steps, lr, first_order):
    with torch.no_grad():
        return adapt_and_predict(model, sx[None], sy[None], qx[None], steps=steps, inner_lr=lr,
                                 first_order=first_order, bn_mode="batch", vectorize=False)[0]


def compare(l2l, *, dtype, drop_rate, first_order, channels_last, steps, size, seed=0):
    torch.manual_seed(seed)
    model = ResNet12(in_channels=3, num_classes=5, drop_rate=drop_rate).to(dtype).train()
    sx = torch.randn(25, 3, size, size, dtype=dtype)
    qx = torch.randn(75, 3, size, size, dtype=dtype)
    sy = torch.arange(5).repeat_interleave(5)
    if channels_last:
        sx, qx = (t.contiguous(memory_format=torch.channels_last) for t in (sx, qx))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    counts = [m.num_batches_tracked for m in model.modules() if hasattr(m, "drop_block")]

    def reset():  # the same weights, BatchNorm buffers and DropBlock counters for both runs
        model.load_state_dict(state)
        for m, n in zip([m for m in model.modules() if hasattr(m, "drop_block")], counts):
            m.num_batches_tracked = n
        torch.manual_seed(seed + 1)

    reset()
    theirs = learn2learn_logits(l2l, model, sx, sy, qx, steps, 0.1, first_order)
    reset()
    ours = ours_logits(model, sx, sy, qx, steps, 0.1, first_order)
    return torch.equal(ours, theirs), float((ours - theirs).abs().max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--size", type=int, default=32, help="image size (84 as published; 32 is quicker)")
    args = ap.parse_args()
    try:
        import learn2learn as l2l
    except ImportError as e:
        print(f"learn2learn is not importable here ({e}); see this script's docstring for an environment with it")
        return 2
    ok = True
    cases = [
        ("float32, dropout off, first order", dict(dtype=torch.float32, drop_rate=0.0, first_order=True), True),
        ("float32, dropout off, second order", dict(dtype=torch.float32, drop_rate=0.0, first_order=False), True),
        ("float64, dropout off, first order", dict(dtype=torch.float64, drop_rate=0.0, first_order=True), True),
        ("float32, dropout 0.1 on (train mode, seeded)", dict(dtype=torch.float32, drop_rate=0.1, first_order=True),
         True),
        ("float32, channels-last inputs (reported only)", dict(dtype=torch.float32, drop_rate=0.0, first_order=True,
                                                               channels_last=True), False),
    ]
    print(f"learn2learn {getattr(l2l, '__version__', '?')}, torch {torch.__version__}, {args.steps} inner steps, "
          f"lr 0.1, {args.size} px, 5-way 5-shot 15-query")
    for label, kw, must_match in cases:
        equal, diff = compare(l2l, steps=args.steps, size=args.size, channels_last=kw.pop("channels_last", False), **kw)
        verdict = "bit for bit" if equal else f"max |difference| {diff:.3g}"
        print(f"  {label}: {verdict}")
        ok &= equal or not must_match
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
