"""Scatter plots checked through matplotlib objects (markers, bars, fit, band, control, noise floor,
text, legends), not pixels; and byte-identical files."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from divcoeff.report.design import correlation_table, design_points, family_fit
from divcoeff.report.plots import CONTROL_LABEL, close, save_figure, scatter_plot
from divcoeff.report.summary import build_summary, result_paths
from report_data import DESIGN_CONTROL, DESIGN_SETS, TRAIN_SETS, write_design_results, write_results

SEED, N_BOOT = 7, 300


def build(rows):
    evals, divs = result_paths(rows)
    return build_summary(rows, evals, divs)


@pytest.fixture
def design(tmp_path):
    return build(write_design_results(tmp_path))


def by_gid(ax, gid):
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) <= 1, gid
    return found[0] if found else None


def error_bars(ax, family):
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer) and c.get_label() == f"_errorbars-{family}"]
    assert len(bars) == 1
    return bars[0]


def y_span(rect):
    """(bottom, top) of an axhspan rectangle in data units."""
    return rect.get_y(), rect.get_y() + rect.get_height()


def per_set(summary, family, metric="accuracy"):
    """By hand: per training set, its coefficient, CI and the mean / min / max over its seeds."""
    pts = design_points(summary, metric)
    pts = pts[pts["family"] == family]
    g = pts.groupby("train_set", sort=False)
    return pd.DataFrame({"x": g["x"].first(), "mean": g["y"].mean(), "min": g["y"].min(), "max": g["y"].max()}), pts


def test_the_design_plot_has_every_promised_artist_with_its_values(design):
    plot = scatter_plot(design, "accuracy", n_boot=N_BOOT, seed=SEED)
    ax = plot.ax
    for family, n_seeds in (("pt", 3), ("maml", 2)):
        sets, pts = per_set(design, family)
        # one marker per training set at its mean over seeds (accuracy in %)
        markers = by_gid(ax, f"sets-{family}")
        np.testing.assert_allclose(markers.get_offsets(), np.column_stack([sets["x"], 100 * sets["mean"]]))
        # each checkpoint a faint small point
        faint = by_gid(ax, f"checkpoints-{family}")
        np.testing.assert_allclose(faint.get_offsets(), np.column_stack([pts["x"], 100 * pts["y"]]))
        assert len(faint.get_offsets()) == n_seeds * len(DESIGN_SETS)
        assert faint.get_alpha() < 0.5 and faint.get_sizes().max() < markers.get_sizes().min()
        # vertical bar: the range over seeds; horizontal: the diversity bootstrap CI over tasks
        bars = error_bars(ax, family)
        xbars, ybars = bars.lines[2]
        yseg = np.array(ybars.get_segments())
        np.testing.assert_allclose(yseg[:, 0, 1], 100 * sets["min"])
        np.testing.assert_allclose(yseg[:, 1, 1], 100 * sets["max"])
        xseg = np.array(xbars.get_segments())
        np.testing.assert_allclose(xseg[:, 1, 0] - xseg[:, 0, 0], [2 * DESIGN_SETS[t][2] for t in sets.index])
        # the OLS fit over checkpoints (not over set means) and its hierarchical-bootstrap band
        slope, intercept = np.polyfit(pts["x"], 100 * pts["y"], 1)
        gx, gy = by_gid(ax, f"fit-{family}").get_data()
        assert (gx.min(), gx.max()) == pytest.approx((pts["x"].min(), pts["x"].max()))
        np.testing.assert_allclose(gy, intercept + slope * gx, rtol=1e-9)
        fit = family_fit(design_points(design, "accuracy"), family, "accuracy", n_boot=N_BOOT, seed=SEED)
        assert plot.families[family].fit == fit
        band = by_gid(ax, f"band-{family}").get_paths()[0].vertices
        lo, hi = fit.band(gx)
        assert band[:, 1].min() == pytest.approx(100 * lo.min()) and band[:, 1].max() == pytest.approx(100 * hi.max())

    # the control: a horizontal line at the untrained network's accuracy, its CI over episodes shaded
    control = design[(design["checkpoint"] == DESIGN_CONTROL) & (design["method"] == "logreg")].iloc[0]
    line = by_gid(ax, "control-pt")
    assert np.allclose(line.get_ydata(), 100 * control["accuracy_mean"])
    assert y_span(by_gid(ax, "control-band-pt")) == pytest.approx((100 * control["accuracy_lo"],
                                                                  100 * control["accuracy_hi"]))
    assert by_gid(ax, "control-maml") is None   # no MAML control in this design
    legend = [t.get_text() for t in by_gid(ax, "legend-families").get_texts()]
    assert any(t.startswith(CONTROL_LABEL) and "95% CI over episodes" in t for t in legend)
    # the noise floor: a band on the x-axis from 0 to the largest floor of the training sets
    floor = max(v[3] for v in DESIGN_SETS.values())
    shade = by_gid(ax, "noise-floor")
    assert plot.noise_floor == floor and (shade.get_x(), shade.get_x() + shade.get_width()) == (0.0, floor)
    assert any("noise floor up to 0.034" in t for t in legend)

    # under the axes: the figures of correlation.tsv for this metric, n and the method in words
    text = by_gid(ax, "stats").get_text()
    row = correlation_table(design, metrics=["accuracy"], n_boot=N_BOOT, seed=SEED).iloc[0]
    assert f"PT (logreg): r = {row['r']:+.2f} [{row['r_lo']:+.2f}, {row['r_hi']:+.2f}]" in text
    assert f"slope = {row['slope']:+#.3g} [{row['slope_lo']:+#.3g}, {row['slope_hi']:+#.3g}]" in text
    assert "18 checkpoints, 6 training sets" in text and "MAML: r = " in text and "12 checkpoints" in text
    assert "hierarchical percentile bootstrap, 300 resamples of the training sets" in " ".join(text.split())
    assert "range over its seeds" in ax.get_ylabel() and "bootstrap CI over tasks" in ax.get_xlabel()
    # the marker colours show the diversity levels, in order
    assert [t.get_text() for t in by_gid(ax, "legend-colours").get_texts()] == ["1", "2", "4"]
    close(plot)


def test_legends_sit_outside_the_axes(design):
    plot = scatter_plot(design, "accuracy", n_boot=50, seed=SEED)
    plot.figure.canvas.draw()
    axes_box = plot.ax.get_window_extent()
    for gid in ("legend-families", "legend-colours"):
        box = by_gid(plot.ax, gid).get_window_extent()
        assert box.x0 >= axes_box.x1, gid   # right of the axes: no point can be under it
    close(plot)


def test_the_plot_prints_what_correlation_tsv_says_or_refuses(design):
    same = correlation_table(design, n_boot=N_BOOT, seed=SEED)
    close(scatter_plot(design, "accuracy", n_boot=N_BOOT, seed=SEED, correlations=same))
    stale = correlation_table(design, n_boot=N_BOOT, seed=SEED + 1)
    with pytest.raises(ValueError, match=r"correlation.tsv, pt x accuracy: r_lo = .* stale"):
        scatter_plot(design, "accuracy", n_boot=N_BOOT, seed=SEED, correlations=stale)
    # the uncalibrated loss is not in the file: computed on the fly with the same streams
    plot = scatter_plot(design, "loss", n_boot=N_BOOT, seed=SEED, correlations=same)
    on_the_fly = correlation_table(design, metrics=["loss"], n_boot=N_BOOT, seed=SEED).iloc[0]
    assert plot.families["pt"].fit.slope_lo == on_the_fly["slope_lo"]
    assert "nats per unit of coefficient" in by_gid(plot.ax, "stats").get_text()
    close(plot)


def test_several_controls_show_their_range_and_no_floor_draws_no_band(design):
    second = design[design["checkpoint"] == DESIGN_CONTROL].copy()
    second["checkpoint"] = "pt-untrained-2"
    second["accuracy_mean"] += 0.03
    table = pd.concat([design, second], ignore_index=True)
    table["noise_floor"] = 0.0                       # the exact Fisher: no noise of its own
    plot = scatter_plot(table, "accuracy", n_boot=50, seed=SEED)
    acc = table.loc[(table["role"] == "control") & (table["method"] == "logreg"), "accuracy_mean"]
    assert np.allclose(by_gid(plot.ax, "control-pt").get_ydata(), 100 * acc.mean())
    assert y_span(by_gid(plot.ax, "control-band-pt")) == pytest.approx((100 * acc.min(), 100 * acc.max()))
    assert any("range over 2 untrained networks" in t.get_text()
               for t in by_gid(plot.ax, "legend-families").get_texts())
    assert by_gid(plot.ax, "noise-floor") is None and np.isnan(plot.noise_floor)
    close(plot)
    table["noise_floor"] = np.nan                     # not measured
    plot = scatter_plot(table, "accuracy", n_boot=50, seed=SEED)
    assert by_gid(plot.ax, "noise-floor") is None
    close(plot)


def test_a_design_too_small_for_a_fit_still_plots(design):
    two_sets = design[design["train_set"].isin(["", "glyphs-L1-d0", "glyphs-L4-d1"])]
    plot = scatter_plot(two_sets, "accuracy", n_boot=50, seed=SEED)
    assert by_gid(plot.ax, "fit-pt") is None and by_gid(plot.ax, "band-pt") is None
    assert len(by_gid(plot.ax, "sets-pt").get_offsets()) == 2
    assert "PT (logreg): no fit (2 training sets (need 3)); 6 checkpoints, 2 training sets" in \
        by_gid(plot.ax, "stats").get_text()
    assert by_gid(plot.ax, "control-pt") is not None
    close(plot)


def test_the_single_checkpoint_sheet_of_before_still_plots(tmp_path):
    table = build(write_results(tmp_path))
    plot = scatter_plot(table, "accuracy", pt_method="proto", n_boot=100, seed=SEED)
    # no levels: the colours are the training sets, by diversity; no seeds: zero-length vertical bars
    assert [t.get_text() for t in by_gid(plot.ax, "legend-colours").get_texts()] == list(TRAIN_SETS)
    yseg = np.array(error_bars(plot.ax, "pt").lines[2][1].get_segments())
    np.testing.assert_allclose(yseg[:, 0, 1], yseg[:, 1, 1])
    assert "PT (proto): r = " in by_gid(plot.ax, "stats").get_text()
    assert by_gid(plot.ax, "control-pt") is None and by_gid(plot.ax, "noise-floor") is None
    close(plot)
    missing = build(write_results(tmp_path, calibrated=False))
    plot = scatter_plot(missing, "loss_calibrated", n_boot=50)
    assert by_gid(plot.ax, "sets-pt") is None
    assert any(t.get_text() == "no results to plot" for t in plot.ax.texts)
    close(plot)


def test_files_are_byte_identical_across_saves_and_builds(design, tmp_path):
    first = scatter_plot(design, "accuracy", n_boot=100, seed=SEED)
    a = {fmt: tmp_path / f"a.{fmt}" for fmt in ("png", "pdf", "svg")}
    save_figure(first.figure, a, dpi=60)
    assert a["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert a["pdf"].read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in a["svg"].read_bytes()[:500]
    b = {fmt: tmp_path / f"b.{fmt}" for fmt in a}
    save_figure(first.figure, b, dpi=60)          # the same figure saved again
    close(first)
    second = scatter_plot(design, "accuracy", n_boot=100, seed=SEED)
    c = {fmt: tmp_path / f"c.{fmt}" for fmt in a}
    save_figure(second.figure, c, dpi=60)         # and drawn again from the same table
    close(second)
    for fmt in a:
        assert a[fmt].read_bytes() == b[fmt].read_bytes() == c[fmt].read_bytes(), fmt


def test_checkpoints_stopped_by_the_step_cap_are_marked_and_a_summary_without_the_column_plots(design):
    assert by_gid(scatter_plot(design, "accuracy", n_boot=0).ax, "capped-pt") is None   # no stopped_by column
    pts = design_points(design, "accuracy")
    capped = list(pts.loc[pts["family"] == "pt", "checkpoint"][:2])
    marked = design.assign(stopped_by=np.where(design["checkpoint"].isin(capped), "cap", "criterion"))
    plot = scatter_plot(marked, "accuracy", n_boot=0)
    xs = by_gid(plot.ax, "capped-pt").get_offsets()
    expected = pts.set_index("checkpoint").loc[capped]
    np.testing.assert_allclose(np.asarray(xs), np.column_stack([expected["x"], 100 * expected["y"]]))
    assert by_gid(plot.ax, "capped-maml") is None
    assert any("stopped by the step cap" in t.get_text() and "(2)" in t.get_text()
               for t in by_gid(plot.ax, "legend-families").get_texts())
    close(plot)
