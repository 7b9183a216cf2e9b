"""How large a slope the design can see: a power simulation from a run's measured variances.

Reads a results/summary.tsv, estimates per family the set-to-set and seed-to-seed variance of
the metric (divcoeff.report.power.variance_components), and prints

- the smallest slope on the coefficient *within* count level that the run's own design (its
  training sets, their coefficients and seeds) detects with 80% power (95% bootstrap interval
  excluding 0), and
- how many training sets a level a design like config/glyphs-full (its seeds per family, the
  run's levels with their coefficients spread as measured) needs to detect a pooled
  (between-level) slope of --between-slope with 80% power.

    .venv/bin/python bench/power.py results/summary.tsv
    .venv/bin/python bench/power.py results/summary.tsv --n-sim 400 --out results/power.tsv
    # another design's sets (their level and measured coefficient) with a run's variances:
    .venv/bin/python bench/power.py old/summary.tsv --design results/diversity/predicted_vs_measured.tsv

The variances are those of the run read (the embedded study's small networks); a full-size run
has its own, so rerun this on its summary. CPU only, ~1-3 minutes at the defaults.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from divcoeff.report.power import (DesignSet, design_from_summary, family_points, power,  # noqa: E402
                                   smallest_detectable, variance_components)
from divcoeff.report.summary import read_summary  # noqa: E402


def spread_design(points: pd.DataFrame, per_level: int, seeds: int) -> list[DesignSet]:
    """per_level sets in each of the run's levels, their coefficients spread evenly over the range
    the run measured in that level."""
    out = []
    sets = points.groupby("train_set").agg(level=("level", "first"), x=("x", "first"))
    for level, rows in sets.groupby("level"):
        for x in np.linspace(rows["x"].min(), rows["x"].max(), per_level):
            out.append(DesignSet(str(level), float(x), seeds))
    return out


def design_from_table(path: str, seeds: int) -> list[DesignSet]:
    """The sets of a predicted_vs_measured.tsv (its `all` row left out): level and measured
    coefficient (the predicted one where none was measured)."""
    t = pd.read_csv(path, sep="\t")
    t = t[t["train_set"] != "all"]
    x = t["measured"].fillna(t["predicted"])
    return [DesignSet(str(lv), float(v), seeds) for lv, v in zip(t["level"], x)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("summary", nargs="?", default="results/summary.tsv")
    ap.add_argument("--metric", default="accuracy")
    ap.add_argument("--pt-method", default="logreg")
    ap.add_argument("--between-slope", type=float, default=1.0, help="slope for the sets-needed question")
    ap.add_argument("--full-seeds", default="pt=5,maml=3", help="seeds per family of the full design")
    ap.add_argument("--max-sets", type=int, default=40, help="most sets a level to try")
    ap.add_argument("--design", help="a predicted_vs_measured.tsv: test these sets (level, measured coefficient) "
                                     "instead of the summary's own")
    ap.add_argument("--seeds", default="pt=3,maml=2", help="seeds per family of --design's sets")
    ap.add_argument("--n-sim", type=int, default=200)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="also write the figures as a TSV here")
    args = ap.parse_args()
    summary = read_summary(args.summary)
    if "evaluation" in summary:
        summary = summary[summary["evaluation"] == summary["evaluation"].iloc[0]]
    seeds = dict((k, int(v)) for k, v in (kv.split("=") for kv in args.seeds.split(",")))
    seeds_full = dict((k, int(v)) for k, v in (kv.split("=") for kv in args.full_seeds.split(",")))
    kw = {"n_sim": args.n_sim, "n_boot": args.n_boot, "seed": args.seed}
    rows = []
    for family in sorted(set(summary.loc[summary["role"] == "trained", "family"])):
        pts = family_points(summary, family, args.metric, args.pt_method)
        pts = pts[(pts["role"] == "trained") & (pts["level"] != "")]
        try:
            v = variance_components(pts)
        except ValueError as e:  # one seed a set (the embedded MAML design): seeds and sets not separable
            print(f"{family} {args.metric}: not estimated here ({e}); use a run with two seeds a set")
            continue
        d = design_from_summary(pts) if not args.design else design_from_table(args.design, seeds.get(family, 2))
        within, p_within = smallest_detectable(d, v, test="within", **kw)
        print(f"{family} {args.metric}: sd between sets {np.sqrt(v.var_set):.4f}, between seeds "
              f"{np.sqrt(v.var_seed):.4f} ({v.n_sets} sets, {v.n_checkpoints} checkpoints)")
        print(f"  this design ({len(d)} sets): smallest within-level slope detected with 80% power: "
              f"{within:.3g} (power {p_within:.2f})")
        needed, p_needed = None, None
        for n in range(2, args.max_sets + 1):
            p = power(spread_design(pts, n, seeds_full.get(family, 3)), args.between_slope, v, test="pooled", **kw)
            if p >= 0.8:
                needed, p_needed = n, p
                break
        levels = pts["level"].nunique()
        say = (f"{needed} sets a level ({needed * levels} in all), power {p_needed:.2f}" if needed
               else f"more than {args.max_sets} sets a level")
        print(f"  a pooled slope of {args.between_slope:+g} with {seeds_full.get(family, 3)} seeds a set "
              f"over {levels} levels: {say}")
        rows.append({"family": family, "metric": args.metric, "sd_set": np.sqrt(v.var_set),
                     "sd_seed": np.sqrt(v.var_seed), "n_sets": v.n_sets, "min_within_slope_80": within,
                     "power_at_min": p_within, "between_slope": args.between_slope,
                     "sets_per_level_needed": needed, "levels": levels, "n_sim": args.n_sim, "n_boot": args.n_boot})
    if args.out:
        pd.DataFrame(rows).to_csv(args.out, sep="\t", index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
