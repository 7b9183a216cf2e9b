"""divcoeff.report.stats against scipy and independent formulas."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from divcoeff.report.stats import correlation, format_correlation, linear_fit, pearson, spearman

X = np.array([0.10, 0.12, 0.15, 0.21, 0.11, 0.18, 0.16, 0.13, 0.20, 0.14, 0.17, 0.19])
Y = np.array([0.50, 0.55, 0.58, 0.70, 0.49, 0.61, 0.66, 0.52, 0.64, 0.60, 0.57, 0.68])


def test_point_values_match_scipy():
    assert pearson(X, Y, n_boot=0).value == pytest.approx(sps.pearsonr(X, Y).statistic, abs=1e-12)
    assert spearman(X, Y, n_boot=0).value == pytest.approx(sps.spearmanr(X, Y).statistic, abs=1e-12)
    # ties are ranked as scipy ranks them (average ranks)
    yt = np.round(Y, 1)
    assert spearman(X, yt, n_boot=0).value == pytest.approx(sps.spearmanr(X, yt).statistic, abs=1e-12)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_bootstrap_ci_contains_estimate_and_is_reproducible(method):
    a = correlation(X, Y, method, n_boot=500, rng=np.random.default_rng(7))
    b = correlation(X, Y, method, n_boot=500, rng=np.random.default_rng(7))
    c = correlation(X, Y, method, n_boot=500, rng=np.random.default_rng(8))
    assert a.n == 12 and a.ok
    assert a.lo <= a.value <= a.hi
    assert -1.0 <= a.lo < a.hi <= 1.0
    assert (a.lo, a.hi) == (b.lo, b.hi)
    assert (a.lo, a.hi) != (c.lo, c.hi)
    assert 450 <= a.n_boot <= 500  # resamples with a constant x or y are dropped, few of them


def test_undefined_cases_are_nan_with_a_reason():
    assert correlation([1, 2], [3, 4], n_boot=100).reason == "n too small"
    assert not correlation([1, 2], [3, 4], n_boot=100).ok
    assert correlation([1, 1, 1], [1, 2, 3], n_boot=100).reason == "constant x"
    assert correlation([1, 2, 3], [5, 5, 5], "spearman", n_boot=100).reason == "constant y"
    # non-finite pairs are left out before counting
    assert correlation([1, 2, np.nan, 4], [1, 3, 2, np.inf], n_boot=0).reason == "n too small"


def test_linear_fit_matches_polyfit_and_the_matrix_form_of_its_band():
    fit = linear_fit(X, Y)
    slope, intercept = np.polyfit(X, Y, 1)
    assert (fit.slope, fit.intercept) == pytest.approx((slope, intercept), rel=1e-10)
    # band half-width = t * sqrt(x0' s^2 (A'A)^-1 x0), computed from the design matrix
    A = np.column_stack([np.ones_like(X), X])
    resid = Y - A @ np.array([intercept, slope])
    s2 = resid @ resid / (len(X) - 2)
    cov = s2 * np.linalg.inv(A.T @ A)
    grid = np.array([0.05, 0.15, 0.3])
    G = np.column_stack([np.ones_like(grid), grid])
    half = sps.t.ppf(0.975, len(X) - 2) * np.sqrt(np.einsum("ij,jk,ik->i", G, cov, G))
    lo, hi = fit.band(grid)
    np.testing.assert_allclose(lo, G @ [intercept, slope] - half, rtol=1e-10)
    np.testing.assert_allclose(hi, G @ [intercept, slope] + half, rtol=1e-10)
    assert linear_fit([1, 2], [1, 2]) is None
    assert linear_fit([3, 3, 3], [1, 2, 3]) is None


def test_format_correlation():
    c = pearson(X, Y, n_boot=200, rng=np.random.default_rng(0))
    assert format_correlation(c, "r") == f"r = {c.value:+.2f} [{c.lo:+.2f}, {c.hi:+.2f}]"
    assert format_correlation(pearson([1, 2], [1, 2], n_boot=100), "r") == "r: n too small"
    assert format_correlation(pearson(X, Y, n_boot=0), "r").endswith("[CI n/a]")
    assert math.isnan(pearson(X, Y, n_boot=0).lo)
