"""How far apart the probe puts tasks of one script and tasks of two, over every script.

The diversity coefficient of a k-script training set is about (1/k) w + (1 - 1/k) c, with w
the mean Task2Vec distance between tasks of one script and c between tasks of two, so whether
it rises with k at a fixed class budget depends on c against w (README "Known limits"). This
draws `--tasks` 5-way 5+15 tasks mixture-style from every script's training characters,
embeds them with the configured probe and method, and prints w, c, each script's mean
distance to the others, and what k random scripts would score (w and c from the matrix).

    .venv/bin/python bench/script_distances.py                   # after `make run`
    .venv/bin/python bench/script_distances.py --tasks 192 --probe-checkpoint results/checkpoints/pt-glyphs-all.pt
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from divcoeff.data.episodes import sample_episodes  # noqa: E402
from divcoeff.data.indexed import IndexedDataset  # noqa: E402
from divcoeff.data.views import View, build_view, write_view  # noqa: E402
from divcoeff.domains import domain_matrix  # noqa: E402
from divcoeff.task2vec.coefficient import diversity_of_episodes, normalized_cosine_distances  # noqa: E402
from divcoeff.task2vec.probes import build_probe  # noqa: E402
from divcoeff.seeding import derive_seed  # noqa: E402
from divcoeff.settings import DiversitySettings, compute_settings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--dataset", default="results/data/glyphs")
    ap.add_argument("--tasks", type=int, default=96)
    ap.add_argument("--probe-checkpoint", help="a checkpoint file whose backbone is the probe (default: the config's probe)")
    ap.add_argument("--probe-file", default="results/probe/probe.pt",
                    help="the pretrained probe of rule train_probe (when the config's probe has weights: pool)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path(args.config).read_text())
    div = DiversitySettings.from_config(cfg["diversity"])
    if args.probe_checkpoint:
        div = dataclasses.replace(div, probe=dataclasses.replace(div.probe, kind="checkpoint", checkpoint="cli"))
    master = cfg.get("seed", 0)
    path = args.probe_checkpoint or (args.probe_file if div.probe.pretrained_here else None)
    probe = build_probe(div.probe, derive_seed(master, div.seed, "diversity-probe"), path)

    ds = IndexedDataset.load(args.dataset)
    spec = {"benchmarks": [ds.manifest["benchmark"]], "domains": "all", "images_per_class": div.shots + div.queries}
    table, meta = build_view("every-script", spec, {ds.manifest["benchmark"]: ds}, seed=0,
                             min_classes_per_component=div.ways)
    with tempfile.TemporaryDirectory() as tmp:
        write_view(Path(tmp) / "v.tsv", Path(tmp) / "v.json", table, meta)
        view = View.load(Path(tmp) / "v.tsv")
        eps = sample_episodes(view, div.ways, div.shots, div.queries, args.tasks,
                              seed=derive_seed(master, "script-distances"))
        t0 = time.perf_counter()
        compute = compute_settings(cfg.get("compute")).diversity
        _, emb = diversity_of_episodes(view, eps, probe, div, compute,
                                       derive_seed(master, div.seed, "diversity-tasks"), args.tasks, 10, "cpu")
    names = [c.split("/", 1)[-1] for c in meta["components"]]
    m = domain_matrix(normalized_cosine_distances(emb), eps.component, len(names))
    off = ~np.eye(len(names), dtype=bool)
    w, c = np.nanmean(np.diag(m)), np.nanmean(m[off])
    print(f"{len(names)} scripts, {args.tasks} tasks, {(time.perf_counter() - t0) / args.tasks:.2f} s/task, "
          f"probe {probe.description}, method {div.method}")
    print(f"within a script w = {w:.4f}, across scripts c = {c:.4f} (c / w = {c / w:.2f}), "
          f"sd over script pairs {np.nanstd(m[off]):.4f}")
    per_script = np.nanmean(np.where(off, m, np.nan), 1)
    print("mean distance to the other scripts:",
          ", ".join(f"{names[i]} {per_script[i]:.4f}" for i in np.argsort(per_script)))
    rng = np.random.default_rng(0)
    for k in sorted({1, 2, 4, 8, len(names)}):
        if k > len(names):
            continue
        vals = []
        for _ in range(2000):
            pick = rng.choice(len(names), k, replace=False)
            sub = m[np.ix_(pick, pick)]
            cross = np.nanmean(sub[~np.eye(k, dtype=bool)]) if k > 1 else 0.0
            vals.append(w / k + (1 - 1 / k) * cross)
        print(f"k = {k:2d} random scripts (within w as measured): {np.mean(vals):.4f} +- {np.std(vals):.4f}")


if __name__ == "__main__":
    main()
