"""Statistics that follow the study's design: seeds nested in training sets, training sets in levels.

The unit of inference is the training set: its checkpoints (one per training seed) share one
diversity coefficient and one draw of data, so they are not independent points. Here:

- `design_points`: one row per trained checkpoint (or control) for one metric, with the
  evaluation method that stands for its family (PT: the report's `pt_method`, MAML: `maml`).
- `level_order`: the diversity levels, numerically when their labels are numbers, else by
  the mean coefficient of their training sets.
- `hierarchical_bootstrap`: Pearson r and the OLS slope of metric on coefficient over the
  checkpoints, with percentile CIs from resampling training sets with replacement and, inside
  each drawn training set, its checkpoints with replacement (vectorised over resamples).
- `correlation_table`: one row per family x metric (`results/correlation.tsv`).

Only numpy, scipy and pandas (the report env has no torch).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from divcoeff.io import atomic_path
from divcoeff.seeding import derive_seed

# The metrics of results/correlation.tsv and results/paired_comparison.tsv. The uncalibrated loss
# is left out there: PT's logistic-regression loss sits near ln(ways) whatever the accuracy
# (REFERENCE.md section 4), so only the calibrated loss compares families; its plot computes the
# same statistics on the fly.
TABLE_METRICS = ("accuracy", "loss_calibrated")
MIN_TRAIN_SETS = 3   # fewer: no correlation and no slope (a line through 2 training sets says nothing)
LEVEL = 0.95

# Which evaluation method stands for a family: logreg is the published protocol for PT.
PRIMARY_METHODS = {"pt": "logreg", "maml": "maml"}

CORRELATION_COLUMNS = ["family", "metric", "n_checkpoints", "n_train_sets", "r", "r_lo", "r_hi",
                       "slope", "slope_lo", "slope_hi", "method", "note"]


# --- which rows -------------------------------------------------------------------------------

def family_methods(summary: pd.DataFrame, pt_method: str = "logreg") -> dict[str, str]:
    """The evaluation method that stands for each family: its preferred one (PT: `pt_method`,
    MAML: maml) where the table has it, else the first the table lists for that family."""
    preferred = {**PRIMARY_METHODS, "pt": pt_method}
    chosen = {}
    for family, rows in summary.groupby("family", sort=False):
        methods = list(dict.fromkeys(rows["method"]))
        chosen[family] = preferred[family] if preferred.get(family) in methods else methods[0]
    return chosen


def roles(summary: pd.DataFrame) -> pd.Series:
    """The role of each row: trained | control (a table without the column: all trained)."""
    if "role" not in summary.columns:  # a table from before controls existed: everything was trained
        return pd.Series("trained", index=summary.index)
    return summary["role"].fillna("trained").replace("", "trained")


def design_points(summary: pd.DataFrame, metric: str, pt_method: str = "logreg",
                  keep_roles: Iterable[str] = ("trained",)) -> pd.DataFrame:
    """One row per checkpoint of the roles in `keep_roles` with a finite value of `metric`: columns
    checkpoint, family, method, role, train_set, level, replicate, x (the training set's
    coefficient, NaN for a control), y (the checkpoint's metric mean), y_lo, y_hi, and the
    diversity CI and noise floor columns of the summary where it has them."""
    if f"{metric}_mean" not in summary.columns:
        raise KeyError(f"summary table has no column {metric}_mean")
    methods = family_methods(summary, pt_method)
    role = roles(summary)
    keep = role.isin(list(keep_roles)) & (summary["method"] == summary["family"].map(methods))
    rows = summary[keep]
    out = pd.DataFrame({
        "checkpoint": rows["checkpoint"].astype(object),
        "family": rows["family"].astype(object),
        "method": rows["method"].astype(object),
        "role": role[keep].astype(object),
        "train_set": rows["train_set"].fillna("").astype(object),
        "level": (rows["level"].fillna("").astype(str) if "level" in rows else pd.Series("", index=rows.index)),
        "replicate": rows["replicate"] if "replicate" in rows else pd.Series(pd.NA, index=rows.index),
        "x": rows["diversity"].astype(float),
        "y": rows[f"{metric}_mean"].astype(float),
        "y_lo": rows[f"{metric}_lo"].astype(float),
        "y_hi": rows[f"{metric}_hi"].astype(float),
    })
    for c in ("diversity_ci_bootstrap_lo", "diversity_ci_bootstrap_hi", "diversity_ci_pairs_t_lo",
              "diversity_ci_pairs_t_hi", "noise_floor"):
        out[c] = rows[c].astype(float) if c in rows else np.nan
    out = out[np.isfinite(out["y"].to_numpy(float))]
    trained = out["role"] == "trained"
    bad = trained & ~np.isfinite(out["x"].to_numpy(float))
    if bad.any():
        raise ValueError(f"trained checkpoint(s) without a diversity coefficient: {', '.join(out['checkpoint'][bad])}")
    return out.reset_index(drop=True)


def _as_number(label: str) -> float | None:
    try:
        value = float(label)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def level_order(points: pd.DataFrame) -> list[str]:
    """The levels of `points` (rows with a non-empty level) from least to most diverse.

    Numerically when every label is a number ("1" < "2" < "10"); otherwise by the mean
    coefficient of the level's training sets (each training set counted once, not once per
    seed), ties broken by label.
    """
    rows = points[points["level"].astype(str) != ""]
    labels = list(dict.fromkeys(rows["level"].astype(str)))
    numbers = {lab: _as_number(lab) for lab in labels}
    if labels and all(v is not None for v in numbers.values()):
        return sorted(labels, key=lambda lab: (numbers[lab], lab))
    per_set = rows.groupby("train_set", sort=False).agg(level=("level", "first"), x=("x", "first"))
    means = per_set.groupby("level")["x"].mean()
    return sorted(labels, key=lambda lab: (means.get(lab, math.inf), lab))


# --- the hierarchical bootstrap ---------------------------------------------------------------

def method_text(n_boot: int, level: float = LEVEL) -> str:
    """The correlation method in words (the `method` column and the line under the plots)."""
    return (f"Pearson r and OLS slope of the checkpoints' metric on their training set's coefficient; "
            f"{100 * level:g}% CI: hierarchical percentile bootstrap, {n_boot} resamples of the training sets "
            f"with replacement and, inside each drawn training set, of its checkpoints (seeds) with replacement")


@dataclasses.dataclass(frozen=True)
class HierarchicalFit:
    """Pearson r and the OLS line y = intercept + slope * x over checkpoints, with percentile CIs
    from the hierarchical bootstrap; NaN (with `reason`) where undefined."""

    n_checkpoints: int
    n_train_sets: int
    r: float
    r_lo: float
    r_hi: float
    slope: float
    slope_lo: float
    slope_hi: float
    intercept: float
    n_boot: int                      # resamples drawn
    n_boot_slope: int                # resamples with a defined slope (more than one distinct x)
    n_boot_r: int                    # resamples with a defined r (x and y not constant)
    reason: str = ""                 # why r and/or the slope are NaN
    level: float = LEVEL
    boot_slope: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0), repr=False, compare=False)
    boot_intercept: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return math.isfinite(self.slope)

    def predict(self, x) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(x, dtype=float)

    def band(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile band of the fitted line over the bootstrap lines (NaN without resamples)."""
        x = np.asarray(x, dtype=float)
        if self.boot_slope.size == 0:
            return np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        lines = self.boot_intercept[:, None] + self.boot_slope[:, None] * x.ravel()[None, :]
        alpha = (1.0 - self.level) / 2
        lo, hi = np.quantile(lines, [alpha, 1.0 - alpha], axis=0)
        return lo.reshape(x.shape), hi.reshape(x.shape)


def hierarchical_counts(sizes: Sequence[int], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, N) multiplicities of N = sum(sizes) checkpoints, listed group after group, and the
    (n_boot, n_groups) groups drawn.

    Each resample draws len(sizes) groups with replacement; each drawn group g contributes
    sizes[g] draws with replacement from its own checkpoints. All resamples at once: every
    slot draws max(sizes) positions and keeps the first sizes[g] of them.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n_groups, total, width = sizes.size, int(sizes.sum()), int(sizes.max())
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    groups = rng.integers(0, n_groups, size=(n_boot, n_groups))
    n_drawn = sizes[groups][..., None]                                  # (B, G, 1)
    within = np.floor(rng.random((n_boot, n_groups, width)) * n_drawn).astype(np.int64)
    keep = np.arange(width)[None, None, :] < n_drawn                   # the first n_g draws of the slot
    flat = (offsets[groups][..., None] + within) + total * np.arange(n_boot)[:, None, None]
    counts = np.bincount(flat[keep], minlength=n_boot * total)
    return counts.reshape(n_boot, total).astype(float), groups


def _weighted_line(w: np.ndarray, x: np.ndarray, y: np.ndarray):
    """Slope, intercept, r and the centred sums of each row of weights w (B, N) over points (x, y)."""
    x0, y0 = x.mean(), y.mean()   # centre first: the sums of squares then lose no digits
    dx, dy = x - x0, y - y0
    s = w.sum(axis=1)
    mx, my = (w @ dx) / s, (w @ dy) / s
    sxx = w @ (dx * dx) - s * mx * mx
    syy = w @ (dy * dy) - s * my * my
    sxy = w @ (dx * dy) - s * mx * my
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = sxy / sxx
        r = sxy / np.sqrt(sxx * syy)
    intercept = (my + y0) - slope * (mx + x0)
    return slope, intercept, np.clip(r, -1.0, 1.0), sxx, syy


def _constant(values: np.ndarray) -> bool:
    return float(np.ptp(values)) <= 1e-12 * (float(np.abs(values).max()) + 1e-300)


def hierarchical_bootstrap(x, y, groups, *, n_boot: int, rng: np.random.Generator | None = None,
                           level: float = LEVEL) -> HierarchicalFit:
    """Pearson r and OLS slope of y on x over all points, CIs by the two-stage percentile bootstrap.

    `groups`: the training set of each point (any hashable labels); x must be constant within a
    group (it is the training set's coefficient). Resamples that draw a single distinct x have
    no slope and are dropped, and so are those with constant y for r; the counts kept are in
    the result. Fewer than 3 training sets, or one coefficient for all, give NaN with a reason,
    never an exception.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    labels = np.asarray(list(groups), dtype=object).ravel()
    if not (x.size == y.size == labels.size):
        raise ValueError(f"x, y and groups differ in length ({x.size}, {y.size}, {labels.size})")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, labels = x[keep], y[keep], labels[keep]
    # points group after group, groups in order of first appearance
    order_of = {g: i for i, g in enumerate(dict.fromkeys(labels.tolist()))}
    gid = np.array([order_of[g] for g in labels], dtype=np.int64)
    perm = np.argsort(gid, kind="stable")
    x, y, gid = x[perm], y[perm], gid[perm]
    n, n_groups = int(x.size), len(order_of)
    sizes = np.bincount(gid, minlength=n_groups)
    nan = math.nan

    def undefined(reason: str, slope=nan, intercept=nan, r=nan) -> HierarchicalFit:
        return HierarchicalFit(n, n_groups, r, nan, nan, slope, nan, nan, intercept, 0, 0, 0, reason, level)

    for g in range(n_groups):
        if not _constant(x[gid == g]):
            raise ValueError(f"the coefficient differs between the checkpoints of training set "
                             f"{list(order_of)[g]!r}: x must be one value per training set")
    if n_groups < MIN_TRAIN_SETS:
        return undefined(f"{n_groups} training set{'s' if n_groups != 1 else ''} (need {MIN_TRAIN_SETS})")
    x_group = np.array([x[gid == g][0] for g in range(n_groups)])
    if _constant(x_group):
        return undefined("constant x: every training set has the same coefficient")

    slope0, intercept0, r0, _, syy0 = (float(v[0]) for v in _weighted_line(np.ones((1, n)), x, y))
    reason = ""
    if _constant(y):
        r0, reason = nan, "r undefined: constant y"
    if n_boot <= 0:
        return HierarchicalFit(n, n_groups, r0, nan, nan, slope0, nan, nan, intercept0, 0, 0, 0, reason, level)

    rng = rng if rng is not None else np.random.default_rng(0)
    boot_slope, boot_intercept, boot_r = [], [], []
    chunk = max(1, 2_000_000 // max(n, 1))   # bounded memory for any design
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w, drawn = hierarchical_counts(sizes, b, rng)
        slope, intercept, r, _, syy = _weighted_line(w, x, y)
        xs = x_group[drawn]
        one_x = np.ptp(xs, axis=1) <= 1e-12 * (np.abs(xs).max(axis=1) + 1e-300)
        # y constant inside a resample: r undefined (relative tolerance: sums keep rounding residue)
        const_y = syy <= (1e-12 * (np.abs(y).max() + 1e-300)) ** 2 * w.sum(axis=1)
        boot_slope.append(np.where(one_x, nan, slope))
        boot_intercept.append(np.where(one_x, nan, intercept))
        boot_r.append(np.where(one_x | const_y, nan, r))
    boot_slope, boot_intercept, boot_r = (np.concatenate(v) for v in (boot_slope, boot_intercept, boot_r))
    ok_line = np.isfinite(boot_slope)
    ok_r = np.isfinite(boot_r)
    alpha = (1.0 - level) / 2

    def pct(v):
        return tuple(float(q) for q in np.quantile(v, [alpha, 1.0 - alpha])) if v.size else (nan, nan)

    slope_lo, slope_hi = pct(boot_slope[ok_line])
    r_lo, r_hi = pct(boot_r[ok_r]) if math.isfinite(r0) else (nan, nan)
    return HierarchicalFit(n, n_groups, r0, r_lo, r_hi, slope0, slope_lo, slope_hi, intercept0, n_boot,
                           int(ok_line.sum()), int(ok_r.sum()), reason, level,
                           boot_slope[ok_line], boot_intercept[ok_line])


def fit_note(fit: HierarchicalFit) -> str:
    """What a reader of correlation.tsv needs beyond the numbers: why something is NaN, dropped resamples."""
    notes = [fit.reason] if fit.reason else []
    if fit.ok and fit.n_boot:
        if fit.n_boot_slope < fit.n_boot:
            notes.append(f"{fit.n_boot - fit.n_boot_slope} of {fit.n_boot} resamples drew a single coefficient "
                         "and were dropped")
        if fit.n_train_sets < 6:
            notes.append(f"only {fit.n_train_sets} training sets: the percentile intervals are rough")
    return "; ".join(notes)


# --- correlation.tsv --------------------------------------------------------------------------

def correlation_seed(seed: int, family: str, metric: str) -> int:
    """The bootstrap stream of one family x metric: the statistics rule and the plots draw the same
    resamples from the same report seed, and adding a family shifts no other family's draws."""
    return derive_seed(seed, "correlation", family, metric)


def family_fit(points: pd.DataFrame, family: str, metric: str, *, n_boot: int, seed: int) -> HierarchicalFit:
    """The hierarchical fit of one family's trained checkpoints (rows of `design_points`)."""
    rows = points[(points["family"] == family) & (points["role"] == "trained")]
    return hierarchical_bootstrap(rows["x"], rows["y"], rows["train_set"], n_boot=n_boot,
                                  rng=np.random.default_rng(correlation_seed(seed, family, metric)))


def correlation_row(family: str, metric: str, fit: HierarchicalFit, n_boot: int) -> dict:
    return {"family": family, "metric": metric, "n_checkpoints": fit.n_checkpoints,
            "n_train_sets": fit.n_train_sets, "r": fit.r, "r_lo": fit.r_lo, "r_hi": fit.r_hi,
            "slope": fit.slope, "slope_lo": fit.slope_lo, "slope_hi": fit.slope_hi,
            "method": method_text(n_boot, fit.level), "note": fit_note(fit)}


def correlation_table(summary: pd.DataFrame, *, metrics: Sequence[str] = TABLE_METRICS, pt_method: str = "logreg",
                      n_boot: int, seed: int = 0) -> pd.DataFrame:
    """results/correlation.tsv: one row per family x metric over the trained checkpoints (controls
    excluded). A family without values for a metric (e.g. no calibrated loss) gets a NaN row
    with a note rather than no row."""
    families = list(dict.fromkeys(summary.loc[roles(summary) == "trained", "family"]))
    rows = []
    for metric in metrics:
        points = design_points(summary, metric, pt_method)
        for family in families:
            fit = family_fit(points, family, metric, n_boot=n_boot, seed=seed)
            row = correlation_row(family, metric, fit, n_boot)
            if fit.n_checkpoints == 0:
                row["note"] = f"no {metric} values for this family"
            rows.append(row)
    table = pd.DataFrame(rows, columns=CORRELATION_COLUMNS)
    for c in ("n_checkpoints", "n_train_sets"):
        table[c] = table[c].astype("Int64")
    return table


def write_tsv(table: pd.DataFrame, path) -> None:
    """Tab-separated, atomically, empty cells for missing values, 8 significant digits."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="", float_format="%.8g")


def read_correlation(path) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", dtype={"family": "string", "metric": "string", "method": "string",
                                               "note": "string", "n_checkpoints": "Int64", "n_train_sets": "Int64"},
                        keep_default_na=False,
                        na_values={c: [""] for c in CORRELATION_COLUMNS if c not in ("family", "metric", "method",
                                                                                      "note")})
    missing = [c for c in CORRELATION_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected divcoeff.report.design.CORRELATION_COLUMNS")
    for c in ("family", "metric", "method", "note"):
        table[c] = table[c].astype(object)
    return table


def check_against(fit: HierarchicalFit, row: Mapping, where: str) -> None:
    """Raise if a correlation.tsv row is not the figures of `fit` (a stale file, another seed or
    another number of resamples): a plot must print what the table says."""
    for key in ("r", "r_lo", "r_hi", "slope", "slope_lo", "slope_hi"):
        a, b = float(getattr(fit, key)), float(row[key])
        same = (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
        if not same:
            raise ValueError(f"{where}: {key} = {b!r} in the file but {a!r} recomputed from the summary; "
                             "the file is stale or was made with another seed or number of resamples")
