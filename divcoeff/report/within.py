"""The coefficient's slope within count level, and the selection contrasts on the shared episodes.

A training set's coefficient and its number of domains (its level) move together across levels,
so the pooled slope of `divcoeff.report.design` cannot tell the coefficient's effect from the
count's. Here the level is a fixed effect: y = a_level + b * x, fitted by OLS over checkpoints, so
b is the pooled slope of the metric on the coefficient *inside* levels (each level centred on its
own means). Its interval: the same two-stage percentile bootstrap (training sets with
replacement, then their seeds), drawn inside each level so every resample keeps every level.

Columns added to results/correlation.tsv per family x metric (WITHIN_COLUMNS): ``slope_within``,
its CI, the number of levels with more than one coefficient (those that inform b) and a note.

Rows added to results/paired_comparison.tsv: at each number of domains k that has training sets
chosen by `select: max` and by `select: min` (or `random`), max vs min and max vs random on the
shared episodes (`divcoeff.report.paired`: t over episodes, and the design bootstrap), labelled
``k=<k> select=<how>`` in level_low / level_high.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from divcoeff.report.design import LEVEL, TABLE_METRICS, design_points, hierarchical_counts, roles
from divcoeff.report.paired import paired_rows, paired_seed
from divcoeff.seeding import derive_seed

WITHIN_COLUMNS = ["slope_within", "slope_within_lo", "slope_within_hi", "n_levels_within", "within_note"]


@dataclasses.dataclass(frozen=True)
class WithinFit:
    slope: float
    lo: float
    hi: float
    n_levels: int          # levels whose training sets differ in coefficient (they inform the slope)
    n_boot: int            # resamples with a defined slope
    note: str = ""


def _sorted_points(x, y, sets, levels):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    sets = np.asarray([str(s) for s in sets], dtype=object)
    levels = np.asarray([str(v) for v in levels], dtype=object)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, sets, levels = x[keep], y[keep], sets[keep], levels[keep]
    order = np.lexsort((sets.astype(str), levels.astype(str)))   # level, then training set
    return x[order], y[order], sets[order], levels[order]


def _within_slope(w: np.ndarray, x: np.ndarray, y: np.ndarray, level_masks: list[np.ndarray]) -> np.ndarray:
    """Per row of weights (B, N): sum over levels of the weighted within-level Sxy over Sxx."""
    sxx = np.zeros(w.shape[0])
    sxy = np.zeros(w.shape[0])
    for m in level_masks:
        wl, xl, yl = w[:, m], x[m], y[m]
        s = wl.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mx = np.where(s > 0, (wl @ xl) / s, 0.0)
            my = np.where(s > 0, (wl @ yl) / s, 0.0)
        dx = xl[None, :] - mx[:, None]
        sxx += (wl * dx * dx).sum(axis=1)
        sxy += (wl * dx * (yl[None, :] - my[:, None])).sum(axis=1)
    scale = max(float(np.abs(x).max()) if x.size else 0.0, 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sxx > (1e-9 * scale) ** 2, sxy / sxx, np.nan)


def within_level_slope(x, y, sets, levels, *, n_boot: int = 2000, rng: np.random.Generator | None = None,
                       level: float = LEVEL) -> WithinFit:
    """OLS slope of y on x with a fixed effect per level; CI from the two-stage bootstrap inside
    each level (its training sets with replacement, then each drawn set's checkpoints)."""
    x, y, sets, levels = _sorted_points(x, y, sets, levels)
    nan = math.nan
    labels = list(dict.fromkeys(levels.tolist()))
    masks = [levels == lab for lab in labels]
    informative = []
    for lab, m in zip(labels, masks):
        per_set = pd.Series(x[m]).groupby(sets[m]).first()
        if len(per_set) > 1 and float(np.ptp(per_set.to_numpy())) > 0:
            informative.append(lab)
    if not informative:
        return WithinFit(nan, nan, nan, 0, 0, "no level holds training sets of different coefficients")
    slope = float(_within_slope(np.ones((1, x.size)), x, y, masks)[0])
    notes = []
    n_sets = {lab: len(set(sets[m])) for lab, m in zip(labels, masks)}
    if sum(n_sets[lab] for lab in informative) < 4:
        notes.append("fewer than 4 training sets in the levels that inform the slope: the interval is rough")
    if n_boot <= 0:
        return WithinFit(slope, nan, nan, len(informative), 0, "; ".join(notes + ["no resamples"]))
    rng = rng if rng is not None else np.random.default_rng(0)
    boots = []
    chunk = max(1, 2_000_000 // max(x.size, 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w = np.zeros((b, x.size))
        for m in masks:
            idx = np.flatnonzero(m)
            _, sizes = np.unique(sets[m], return_counts=True)   # sets sorted inside the level
            counts, _ = hierarchical_counts(sizes, b, rng)
            w[:, idx] = counts
        boots.append(_within_slope(w, x, y, masks))
    boots = np.concatenate(boots)
    ok = boots[np.isfinite(boots)]
    if ok.size < n_boot:
        notes.append(f"{n_boot - ok.size} of {n_boot} resamples drew one coefficient in every level and were dropped")
    alpha = (1 - level) / 2
    lo, hi = (float(q) for q in np.quantile(ok, [alpha, 1 - alpha])) if ok.size else (nan, nan)
    return WithinFit(slope, lo, hi, len(informative), int(ok.size), "; ".join(notes))


def within_seed(seed: int, family: str, metric: str) -> int:
    return derive_seed(seed, "within-level", family, metric)


def add_within_columns(correlation: pd.DataFrame, summary: pd.DataFrame, *, pt_method: str = "logreg",
                       n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """correlation.tsv with the within-level slope of each family x metric row (WITHIN_COLUMNS)."""
    out = correlation.copy()
    values = {c: [] for c in WITHIN_COLUMNS}
    cache: dict[str, pd.DataFrame] = {}
    for _, row in out.iterrows():
        metric, family = row["metric"], row["family"]
        if metric not in cache:
            cache[metric] = design_points(summary, metric, pt_method)
        pts = cache[metric]
        pts = pts[(pts["family"] == family) & (pts["role"] == "trained") & (pts["level"] != "")]
        if pts.empty:
            fit = WithinFit(math.nan, math.nan, math.nan, 0, 0, f"no {metric} values for this family")
        else:
            fit = within_level_slope(pts["x"], pts["y"], pts["train_set"], pts["level"], n_boot=n_boot,
                                     rng=np.random.default_rng(within_seed(seed, family, metric)))
        for c, v in zip(WITHIN_COLUMNS, (fit.slope, fit.lo, fit.hi, fit.n_levels, fit.note)):
            values[c].append(v)
    for c in WITHIN_COLUMNS:
        out[c] = values[c]
    out["n_levels_within"] = out["n_levels_within"].astype("Int64")
    return out


# --- selection contrasts ---------------------------------------------------------------------

def selection_groups(selections: Mapping[str, Mapping]) -> dict[int, dict[str, list[str]]]:
    """k -> select (max | min | random) -> training sets, from {train set: {"select", "domains"}}."""
    out: dict[int, dict[str, list[str]]] = {}
    for name, spec in sorted(selections.items()):
        how, k = spec.get("select"), spec.get("domains")
        if how and isinstance(k, int) and not isinstance(k, bool):
            out.setdefault(k, {}).setdefault(how, []).append(name)
    return out


CONTRASTS = (("min", "max"), ("random", "max"))   # (low, high): high - low


def selection_rows(summary: pd.DataFrame, arrays, selections: Mapping[str, Mapping], *,
                   metrics: Sequence[str] = TABLE_METRICS, pt_method: str = "logreg", n_boot: int = 2000,
                   seed: int = 0, level: float = LEVEL) -> list[dict]:
    """paired_comparison.tsv rows: max - min and max - random at each k, per family x metric."""
    groups = selection_groups(selections)
    families = list(dict.fromkeys(summary.loc[roles(summary) == "trained", "family"]))
    rows = []
    for metric in metrics:
        points = design_points(summary, metric, pt_method)
        for k, by_how in sorted(groups.items()):
            for low_how, high_how in CONTRASTS:
                if low_how not in by_how or high_how not in by_how:
                    continue
                low_label, high_label = f"k={k} select={low_how}", f"k={k} select={high_how}"
                for family in families:
                    mine = points[points["family"] == family]
                    at_low = mine[mine["train_set"].isin(by_how[low_how])]
                    at_high = mine[mine["train_set"].isin(by_how[high_how])]
                    if at_low.empty or at_high.empty:
                        continue
                    rng = np.random.default_rng(paired_seed(seed, family, f"{metric}-{low_label}-{high_label}"))
                    rows += paired_rows(family, metric, low_label, high_label, at_low, at_high, arrays, rng=rng,
                                        n_boot=n_boot, level=level)
    return rows
