"""The slope on the coefficient within count level, and the selection contrasts on shared episodes."""
import numpy as np
import pandas as pd
import pytest

from divcoeff.report.design import hierarchical_bootstrap
from divcoeff.report.within import (WITHIN_COLUMNS, add_within_columns, selection_groups, selection_rows,
                                    within_level_slope)


def synthetic_design(slope=1.0, count_effect=0.05, sets_per_level=8, seeds=3, seed=0):
    """Two count levels whose coefficients do not overlap; y = level effect + slope * x + noise
    per training set + noise per seed."""
    rng = np.random.default_rng(seed)
    rows = []
    for level, (lo, hi), effect in (("1", (0.040, 0.050), 0.0), ("4", (0.060, 0.080), count_effect)):
        for s in range(sets_per_level):
            x = rng.uniform(lo, hi)
            set_noise = rng.normal(0, 0.002)
            for r in range(seeds):
                rows.append({"train_set": f"L{level}-s{s}", "level": level, "x": x,
                             "y": 0.6 + effect + slope * x + set_noise + rng.normal(0, 0.002)})
    return pd.DataFrame(rows)


def test_within_level_slope_recovers_a_known_slope_that_the_pooled_slope_misses():
    d = synthetic_design(slope=1.0, count_effect=0.05)
    fit = within_level_slope(d["x"], d["y"], d["train_set"], d["level"], n_boot=1000,
                             rng=np.random.default_rng(1))
    assert fit.lo < 1.0 < fit.hi and fit.n_levels == 2 and fit.n_boot == 1000
    assert fit.slope == pytest.approx(1.0, abs=0.3)
    pooled = hierarchical_bootstrap(d["x"], d["y"], d["train_set"], n_boot=1000, rng=np.random.default_rng(1))
    # The count effect (0.05 over a ~0.025 gap in coefficient) adds ~2 to the pooled slope.
    assert pooled.slope_lo > 2.0 and not (pooled.slope_lo < 1.0 < pooled.slope_hi)


def test_within_level_slope_equals_ols_with_level_dummies():
    d = synthetic_design(seed=3)
    fit = within_level_slope(d["x"], d["y"], d["train_set"], d["level"], n_boot=0)
    X = np.column_stack([d["x"], d["level"] == "1", d["level"] == "4"]).astype(float)
    beta = np.linalg.lstsq(X, d["y"].to_numpy(), rcond=None)[0]
    assert fit.slope == pytest.approx(beta[0], rel=1e-9)


def test_within_level_slope_needs_sets_that_differ_inside_a_level():
    d = pd.DataFrame({"x": [0.1, 0.1, 0.2, 0.2], "y": [1, 2, 3, 4], "train_set": ["a", "a", "b", "b"],
                      "level": ["1", "1", "2", "2"]})
    fit = within_level_slope(d["x"], d["y"], d["train_set"], d["level"], n_boot=10)
    assert np.isnan(fit.slope) and "no level holds" in fit.note


def summary_from(design: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for i, r in design.iterrows():
        for family, method in (("pt", "logreg"), ("maml", "maml")):
            rows.append({"checkpoint": f"{family}-{r['train_set']}-{i}", "family": family, "method": method,
                         "role": "trained", "train_set": r["train_set"], "level": r["level"], "diversity": r["x"],
                         "accuracy_mean": r["y"], "accuracy_lo": r["y"] - 0.01, "accuracy_hi": r["y"] + 0.01})
    return pd.DataFrame(rows)


def test_add_within_columns_to_the_correlation_table():
    s = summary_from(synthetic_design())
    corr = pd.DataFrame({"family": ["pt", "maml"], "metric": ["accuracy", "accuracy"]})
    out = add_within_columns(corr, s, n_boot=200, seed=0)
    assert list(out.columns) == ["family", "metric"] + WITHIN_COLUMNS
    assert (out["n_levels_within"] == 2).all()
    assert out["slope_within"].iloc[0] == pytest.approx(out["slope_within"].iloc[1])  # same points


def test_selection_contrasts_are_max_minus_min_on_the_shared_episodes():
    rng = np.random.default_rng(0)
    sets = {"hi-a": "max", "hi-b": "max", "lo-a": "min", "lo-b": "min", "rnd": "random"}
    rows, arrays = [], {}
    for ts, how in sets.items():
        for r in range(2):
            name = f"pt-{ts}-r{r}"
            values = rng.uniform(0.5, 0.7, 20) + (0.1 if how == "max" else 0.0)
            arrays[name] = {"logreg_accuracy": values}
            rows.append({"checkpoint": name, "family": "pt", "method": "logreg", "role": "trained", "train_set": ts,
                         "level": "4", "diversity": 0.05, "accuracy_mean": values.mean(),
                         "accuracy_lo": 0.0, "accuracy_hi": 1.0})
    summary = pd.DataFrame(rows)
    selections = {ts: {"select": how, "domains": 4} for ts, how in sets.items()}
    selections["other"] = {"select": None, "domains": 1}
    assert selection_groups(selections) == {4: {"max": ["hi-a", "hi-b"], "min": ["lo-a", "lo-b"], "random": ["rnd"]}}
    out = pd.DataFrame(selection_rows(summary, arrays, selections, metrics=("accuracy",), n_boot=300, seed=1))
    assert len(out) == 4   # (max vs min, max vs random) x (t, bootstrap)
    first = out.iloc[0]
    assert first["level_low"] == "k=4 select=min" and first["level_high"] == "k=4 select=max"
    hi = np.mean([arrays[f"pt-{t}-r{r}"]["logreg_accuracy"] for t in ("hi-a", "hi-b") for r in range(2)], axis=0)
    lo = np.mean([arrays[f"pt-{t}-r{r}"]["logreg_accuracy"] for t in ("lo-a", "lo-b") for r in range(2)], axis=0)
    assert first["diff"] == pytest.approx((hi - lo).mean(), abs=1e-12)
    assert out.iloc[1]["diff_lo"] < out.iloc[1]["diff"] < out.iloc[1]["diff_hi"]
