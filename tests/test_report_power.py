"""Power simulation of the slope tests: variance components recovered, power sane on known cases."""
import numpy as np
import pandas as pd
import pytest

from divcoeff.report.power import (DesignSet, Variances, power, simulate, smallest_detectable,
                                   variance_components)


def design(sets_per_level=6, seeds=3):
    xs = np.linspace(0.0, 0.01, sets_per_level)
    return ([DesignSet("1", 0.04 + x, seeds) for x in xs] + [DesignSet("4", 0.06 + x, seeds) for x in xs])


def as_points(d: pd.DataFrame) -> pd.DataFrame:
    return d.assign(role="trained")


def test_variance_components_recover_known_variances():
    v = Variances(var_set=4e-4, var_seed=1e-4, n_sets=0, n_checkpoints=0)
    big = design(sets_per_level=200, seeds=4)
    d = simulate(big, 1.0, v, np.random.default_rng(0), level_effects={"1": 0.0, "4": 0.05})
    est = variance_components(as_points(d))
    assert est.var_seed == pytest.approx(1e-4, rel=0.1)
    assert est.var_set == pytest.approx(4e-4, rel=0.15)
    assert est.n_sets == 400 and est.n_checkpoints == 1600


def test_power_is_high_for_a_large_slope_and_about_alpha_for_none():
    v = Variances(1e-6, 1e-6, 0, 0)
    assert power(design(), 2.0, v, n_sim=60, n_boot=100, seed=1) == 1.0
    # No slope: an interval excludes 0 upwards in about 2.5% of studies (a percentile bootstrap over
    # 6 sets a level is somewhat liberal): far from 80%.
    assert power(design(), 0.0, v, n_sim=100, n_boot=100, seed=2) <= 0.15


def test_smallest_detectable_slope_matches_the_normal_approximation():
    v = Variances(1e-6, 1e-6, 0, 0)
    d = design()
    # SE of the within-level slope: sd of a set mean / sqrt(sum of squared within-level deviations of x)
    xs = np.array([s.x for s in d])
    lv = np.array([s.level for s in d])
    sxx = sum(((xs[lv == L] - xs[lv == L].mean()) ** 2).sum() for L in ("1", "4"))
    se = np.sqrt(v.var_set + v.var_seed / 3) / np.sqrt(sxx)
    slope, p = smallest_detectable(d, v, n_sim=100, n_boot=100, seed=3, steps=7, hi=4.0)
    assert p >= 0.8
    assert 0.6 * 2.8 * se < slope < 1.3 * 2.8 * se   # (1.96 + 0.84) SE, bootstrap a little liberal
