"""Scatter plots checked through matplotlib objects (points, error bars, fit lines, text), not pixels."""
import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from scipy import stats as sps

from divcoeff.report.plots import close, save_figure, scatter_plot
from divcoeff.report.summary import build_summary
from report_data import CHECKPOINTS, TRAIN_SETS, write_results


@pytest.fixture
def table(tmp_path):
    rows = write_results(tmp_path)
    return build_summary(rows, {r["name"]: r["eval"] for r in rows}, {r["train_set"]: r["diversity"] for r in rows})


def by_gid(ax, gid):
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) <= 1, gid
    return found[0] if found else None


def expected_points(family):
    """(x, y%) of a family's checkpoints, primary method (logreg for PT), from the hand-made values."""
    pts = [(TRAIN_SETS[ts][0], 100 * acc) for f, ts, acc in CHECKPOINTS.values() if f == family]
    return np.array(pts)


def test_points_error_bars_fits_and_correlation_text(table):
    plot = scatter_plot(table, "accuracy", n_boot=300, seed=3)
    ax = plot.ax
    for family in ("pt", "maml"):
        pts = by_gid(ax, f"points-{family}")
        # PT shows logreg, not proto: the points are exactly the logreg accuracies, in %
        np.testing.assert_allclose(pts.get_offsets(), expected_points(family))

        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer) and c.get_label() == f"_errorbars-{family}"]
        assert len(bars) == 1 and bars[0].has_xerr and bars[0].has_yerr
        xbars, ybars = bars[0].lines[2]
        # x bars span the bootstrap CI of the diversity, y bars the accuracy CI (+-2 points)
        xseg = np.array(xbars.get_segments())
        np.testing.assert_allclose(xseg[:, 1, 0] - xseg[:, 0, 0], [2 * TRAIN_SETS[ts][1] for f, ts, _ in
                                                                   CHECKPOINTS.values() if f == family])
        yseg = np.array(ybars.get_segments())
        np.testing.assert_allclose(yseg[:, 1, 1] - yseg[:, 0, 1], 4.0)

        fit = by_gid(ax, f"fit-{family}")
        x, y = expected_points(family).T
        slope, intercept = np.polyfit(x, y, 1)
        gx, gy = fit.get_data()
        assert (gx.min(), gx.max()) == pytest.approx((x.min(), x.max()))
        np.testing.assert_allclose(gy, intercept + slope * gx, rtol=1e-9)
        assert by_gid(ax, f"band-{family}") is not None

        res = plot.families[family]
        assert res.n == 4
        assert res.pearson.value == pytest.approx(sps.pearsonr(x, y).statistic)
        assert res.spearman.value == pytest.approx(sps.spearmanr(x, y).statistic)

    # different markers for the two families
    pt_marker = by_gid(ax, "points-pt").get_paths()[0].vertices
    maml_marker = by_gid(ax, "points-maml").get_paths()[0].vertices
    assert pt_marker.shape != maml_marker.shape or not np.allclose(pt_marker, maml_marker)

    text = by_gid(ax, "stats").get_text()
    pt, maml = plot.families["pt"], plot.families["maml"]
    assert f"PT (logreg), n = 4:  Pearson r = {pt.pearson.value:+.2f} [{pt.pearson.lo:+.2f}, {pt.pearson.hi:+.2f}]" in text
    assert f"Spearman ρ = {pt.spearman.value:+.2f}" in text
    assert "MAML, n = 4:" in text and f"Pearson r = {maml.pearson.value:+.2f}" in text
    assert "300 resamples" in text and "rough with n < 10" in text
    assert "%" in ax.get_ylabel() and "bootstrap" in ax.get_xlabel()
    # one legend entry per training set, outside the axes
    legend_texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend_texts == list(TRAIN_SETS)  # ordered by diversity
    close(plot)


def test_same_seed_same_intervals_and_a_family_too_small_for_a_fit(table):
    a = scatter_plot(table, "loss", n_boot=200, seed=5)
    b = scatter_plot(table, "loss", n_boot=200, seed=5)
    assert a.families["pt"].pearson == b.families["pt"].pearson
    close(a), close(b)
    two_maml = table[~table["checkpoint"].isin(["maml-glyphs-2s-d0", "maml-glyphs-all"])]
    plot = scatter_plot(two_maml, "loss", preferred_methods={"pt": "proto"}, n_boot=100, seed=5)
    assert by_gid(plot.ax, "fit-maml") is None and by_gid(plot.ax, "fit-pt") is not None
    assert len(by_gid(plot.ax, "points-maml").get_offsets()) == 2
    text = by_gid(plot.ax, "stats").get_text()
    assert "MAML, n = 2:  Pearson r: n too small" in text and "PT (proto), n = 4" in text
    # proto losses: 2 - 2 * (logreg accuracy - 0.03)
    np.testing.assert_allclose(by_gid(plot.ax, "points-pt").get_offsets()[:, 1],
                               2 - 2 * (expected_points("pt")[:, 1] / 100 - 0.03))
    close(plot)


def test_missing_metric_gives_an_empty_plot_and_files_are_written_reproducibly(tmp_path):
    rows = write_results(tmp_path, calibrated=False)
    table = build_summary(rows, {r["name"]: r["eval"] for r in rows}, {r["train_set"]: r["diversity"] for r in rows})
    plot = scatter_plot(table, "loss_calibrated", n_boot=50)
    assert by_gid(plot.ax, "points-pt") is None
    assert any(t.get_text() == "no results to plot" for t in plot.ax.texts)
    close(plot)

    plot = scatter_plot(table, "accuracy", n_boot=50)
    paths = {fmt: tmp_path / f"fig.{fmt}" for fmt in ("png", "pdf", "svg")}
    save_figure(plot.figure, paths, dpi=60)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in paths["svg"].read_bytes()[:500]
    vector = {f: paths[f] for f in ("pdf", "svg")}  # the formats that would carry dates and random ids
    first = {f: p.read_bytes() for f, p in vector.items()}
    save_figure(plot.figure, vector)
    assert {f: p.read_bytes() for f, p in vector.items()} == first
    close(plot)
