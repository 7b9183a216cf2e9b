"""Correlation of diversity with performance across checkpoints, with bootstrap CIs, and a
least-squares fit with its 95% confidence band.

Everything here is plain numpy/scipy (the report env has no torch) and vectorised: the
bootstrap resamples all draws at once, so 2,000 resamples of a dozen points take milliseconds.

These treat the points as independent. With seeds nested in training sets they are not: the
report's own statistics (correlation.tsv, the plots) come from `divcoeff.report.design`, whose
bootstrap resamples training sets and then the seeds inside them.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats as sps

MIN_N = 3  # fewer points: no correlation, no fit (a line through 2 points says nothing)


@dataclasses.dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its percentile-bootstrap 95% CI over points (pairs)."""

    method: str          # "pearson" | "spearman"
    n: int
    value: float         # nan when undefined
    lo: float
    hi: float
    n_boot: int          # resamples that gave a defined coefficient
    reason: str = ""     # why value is nan: "n too small", "constant x", ...

    @property
    def ok(self) -> bool:
        return math.isfinite(self.value)


@dataclasses.dataclass(frozen=True)
class LinearFit:
    """Ordinary least squares y = intercept + slope * x with the 95% band of the fitted mean."""

    n: int
    slope: float
    intercept: float
    resid_std: float     # residual standard deviation (n - 2 degrees of freedom)
    x_mean: float
    sxx: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(x, dtype=float)

    def band(self, x: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise confidence band of the regression line (not a prediction interval)."""
        x = np.asarray(x, dtype=float)
        t = sps.t.ppf(0.5 + level / 2, self.n - 2)
        half = t * self.resid_std * np.sqrt(1.0 / self.n + (x - self.x_mean) ** 2 / self.sxx)
        y = self.predict(x)
        return y - half, y + half


def _clean(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of (B, n) arrays; nan where a row is constant."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    sxx = (xc * xc).sum(axis=-1)
    syy = (yc * yc).sum(axis=-1)
    sxy = (xc * yc).sum(axis=-1)
    den = np.sqrt(sxx * syy)
    # A constant row (all resampled points equal) has no correlation: relative tolerance
    # because resampled means leave rounding residue around 1e-17.
    scale_x = np.abs(x).max(axis=-1) + 1e-300
    scale_y = np.abs(y).max(axis=-1) + 1e-300
    degenerate = (np.sqrt(sxx) <= 1e-12 * scale_x * math.sqrt(x.shape[-1])) | (
        np.sqrt(syy) <= 1e-12 * scale_y * math.sqrt(y.shape[-1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / den
    r = np.where(degenerate, np.nan, r)
    return np.clip(r, -1.0, 1.0)


def _coef_rows(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    if method == "pearson":
        return _pearson_rows(x, y)
    if method == "spearman":
        return _pearson_rows(sps.rankdata(x, axis=-1), sps.rankdata(y, axis=-1))
    raise ValueError(f"unknown correlation method {method!r} (pearson or spearman)")


def correlation(x, y, method: str = "pearson", *, n_boot: int,
                rng: np.random.Generator | None = None, level: float = 0.95) -> Correlation:
    """Pearson or Spearman coefficient of the finite (x, y) pairs with a percentile-bootstrap CI.

    Pairs (checkpoints) are resampled with replacement; resamples in which x or y is constant
    have no coefficient and are dropped. With fewer than 3 points the result is nan with
    reason "n too small" (never an exception), so a family with two checkpoints still plots.
    """
    x, y = _clean(x, y)
    n = int(x.size)
    if n < MIN_N:
        return Correlation(method, n, math.nan, math.nan, math.nan, 0, "n too small")
    value = float(_coef_rows(x[None], y[None], method)[0])
    if not math.isfinite(value):
        reason = "constant x" if np.ptp(x) == 0 else "constant y"
        return Correlation(method, n, math.nan, math.nan, math.nan, 0, reason)
    lo = hi = math.nan
    good = 0
    if n_boot > 0:
        rng = rng if rng is not None else np.random.default_rng(0)
        idx = rng.integers(0, n, size=(n_boot, n))
        boot = _coef_rows(x[idx], y[idx], method)
        boot = boot[np.isfinite(boot)]
        good = int(boot.size)
        if good:
            alpha = (1.0 - level) / 2
            lo, hi = (float(v) for v in np.quantile(boot, [alpha, 1.0 - alpha]))
    return Correlation(method, n, value, lo, hi, good)


def pearson(x, y, **kw) -> Correlation:
    return correlation(x, y, "pearson", **kw)


def spearman(x, y, **kw) -> Correlation:
    return correlation(x, y, "spearman", **kw)


def linear_fit(x, y) -> LinearFit | None:
    """Least-squares line through the finite pairs; None with fewer than 3 points or constant x."""
    x, y = _clean(x, y)
    n = int(x.size)
    if n < MIN_N:
        return None
    x_mean = float(x.mean())
    sxx = float(((x - x_mean) ** 2).sum())
    if sxx <= (1e-12 * (np.abs(x).max() + 1e-300)) ** 2 * n:
        return None
    slope = float(((x - x_mean) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * x_mean)
    resid = y - (intercept + slope * x)
    resid_std = float(np.sqrt((resid ** 2).sum() / (n - 2)))
    return LinearFit(n, slope, intercept, resid_std, x_mean, sxx)


def format_correlation(c: Correlation, symbol: str, digits: int = 2) -> str:
    """'r = 0.81 [0.42, 0.97]' / 'r: n too small' / 'r = 0.99 [CI n/a]'."""
    if not c.ok:
        return f"{symbol}: {c.reason}"
    f = f"{{:+.{digits}f}}"
    ci = f"[{f.format(c.lo)}, {f.format(c.hi)}]" if math.isfinite(c.lo) else "[CI n/a]"
    return f"{symbol} = {f.format(c.value)} {ci}"
