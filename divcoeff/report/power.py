"""Power of the design's slope tests, by simulation from measured variances.

The model of one family's metric (docs/formats.md section 7): checkpoint j of training set s in
level L scores

    y = a_L + b * x_s + u_s + e_sj,   u_s ~ N(0, var_set),  e_sj ~ N(0, var_seed)

with x_s the set's coefficient. `variance_components` estimates var_set and var_seed from a
results/summary.tsv (seeds inside a set; set means around the within-level fit). A simulated
design is tested the way the statistics rule tests it: the within-level slope
(`divcoeff.report.within`, level as a fixed effect) or the pooled slope
(`divcoeff.report.design`, levels ignored, so a count effect rides on it), each with its
two-stage percentile bootstrap; power is the share of simulated studies whose 95% interval
excludes 0 on the side of the true slope.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from divcoeff.report.design import design_points, hierarchical_bootstrap
from divcoeff.report.within import within_level_slope


@dataclasses.dataclass(frozen=True)
class Variances:
    var_set: float
    var_seed: float
    n_sets: int
    n_checkpoints: int


@dataclasses.dataclass(frozen=True)
class DesignSet:
    level: str
    x: float
    seeds: int


def variance_components(points: pd.DataFrame) -> Variances:
    """var_seed: the pooled variance of checkpoints around their set's mean; var_set: the variance
    of set means around the within-level line (level fixed effect + slope on x), less the share of
    seed noise in a set mean (floored at 0). `points`: rows of design_points (x, y, train_set, level)."""
    pts = points[(points["role"] == "trained") & (points["level"] != "")]
    grouped = pts.groupby("train_set")
    dev = pts["y"] - grouped["y"].transform("mean")
    dof = int((grouped.size() - 1).sum())
    if dof < 1:
        raise ValueError("variance_components: no training set has two seeds")
    var_seed = float((dev ** 2).sum() / dof)
    sets = grouped.agg(level=("level", "first"), x=("x", "first"), y=("y", "mean"), n=("y", "size")).reset_index()
    fit = within_level_slope(sets["x"], sets["y"], sets["train_set"], sets["level"], n_boot=0)
    slope = fit.slope if np.isfinite(fit.slope) else 0.0
    resid = sets["y"] - slope * sets["x"]
    resid = resid - resid.groupby(sets["level"]).transform("mean")
    n_params = sets["level"].nunique() + (1 if np.isfinite(fit.slope) else 0)
    dof_sets = len(sets) - n_params
    if dof_sets < 1:
        raise ValueError("variance_components: too few training sets for the set-to-set variance")
    var_means = float((resid ** 2).sum() / dof_sets)
    var_set = max(0.0, var_means - var_seed * float((1.0 / sets["n"]).mean()))
    return Variances(var_set, var_seed, len(sets), len(pts))


def simulate(design: Sequence[DesignSet], slope: float, v: Variances, rng: np.random.Generator,
             level_effects: dict[str, float] | None = None) -> pd.DataFrame:
    rows = []
    for i, s in enumerate(design):
        u = rng.normal(0.0, np.sqrt(v.var_set))
        base = (level_effects or {}).get(s.level, 0.0) + slope * s.x + u
        for e in rng.normal(0.0, np.sqrt(v.var_seed), s.seeds):
            rows.append((f"s{i}", s.level, s.x, base + e))
    return pd.DataFrame(rows, columns=["train_set", "level", "x", "y"])


def power(design: Sequence[DesignSet], slope: float, v: Variances, *, test: str = "within", n_sim: int = 200,
          n_boot: int = 200, seed: int = 0, level_effects: dict[str, float] | None = None) -> float:
    """Share of `n_sim` simulated studies whose 95% bootstrap interval of the slope (`within`:
    within count level; `pooled`: over all sets) excludes 0 on the side of `slope`."""
    if test not in ("within", "pooled"):
        raise ValueError(f"test must be within or pooled, got {test!r}")
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_sim):
        d = simulate(design, slope, v, rng, level_effects)
        boot_rng = np.random.default_rng(rng.integers(2**63))
        if test == "within":
            fit = within_level_slope(d["x"], d["y"], d["train_set"], d["level"], n_boot=n_boot, rng=boot_rng)
            lo, hi = fit.lo, fit.hi
        else:
            fit = hierarchical_bootstrap(d["x"], d["y"], d["train_set"], n_boot=n_boot, rng=boot_rng)
            lo, hi = fit.slope_lo, fit.slope_hi
        hits += bool(lo > 0) if slope >= 0 else bool(hi < 0)
    return hits / n_sim


def smallest_detectable(design: Sequence[DesignSet], v: Variances, *, target: float = 0.8, test: str = "within",
                        lo: float = 0.0, hi: float = 64.0, steps: int = 10, **kw) -> tuple[float, float]:
    """The smallest positive slope with power >= target (bisection on [lo, hi] with the same
    simulation seed at every step, so power rises with the slope); returns (slope, its power).
    (inf, power at hi) when even `hi` falls short."""
    p_hi = power(design, hi, v, test=test, **kw)
    if p_hi < target:
        return float("inf"), p_hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        p = power(design, mid, v, test=test, **kw)
        if p >= target:
            hi, p_hi = mid, p
        else:
            lo = mid
    return hi, p_hi


def design_from_summary(points: pd.DataFrame) -> list[DesignSet]:
    """The training sets of a run as a design: their level, coefficient and number of seeds."""
    pts = points[(points["role"] == "trained") & (points["level"] != "")]
    sets = pts.groupby("train_set").agg(level=("level", "first"), x=("x", "first"), n=("y", "size"))
    return [DesignSet(str(r.level), float(r.x), int(r.n)) for r in sets.itertuples()]


def family_points(summary: pd.DataFrame, family: str, metric: str = "accuracy", pt_method: str = "logreg"):
    pts = design_points(summary, metric, pt_method)
    return pts[pts["family"] == family]
