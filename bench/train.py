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
"""
from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "config/config.yaml"))
    ap.add_argument("--view", help="a training view TSV (default: a synthetic stand-in)")
    ap.add_argument("--heldout", help="the held-out view TSV (with --view)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--heldout-episodes", type=int, default=100)
    ap.add_argument("--families", default="pt,maml")
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
            figure(f"train-{family}", device,
                   f"widths {list(settings.widths)}, {settings.steps} steps x {settings.images_per_step} images: "
                   f"{seconds:.1f} s ({seconds / settings.steps * 1e3:.1f} ms/step), train loss "
                   f"{sum(loss[:n]) / n:.3f} -> {sum(loss[-n:]) / n:.3f}, held-out accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
