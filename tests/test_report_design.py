"""divcoeff.report.design: the hierarchical bootstrap, level order and results/correlation.tsv."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from divcoeff.report.design import (CORRELATION_COLUMNS, correlation_table, design_points, hierarchical_bootstrap,
                                    hierarchical_counts, level_order, read_correlation, write_tsv)
from divcoeff.report.summary import build_summary, result_paths
from report_data import DESIGN_SEEDS, DESIGN_SETS, write_design_results

# --- a synthetic nested design with a known slope ---------------------------------------------
# y_ij = a + beta * x_i + u_i + e_ij: 8 training sets i (coefficients spread like the glyph
# study's), 3 seeds j each; u_i ~ N(0, tau^2) the training-set (draw) effect, e_ij ~ N(0, sigma^2)
# the seed noise. With tau = sigma the set effect dominates the slope's error, as it would in the
# study (a draw of scripts matters more than a training seed).
BETA, TAU, SIGMA = 1.5, 0.02, 0.02
X_SETS = np.linspace(0.08, 0.22, 8)
N_SEEDS = 3


def simulate(rng, n_data):
    u = rng.normal(0, TAU, (n_data, X_SETS.size, 1))
    e = rng.normal(0, SIGMA, (n_data, X_SETS.size, N_SEEDS))
    y = 0.4 + BETA * X_SETS[None, :, None] + u + e
    x = np.repeat(X_SETS, N_SEEDS)
    groups = np.repeat(np.arange(X_SETS.size), N_SEEDS)
    return x, y.reshape(n_data, -1), groups


def flat_bootstrap_slope_ci(x, y, n_boot, rng):
    """The percentile bootstrap over checkpoints as if they were independent (what not to do)."""
    idx = rng.integers(0, x.size, (n_boot, x.size))
    xs, ys = x[idx], y[idx]
    xc = xs - xs.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        slopes = (xc * (ys - ys.mean(axis=1, keepdims=True))).sum(axis=1) / (xc * xc).sum(axis=1)
    return np.quantile(slopes[np.isfinite(slopes)], [0.025, 0.975])


def test_hierarchical_bootstrap_covers_the_true_slope_at_about_the_nominal_rate():
    """400 simulated studies, 1,000 resamples each. Measured on 4,000 studies of this design the
    two-stage bootstrap covers 0.94 (it is 0.90 when the set effect alone drives the error, 0.98
    when the seed noise does: resampling seeds inside resampled sets counts their variance
    about twice). The window 0.88-0.99 is that 0.94 +- 3 binomial standard errors of 400 studies
    (0.012), widened to the method's own range; the flat checkpoint bootstrap, which treats the
    24 checkpoints as independent, covers about 0.77 here and must fall outside."""
    rng = np.random.default_rng(20261201)
    x, ys, groups = simulate(rng, 400)
    hits, flat_hits, widths = 0, 0, []
    for y in ys:
        fit = hierarchical_bootstrap(x, y, groups, n_boot=1000, rng=rng)
        assert fit.n_checkpoints == 24 and fit.n_train_sets == 8 and fit.ok
        hits += fit.slope_lo <= BETA <= fit.slope_hi
        widths.append(fit.slope_hi - fit.slope_lo)
        lo, hi = flat_bootstrap_slope_ci(x, y, 1000, rng)
        flat_hits += lo <= BETA <= hi
    coverage, flat = hits / len(ys), flat_hits / len(ys)
    assert 0.88 <= coverage <= 0.99, coverage
    assert flat < 0.86, flat          # the test can tell a design-blind interval from the right one
    # and the interval is not trivially wide: about the t-interval of the slope over set means
    # (sd of the slope = sqrt(tau^2 + sigma^2 / 3) / sqrt(Sxx) ~ 0.2, a 95% width ~ 0.85)
    assert 0.5 < np.median(widths) < 1.3


def test_point_estimates_are_pearson_and_ols_over_checkpoints():
    rng = np.random.default_rng(3)
    x, ys, groups = simulate(rng, 1)
    y = ys[0]
    fit = hierarchical_bootstrap(x, y, groups, n_boot=0)
    ref = sps.linregress(x, y)
    assert fit.slope == pytest.approx(ref.slope, rel=1e-10)
    assert fit.intercept == pytest.approx(ref.intercept, rel=1e-10)
    assert fit.r == pytest.approx(sps.pearsonr(x, y).statistic, rel=1e-10)
    assert math.isnan(fit.slope_lo) and fit.n_boot == 0
    # groups given as labels in any order: the same numbers
    perm = rng.permutation(x.size)
    other = hierarchical_bootstrap(x[perm], y[perm], [f"set-{g}" for g in groups[perm]], n_boot=0)
    assert other.slope == pytest.approx(fit.slope, rel=1e-12) and other.r == pytest.approx(fit.r, rel=1e-12)


def test_resamples_draw_sets_then_seeds_inside_them():
    sizes = [3, 1, 2]                    # unbalanced: checkpoints 0-2 | 3 | 4-5
    counts, groups = hierarchical_counts(sizes, 5000, np.random.default_rng(0))
    assert counts.shape == (5000, 6) and groups.shape == (5000, 3)
    starts, ends = [0, 3, 4], [3, 4, 6]
    for b in range(50):
        for g in range(3):
            # each group's checkpoints are drawn exactly size x (times it was drawn) times
            drawn = int((groups[b] == g).sum())
            assert counts[b, starts[g]:ends[g]].sum() == sizes[g] * drawn
    assert (counts.sum(axis=1) == np.array(sizes)[groups].sum(axis=1)).all()
    # the set draws and the seed draws are uniform: set 1 (one checkpoint) is drawn 1/3 of the time,
    # and inside set 0 each checkpoint gets a third of the draws
    assert (groups == 1).mean() == pytest.approx(1 / 3, abs=0.01)
    inside = counts[:, 0:3].sum(axis=0)
    assert inside / inside.sum() == pytest.approx([1 / 3] * 3, abs=0.01)


def test_bootstrap_is_reproducible_and_its_band_holds_the_line():
    rng = np.random.default_rng(5)
    x, ys, groups = simulate(rng, 1)
    a = hierarchical_bootstrap(x, ys[0], groups, n_boot=500, rng=np.random.default_rng(11))
    b = hierarchical_bootstrap(x, ys[0], groups, n_boot=500, rng=np.random.default_rng(11))
    c = hierarchical_bootstrap(x, ys[0], groups, n_boot=500, rng=np.random.default_rng(12))
    assert a == b and (a.slope_lo, a.slope_hi) != (c.slope_lo, c.slope_hi)
    assert a.slope_lo < a.slope < a.slope_hi and a.r_lo < a.r < a.r_hi <= 1.0
    grid = np.linspace(X_SETS.min(), X_SETS.max(), 7)
    lo, hi = a.band(grid)
    assert (lo < a.predict(grid)).all() and (a.predict(grid) < hi).all()
    # the band at x is the percentile of the resampled lines there
    lines = a.boot_intercept[:, None] + a.boot_slope[:, None] * grid
    np.testing.assert_allclose(lo, np.quantile(lines, 0.025, axis=0))


def test_degenerate_designs_give_nan_with_a_reason():
    two = hierarchical_bootstrap([0.1, 0.1, 0.2, 0.2], [1, 2, 3, 4], ["a", "a", "b", "b"], n_boot=100)
    assert math.isnan(two.r) and math.isnan(two.slope) and "2 training sets (need 3)" in two.reason
    flat_x = hierarchical_bootstrap([0.1] * 6, [1, 2, 3, 4, 5, 6], list("aabbcc"), n_boot=100)
    assert math.isnan(flat_x.slope) and flat_x.reason.startswith("constant x")
    flat_y = hierarchical_bootstrap([0.1, 0.1, 0.2, 0.2, 0.3, 0.3], [5.0] * 6, list("aabbcc"), n_boot=100)
    assert flat_y.slope == 0.0 and math.isnan(flat_y.r) and flat_y.reason == "r undefined: constant y"
    assert flat_y.slope_lo == flat_y.slope_hi == 0.0 and math.isnan(flat_y.r_lo)
    empty = hierarchical_bootstrap([], [], [], n_boot=100)
    assert empty.n_checkpoints == 0 and "0 training sets" in empty.reason
    # three sets: some resamples draw one set thrice (1/9 of them) and are dropped, and counted
    three = hierarchical_bootstrap([0.1, 0.2, 0.3], [1.0, 2.5, 2.9], list("abc"), n_boot=900,
                                   rng=np.random.default_rng(0))
    assert three.ok and 60 < three.n_boot - three.n_boot_slope < 140
    with pytest.raises(ValueError, match="coefficient differs between the checkpoints of training set 'a'"):
        hierarchical_bootstrap([0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4], list("aabc"), n_boot=100)


def _points(levels, xs):
    return pd.DataFrame({"level": levels, "x": xs, "train_set": [f"t{i}" for i in range(len(xs))]})


def test_level_order():
    # numbers sort as numbers, not as text
    assert level_order(_points(["4", "1", "10", "2"], [0.3, 0.1, 0.4, 0.2])) == ["1", "2", "4", "10"]
    assert level_order(_points(["2.5", "1", "1"], [0.2, 0.1, 0.12])) == ["1", "2.5"]
    # names sort by the mean coefficient of their training sets, each set counted once
    pts = pd.DataFrame({"level": ["wide", "wide", "wide", "narrow", "mid"],
                        "train_set": ["w0", "w0", "w1", "n0", "m0"],
                        "x": [0.30, 0.30, 0.10, 0.15, 0.19]})
    # wide: mean of 0.30 and 0.10 = 0.20 (0.233 if its first set counted twice), above mid
    assert level_order(pts) == ["narrow", "mid", "wide"]
    assert level_order(_points(["", "1"], [0.1, 0.2])) == ["1"]


@pytest.fixture
def design_summary(tmp_path):
    rows = write_design_results(tmp_path)
    evals, divs = result_paths(rows)
    return build_summary(rows, evals, divs)


def test_correlation_table_on_the_replicated_design(design_summary, tmp_path):
    table = correlation_table(design_summary, n_boot=400, seed=9)
    assert list(table.columns) == CORRELATION_COLUMNS
    assert list(zip(table["family"], table["metric"])) == [("pt", "accuracy"), ("maml", "accuracy"),
                                                           ("pt", "loss_calibrated"), ("maml", "loss_calibrated")]
    n_sets = len(DESIGN_SETS)
    assert table["n_checkpoints"].tolist() == [DESIGN_SEEDS["pt"] * n_sets, DESIGN_SEEDS["maml"] * n_sets] * 2
    assert (table["n_train_sets"] == n_sets).all()  # the control is not a training set
    # the point estimates are over trained checkpoints only, PT through logreg
    pts = design_points(design_summary, "accuracy")
    pt = pts[pts["family"] == "pt"]
    assert set(pt["method"]) == {"logreg"} and "pt-untrained" not in set(pt["checkpoint"])
    row = table.iloc[0]
    assert row["r"] == pytest.approx(sps.pearsonr(pt["x"], pt["y"]).statistic, rel=1e-10)
    assert row["slope"] == pytest.approx(sps.linregress(pt["x"], pt["y"]).slope, rel=1e-10)
    assert row["r_lo"] < row["r"] < row["r_hi"] and row["slope_lo"] < row["slope"] < row["slope_hi"]
    assert (table["slope"][table["metric"] == "loss_calibrated"] < 0).all()
    assert "hierarchical percentile bootstrap, 400 resamples of the training sets" in row["method"]
    assert "of its checkpoints (seeds) with replacement" in row["method"]
    # another seed gives other intervals, the same seed the same
    assert correlation_table(design_summary, n_boot=400, seed=9).equals(table)
    assert correlation_table(design_summary, n_boot=400, seed=10)["r_lo"].iloc[0] != row["r_lo"]
    # pt_method picks the rows: proto is logreg minus 2 of 75 queries in the hand-made files
    proto = design_points(design_summary, "accuracy", pt_method="proto")
    np.testing.assert_allclose(proto.loc[proto["family"] == "pt", "y"].to_numpy(), pt["y"].to_numpy() - 2 / 75,
                               atol=1e-12)
    # TSV round trip
    write_tsv(table, tmp_path / "correlation.tsv")
    back = read_correlation(tmp_path / "correlation.tsv")
    assert back["family"].tolist() == table["family"].tolist()
    np.testing.assert_allclose(back["slope_lo"], table["slope_lo"], rtol=1e-7)


def test_correlation_table_of_a_small_or_incomplete_design(design_summary):
    two_sets = design_summary[design_summary["train_set"].isin(["", "glyphs-L1-d0", "glyphs-L4-d0"])]
    table = correlation_table(two_sets, n_boot=100)
    assert table["r"].isna().all() and table["slope"].isna().all()
    assert table["note"].str.contains("2 training sets").all()
    no_calibration = design_summary.assign(loss_calibrated_mean=np.nan)
    table = correlation_table(no_calibration, n_boot=100)
    cal = table[table["metric"] == "loss_calibrated"]
    assert (cal["n_checkpoints"] == 0).all() and cal["note"].str.contains("no loss_calibrated values").all()
