"""Scatter plots of training-data diversity against few-shot performance, from the summary table.

One figure per metric (accuracy, loss, calibrated loss): x is the diversity coefficient of a
checkpoint's training set with a horizontal 95% CI, y the checkpoint's metric with the
evaluation's 95% CI over episodes. PT and MAML get different markers and a least-squares
fit each with its 95% band; every training set gets one colour, listed in a legend outside
the axes (so a dozen points never carry overlapping text labels). Pearson r and Spearman rho
with percentile-bootstrap 95% CIs over checkpoints, and n, are printed under the axes.

Artists carry gids ("points-<family>", "fit-<family>", "band-<family>", "stats") and the
error bars the label "_errorbars-<family>", so tests and callers can find them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")  # files only, never a display (cluster nodes have none)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from divcoeff.io import atomic_path  # noqa: E402
from divcoeff.report.stats import Correlation, LinearFit, format_correlation, linear_fit, pearson, spearman  # noqa: E402
from divcoeff.seeding import numpy_rng  # noqa: E402

FORMATS = ("png", "pdf", "svg")

# Which evaluation method stands for a family when it has several: logreg is the published
# protocol for PT checkpoints (proto is reported in the table only).
PRIMARY_METHODS = {"pt": "logreg", "maml": "maml"}


@dataclasses.dataclass(frozen=True)
class FamilyStyle:
    label: str
    marker: str
    color: str       # of the fit line and band; the points are coloured by training set
    linestyle: str


FAMILY_STYLES = {
    "pt": FamilyStyle("PT", "o", "black", "-"),
    "maml": FamilyStyle("MAML", "^", "tab:red", "--"),
}
_FALLBACK_MARKERS = "sDvP*X"
FEW_POINTS = 10  # below this, say that the bootstrap intervals of a correlation are rough


@dataclasses.dataclass(frozen=True)
class MetricAxis:
    label: str
    title: str
    scale: float     # table value -> plotted value (accuracy fraction -> %)


METRIC_AXES = {
    "accuracy": MetricAxis("few-shot accuracy (%)", "Few-shot accuracy", 100.0),
    "loss": MetricAxis("query cross-entropy loss (nats)", "Few-shot query loss", 1.0),
    "loss_calibrated": MetricAxis("query cross-entropy, temperature-calibrated (nats)",
                                  "Few-shot query loss after temperature calibration", 1.0),
}

# The horizontal error bar: which of the diversity stage's two intervals.
X_INTERVALS = {
    "bootstrap": ("diversity_ci_bootstrap", "95% bootstrap CI over tasks"),
    "pairs_t": ("diversity_ci_pairs_t", "95% t-interval over task pairs (published; treats pairs as independent)"),
}


@dataclasses.dataclass(frozen=True)
class FamilyResult:
    family: str
    method: str
    n: int
    pearson: Correlation
    spearman: Correlation
    fit: LinearFit | None


@dataclasses.dataclass
class ScatterPlot:
    figure: plt.Figure
    ax: plt.Axes
    metric: str
    families: dict[str, FamilyResult]


def family_style(family: str, index: int) -> FamilyStyle:
    if family in FAMILY_STYLES:
        return FAMILY_STYLES[family]
    return FamilyStyle(family.upper(), _FALLBACK_MARKERS[index % len(_FALLBACK_MARKERS)], f"C{index + 2}", ":")


def select_points(summary: pd.DataFrame, metric: str,
                  preferred: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per checkpoint: each family's preferred method (else the first it has), rows with a
    value for `metric` only. Returns the rows and the method used per family."""
    preferred = {**PRIMARY_METHODS, **(preferred or {})}
    if f"{metric}_mean" not in summary.columns:
        raise KeyError(f"summary table has no column {metric}_mean (metrics: {', '.join(METRIC_AXES)})")
    chosen, parts = {}, []
    for family, rows in summary.groupby("family", sort=False):
        methods = list(dict.fromkeys(rows["method"]))
        method = preferred.get(family) if preferred.get(family) in methods else methods[0]
        chosen[family] = method
        parts.append(rows[rows["method"] == method])
    points = pd.concat(parts) if parts else summary.iloc[:0]
    points = points[np.isfinite(points[f"{metric}_mean"].astype(float))]
    return points, {f: m for f, m in chosen.items() if f in set(points["family"])}


def train_set_colors(points: pd.DataFrame) -> dict[str, tuple]:
    """One colour per training set, in order of rising diversity (qualitative while they last)."""
    order = (points.groupby("train_set")["diversity"].min().sort_values(kind="stable").index.tolist())
    n = len(order)
    # Reds are left out: red is the MAML fit's colour.
    tab10 = [plt.get_cmap("tab10")(i) for i in range(10) if i != 3]
    tab20 = [plt.get_cmap("tab20")(i) for i in range(20) if i not in (6, 7)]
    if n <= len(tab10):
        colors = tab10
    elif n <= len(tab20):
        colors = tab20
    else:  # beyond that no qualitative palette stays distinguishable; an ordered colour map still reads
        cmap = plt.get_cmap("viridis")
        colors = [cmap(i / (n - 1)) for i in range(n)]
    return {ts: colors[i] for i, ts in enumerate(order)}


def _half_widths(center: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(2, n) error-bar lengths; a missing interval draws no bar, a point outside its interval a zero one."""
    below = np.nan_to_num(center - lo, nan=0.0)
    above = np.nan_to_num(hi - center, nan=0.0)
    return np.clip(np.vstack([below, above]), 0.0, None)


def _family_stats(x: np.ndarray, y: np.ndarray, family: str, method: str, metric: str,
                  n_boot: int, seed: int) -> FamilyResult:
    # One seeded stream per (metric, family, coefficient): the same config gives the same CIs,
    # and adding a family does not shift another family's resamples.
    r = pearson(x, y, n_boot=n_boot, rng=numpy_rng(seed, metric, family, "pearson"))
    rho = spearman(x, y, n_boot=n_boot, rng=numpy_rng(seed, metric, family, "spearman"))
    return FamilyResult(family, method, int(x.size), r, rho, linear_fit(x, y))


def _setting_line(points: pd.DataFrame) -> str:
    def one(col):
        vals = points[col].dropna().unique() if col in points else []
        return int(vals[0]) if len(vals) == 1 else None

    ways, shots, episodes = one("ways"), one("shots"), one("n_episodes")
    parts = []
    if ways and shots:
        parts.append(f"{ways}-way {shots}-shot")
    if episodes:
        parts.append(f"{episodes} held-out episodes per checkpoint")
    return ", ".join(parts)


def scatter_plot(summary: pd.DataFrame, metric: str, *, preferred_methods: Mapping[str, str] | None = None,
                 x_ci: str = "bootstrap", n_boot: int = 2000, seed: int = 0) -> ScatterPlot:
    """Draw diversity vs `metric` (accuracy | loss | loss_calibrated) from a summary table."""
    if metric not in METRIC_AXES:
        raise ValueError(f"unknown metric {metric!r} (one of {', '.join(METRIC_AXES)})")
    if x_ci not in X_INTERVALS:
        raise ValueError(f"unknown diversity interval {x_ci!r} (one of {', '.join(X_INTERVALS)})")
    axis = METRIC_AXES[metric]
    x_col, x_ci_text = X_INTERVALS[x_ci]
    points, methods = select_points(summary, metric, preferred_methods)
    colors = train_set_colors(points)

    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    families: dict[str, FamilyResult] = {}
    family_handles = []
    for i, (family, rows) in enumerate(points.groupby("family", sort=False)):
        style = family_style(family, i)
        method = methods[family]
        x = rows["diversity"].to_numpy(float)
        y = rows[f"{metric}_mean"].to_numpy(float) * axis.scale
        xerr = _half_widths(x, rows[f"{x_col}_lo"].to_numpy(float), rows[f"{x_col}_hi"].to_numpy(float))
        yerr = _half_widths(y, rows[f"{metric}_lo"].to_numpy(float) * axis.scale,
                            rows[f"{metric}_hi"].to_numpy(float) * axis.scale)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor="0.6", elinewidth=0.9, capsize=2.5,
                    zorder=2, label=f"_errorbars-{family}")
        ax.scatter(x, y, c=[colors[t] for t in rows["train_set"]], marker=style.marker, s=60,
                   edgecolors="black", linewidths=0.7, zorder=3, gid=f"points-{family}")
        result = _family_stats(x, y, family, method, metric, n_boot, seed)
        families[family] = result
        if result.fit is not None:
            grid = np.linspace(x.min(), x.max(), 100)
            lo, hi = result.fit.band(grid)
            ax.fill_between(grid, lo, hi, color=style.color, alpha=0.12, linewidth=0, zorder=1,
                            gid=f"band-{family}")
            ax.plot(grid, result.fit.predict(grid), color=style.color, linestyle=style.linestyle, linewidth=1.4,
                    zorder=1.5, gid=f"fit-{family}")
        name = style.label if method == family else f"{style.label} ({method})"
        family_handles.append(Line2D([], [], marker=style.marker, markerfacecolor="white", markeredgecolor="black",
                                     color=style.color, linestyle=style.linestyle, label=name))

    if points.empty:
        ax.text(0.5, 0.5, "no results to plot", transform=ax.transAxes, ha="center", va="center", color="0.4")

    ax.set_xlabel(f"Task2Vec diversity coefficient of the training set\n(error bars: {x_ci_text})")
    ax.set_ylabel(f"{axis.label}\n(error bars: 95% CI over episodes)")
    setting = _setting_line(points)
    ax.set_title(f"{axis.title} vs training-data diversity" + (f"\n{setting}" if setting else ""), fontsize=11)
    ax.grid(True, color="0.92", linewidth=0.8, zorder=0)
    ax.set_axisbelow(True)

    # Legends outside the axes never cover a point.
    if family_handles:
        family_handles.append(Patch(facecolor="0.5", alpha=0.25, label="95% band of a fit"))
        fam_legend = ax.legend(handles=family_handles, title="family and its least-squares fit",
                               loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title_fontsize=8,
                               frameon=False)
        # add_artist clips to the axes, which would leave the legend out of the saved bounding box.
        fam_legend.set_clip_on(False)
        ax.add_artist(fam_legend)
        set_handles = [Line2D([], [], marker="s", linestyle="none", markerfacecolor=c, markeredgecolor="black",
                              markersize=7, label=t) for t, c in colors.items()]
        ax.legend(handles=set_handles, title="training set (by diversity)", loc="upper left",
                  bbox_to_anchor=(1.02, 0.62), fontsize=8, title_fontsize=8, frameon=False)

    ax.annotate(stats_text(families, n_boot), xy=(0, 0), xycoords="axes fraction", xytext=(0, -58),
                textcoords="offset points", ha="left", va="top", fontsize=8.5, gid="stats")
    return ScatterPlot(fig, ax, metric, families)


def stats_text(families: Mapping[str, FamilyResult], n_boot: int) -> str:
    """The correlation lines printed under the axes, one per family."""
    lines = []
    for i, (family, res) in enumerate(families.items()):
        style = family_style(family, i)
        name = style.label if res.method == family else f"{style.label} ({res.method})"
        lines.append(f"{name}, n = {res.n}:  {format_correlation(res.pearson, 'Pearson r')},  "
                     f"{format_correlation(res.spearman, 'Spearman ρ')}")
    if not lines:
        return "no correlation: no points"
    note = f"[ ]: 95% percentile-bootstrap CI over checkpoints ({n_boot} resamples)"
    if min(res.n for res in families.values()) < FEW_POINTS:
        # A handful of points has few distinct resamples: the percentiles can collapse (e.g. [+1, +1]).
        note += f"; rough with n < {FEW_POINTS}"
    lines.append(note)
    return "\n".join(lines)


def save_figure(fig: plt.Figure, paths: Mapping[str, str | Path], dpi: int = 200) -> None:
    """Write the figure in each format (png/pdf/svg -> path) atomically and reproducibly.

    The formats' timestamps are left out and SVG ids are salted with a constant, so the same
    table gives byte-identical files and Snakemake's checksums stay quiet.
    """
    unknown = set(paths) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown figure format(s) {sorted(unknown)} (one of {', '.join(FORMATS)})")
    metadata = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None},
                "svg": {"Date": None, "Creator": None}}
    with matplotlib.rc_context({"svg.hashsalt": "divcoeff"}):
        for fmt, path in paths.items():
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata[fmt])


def close(plot: ScatterPlot) -> None:
    plt.close(plot.figure)
