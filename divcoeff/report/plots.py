"""Scatter plots of training-data diversity against few-shot performance, drawn as the experiment is designed.

One figure per metric (accuracy, loss, calibrated loss). Per family (PT, MAML: different
markers), over the trained checkpoints of the summary table:

- per training set, the mean over its seeds (the marker, coloured by diversity level), with the
  range over seeds as the vertical bar and the diversity CI (bootstrap over tasks by default)
  as the horizontal bar;
- every checkpoint as a faint small point;
- the OLS fit over checkpoints with the pointwise 95% band of the hierarchical bootstrap
  (training sets, then seeds inside each; `divcoeff.report.design`);
- the untrained network (control) as a horizontal line with its spread (range over control
  networks, or its 95% CI over episodes when there is one);
- the Task2Vec noise floor as a shaded band on the x-axis (a coefficient below it cannot be
  told from the measurement's own noise); nothing when it is 0 or not measured;
- under the axes, the figures of results/correlation.tsv: r and the slope with their CIs,
  the numbers of checkpoints and training sets, and the method in words.

Legends sit outside the axes, so they never cover a point. Artists carry gids:
"checkpoints-<family>", "sets-<family>", "fit-<family>", "band-<family>", "control-<family>",
"control-band-<family>", "capped-<family>" (checkpoints stopped by the step cap: `stopped_by == "cap"`
in the summary), "noise-floor", "stats", "legend-families", "legend-colours"; the
error bars carry the label "_errorbars-<family>".
"""
from __future__ import annotations

import dataclasses
import math
import textwrap
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
from divcoeff.report.design import (HierarchicalFit, check_against, design_points, family_fit,  # noqa: E402
                                    level_order, method_text)

FORMATS = ("png", "pdf", "svg")


@dataclasses.dataclass(frozen=True)
class FamilyStyle:
    label: str
    marker: str
    color: str       # of the fit line, its band and the control line; the markers are coloured by level
    linestyle: str


FAMILY_STYLES = {
    "pt": FamilyStyle("PT", "o", "black", "-"),
    "maml": FamilyStyle("MAML", "^", "tab:red", "--"),
}
_FALLBACK_MARKERS = "sDvP*X"


@dataclasses.dataclass(frozen=True)
class MetricAxis:
    label: str
    title: str
    scale: float     # table value -> plotted value (accuracy fraction -> %)
    unit: str        # of the slope in correlation.tsv (table units per unit of coefficient)


METRIC_AXES = {
    "accuracy": MetricAxis("few-shot accuracy (%)", "Few-shot accuracy", 100.0, "accuracy (fraction) per unit"),
    "loss": MetricAxis("query cross-entropy loss (nats)", "Few-shot query loss", 1.0, "nats per unit"),
    "loss_calibrated": MetricAxis("query cross-entropy, temperature-calibrated (nats)",
                                  "Few-shot query loss after temperature calibration", 1.0, "nats per unit"),
}

# The horizontal error bar: which of the diversity stage's two intervals.
X_INTERVALS = {
    "bootstrap": ("diversity_ci_bootstrap", "95% bootstrap CI over tasks"),
    "pairs_t": ("diversity_ci_pairs_t", "95% t-interval over task pairs (published; treats pairs as independent)"),
}
CONTROL_LABEL = "untrained network (control)"


@dataclasses.dataclass(frozen=True)
class FamilyResult:
    family: str
    method: str
    fit: HierarchicalFit
    sets: pd.DataFrame          # one row per training set: train_set, level, x, x_lo, x_hi, y, y_min, y_max, n
    control: pd.DataFrame       # the family's control rows (design_points), possibly empty


@dataclasses.dataclass
class ScatterPlot:
    figure: plt.Figure
    ax: plt.Axes
    metric: str
    families: dict[str, FamilyResult]
    noise_floor: float          # the upper edge of the shaded band (nan: none drawn)


def family_style(family: str, index: int) -> FamilyStyle:
    if family in FAMILY_STYLES:
        return FAMILY_STYLES[family]
    return FamilyStyle(family.upper(), _FALLBACK_MARKERS[index % len(_FALLBACK_MARKERS)], f"C{index + 2}", ":")


def family_label(family: str, method: str, index: int = 0) -> str:
    style = family_style(family, index)
    return style.label if method == family else f"{style.label} ({method})"


def _palette(n: int) -> list:
    # Reds are left out: red is the MAML fit's colour.
    tab10 = [plt.get_cmap("tab10")(i) for i in range(10) if i != 3]
    tab20 = [plt.get_cmap("tab20")(i) for i in range(20) if i not in (6, 7)]
    if n <= len(tab10):
        return tab10[:n]
    if n <= len(tab20):
        return tab20[:n]
    cmap = plt.get_cmap("viridis")  # beyond that no qualitative palette stays distinguishable
    return [cmap(i / (n - 1)) for i in range(n)]


def colour_key(points: pd.DataFrame) -> tuple[str, list[str]]:
    """What the marker colour shows: ("level", levels from least to most diverse) when the trained
    checkpoints have levels, else ("train_set", training sets by rising coefficient)."""
    trained = points[points["role"] == "trained"]
    if (trained["level"] != "").any():
        return "level", level_order(trained)
    order = trained.groupby("train_set")["x"].first().sort_values(kind="stable").index.tolist()
    return "train_set", order


def set_summaries(rows: pd.DataFrame, x_col: str) -> pd.DataFrame:
    """Per training set of one family's trained rows: its coefficient and CI, the mean, min, max and
    number of its checkpoints' values; in order of first appearance."""
    g = rows.groupby("train_set", sort=False)
    return pd.DataFrame({
        "level": g["level"].first(), "x": g["x"].first(),
        "x_lo": g[f"{x_col}_lo"].first(), "x_hi": g[f"{x_col}_hi"].first(),
        "y": g["y"].mean(), "y_min": g["y"].min(), "y_max": g["y"].max(), "n": g["y"].size(),
    }).reset_index()


def _bars(center, lo, hi) -> np.ndarray:
    """(2, n) error-bar lengths; a missing interval draws no bar, a point outside its interval a zero one."""
    center, lo, hi = (np.asarray(v, dtype=float) for v in (center, lo, hi))
    return np.clip(np.vstack([np.nan_to_num(center - lo, nan=0.0), np.nan_to_num(hi - center, nan=0.0)]), 0.0, None)


def _setting_line(summary: pd.DataFrame) -> str:
    def one(col):
        vals = summary[col].dropna().unique() if col in summary else []
        return int(vals[0]) if len(vals) == 1 else None

    ways, shots, episodes = one("ways"), one("shots"), one("n_episodes")
    parts = []
    if ways and shots:
        parts.append(f"{ways}-way {shots}-shot")
    if episodes:
        parts.append(f"the same {episodes} held-out episodes for every checkpoint")
    return ", ".join(parts)


def _fmt(v: float, digits: int = 3) -> str:
    """Signed, `digits` significant digits, trailing zeros kept (+1.40, +0.0250)."""
    return f"{v:+#.{digits}g}".rstrip(".") if math.isfinite(v) else "n/a"


def _fmt_r(v: float) -> str:
    return f"{v:+.2f}" if math.isfinite(v) else "n/a"


def family_stats_line(label: str, fit: HierarchicalFit, unit: str) -> str:
    """'PT (logreg): r = +0.81 [+0.42, +0.97], slope = +1.5 [+0.6, +2.3] accuracy (fraction) per unit; 18
    checkpoints, 6 training sets'; or the reason when undefined."""
    counts = f"{fit.n_checkpoints} checkpoints, {fit.n_train_sets} training sets"
    if not fit.ok:
        return f"{label}: no fit ({fit.reason}); {counts}"
    r = (f"r = {_fmt_r(fit.r)} [{_fmt_r(fit.r_lo)}, {_fmt_r(fit.r_hi)}]" if math.isfinite(fit.r)
         else f"r undefined ({fit.reason})")
    slope = f"slope = {_fmt(fit.slope)} [{_fmt(fit.slope_lo)}, {_fmt(fit.slope_hi)}] {unit} of coefficient"
    return f"{label}: {r}, {slope}; {counts}"


def stats_text(families: Mapping[str, FamilyResult], metric: str, n_boot: int) -> str:
    """The lines printed under the axes: one per family, then the method in words."""
    unit = METRIC_AXES[metric].unit
    lines = [family_stats_line(family_label(f, res.method, i), res.fit, unit)
             for i, (f, res) in enumerate(families.items()) if res.fit.n_checkpoints]
    if not lines:
        return "no correlation: no trained checkpoints with this metric"
    lines += textwrap.wrap("[ ]: " + method_text(n_boot) + "; controls excluded", width=120)
    return "\n".join(lines)


def _noise_floor(points: pd.DataFrame) -> tuple[float, float, bool]:
    """(mean, max, varies) of the training sets' noise floors; nan where none was measured."""
    per_set = points[points["role"] == "trained"].groupby("train_set")["noise_floor"].first()
    floors = per_set.to_numpy(float)
    floors = floors[np.isfinite(floors)]
    if floors.size == 0:
        return math.nan, math.nan, False
    return float(floors.mean()), float(floors.max()), bool(np.ptp(floors) > 0)


def capped_checkpoints(summary: pd.DataFrame) -> set[str]:
    """Checkpoints whose training stopped at the step cap (`stopped_by == "cap"`); none when the
    summary has no `stopped_by` column (runs without a convergence criterion)."""
    if "stopped_by" not in summary.columns:
        return set()
    return set(summary.loc[summary["stopped_by"].fillna("").astype(str) == "cap", "checkpoint"])


def scatter_plot(summary: pd.DataFrame, metric: str, *, pt_method: str = "logreg", x_ci: str = "bootstrap",
                 n_boot: int, seed: int = 0, correlations: pd.DataFrame | None = None) -> ScatterPlot:
    """Draw diversity vs `metric` (accuracy | loss | loss_calibrated) from a summary table.

    `seed`, `n_boot`, `pt_method`: as for `design.correlation_table`, so the statistics printed
    are those of results/correlation.tsv. `correlations`: that table; where it has a row for a
    family and this metric, the recomputed figures must equal it (else ValueError: a stale file).
    """
    if metric not in METRIC_AXES:
        raise ValueError(f"unknown metric {metric!r} (one of {', '.join(METRIC_AXES)})")
    if x_ci not in X_INTERVALS:
        raise ValueError(f"unknown diversity interval {x_ci!r} (one of {', '.join(X_INTERVALS)})")
    axis = METRIC_AXES[metric]
    x_col, x_ci_text = X_INTERVALS[x_ci]
    points = design_points(summary, metric, pt_method, keep_roles=("trained", "control"))
    key, order = colour_key(points)
    colors = dict(zip(order, _palette(len(order))))
    if key == "level" and (points.loc[points["role"] == "trained", "level"] == "").any():
        colors[""] = (0.7, 0.7, 0.7, 1.0)  # trained checkpoints outside the level design (e.g. downloaded ones)

    fig, ax = plt.subplots(figsize=(8.0, 5.2))
    families: dict[str, FamilyResult] = {}
    handles = []
    for i, family in enumerate(dict.fromkeys(points["family"])):
        style = family_style(family, i)
        mine = points[points["family"] == family]
        trained, control = mine[mine["role"] == "trained"], mine[mine["role"] == "control"]
        method = mine["method"].iloc[0]
        label = family_label(family, method, i)
        fit = family_fit(points, family, metric, n_boot=n_boot, seed=seed)
        if correlations is not None:
            match = correlations[(correlations["family"] == family) & (correlations["metric"] == metric)]
            if len(match):
                check_against(fit, match.iloc[0], f"correlation.tsv, {family} x {metric}")
        sets = set_summaries(trained, x_col)
        families[family] = FamilyResult(family, method, fit, sets, control)

        if len(trained):
            ax.scatter(trained["x"], trained["y"] * axis.scale, s=12, marker=style.marker, alpha=0.35,
                       c=[colors[v] for v in trained[key]], linewidths=0, zorder=2.5, gid=f"checkpoints-{family}")
            ax.errorbar(sets["x"], sets["y"] * axis.scale,
                        xerr=_bars(sets["x"], sets["x_lo"], sets["x_hi"]),
                        yerr=_bars(sets["y"], sets["y_min"], sets["y_max"]) * axis.scale,
                        fmt="none", ecolor="0.45", elinewidth=0.9, capsize=2.5, zorder=2, label=f"_errorbars-{family}")
            set_keys = sets[key] if key == "level" else sets["train_set"]
            ax.scatter(sets["x"], sets["y"] * axis.scale, c=[colors[v] for v in set_keys], marker=style.marker, s=60,
                       edgecolors="black", linewidths=0.7, zorder=3, gid=f"sets-{family}")
            handles.append(Line2D([], [], marker=style.marker, markerfacecolor="white", markeredgecolor="black",
                                  linestyle="none", markersize=7, label=f"{label}: training set, mean over seeds"))
            capped = trained[trained["checkpoint"].isin(capped_checkpoints(summary))]
            if len(capped):
                ax.scatter(capped["x"], capped["y"] * axis.scale, s=30, marker="x", c="tab:red", linewidths=1.0,
                           zorder=3.5, gid=f"capped-{family}")
                handles.append(Line2D([], [], marker="x", color="tab:red", linestyle="none", markersize=6,
                                      label=f"{label}: stopped by the step cap, not the criterion ({len(capped)})"))
        if fit.ok:
            grid = np.linspace(trained["x"].min(), trained["x"].max(), 100)
            lo, hi = fit.band(grid)
            if np.isfinite(lo).all():
                ax.fill_between(grid, lo * axis.scale, hi * axis.scale, color=style.color, alpha=0.12, linewidth=0,
                                zorder=1, gid=f"band-{family}")
            ax.plot(grid, fit.predict(grid) * axis.scale, color=style.color, linestyle=style.linestyle,
                    linewidth=1.4, zorder=1.5, gid=f"fit-{family}")
            handles.append(Line2D([], [], color=style.color, linestyle=style.linestyle,
                                  label=f"{label}: OLS fit over checkpoints"))
        if len(control):
            c_mean = float(control["y"].mean())
            if len(control) > 1:
                c_lo, c_hi = float(control["y"].min()), float(control["y"].max())
                spread = f"range over {len(control)} untrained networks"
            else:
                c_lo, c_hi = float(control["y_lo"].iloc[0]), float(control["y_hi"].iloc[0])
                spread = "95% CI over episodes"
            if math.isfinite(c_lo) and math.isfinite(c_hi):
                ax.axhspan(c_lo * axis.scale, c_hi * axis.scale, color=style.color, alpha=0.08, linewidth=0,
                           zorder=0.5, gid=f"control-band-{family}")
            ax.axhline(c_mean * axis.scale, color=style.color, linestyle=(0, (1, 2)), linewidth=1.3, zorder=1.2,
                       gid=f"control-{family}")
            name = CONTROL_LABEL if len(set(points.loc[points["role"] == "control", "family"])) == 1 \
                else f"{CONTROL_LABEL}, {style.label}"
            handles.append(Line2D([], [], color=style.color, linestyle=(0, (1, 2)), linewidth=1.3,
                                  label=f"{name}; shade: {spread}"))

    floor_mean, floor_max, varies = _noise_floor(points)
    drawn_floor = math.nan
    if math.isfinite(floor_max) and floor_max > 0:
        drawn_floor = floor_max
        ax.axvspan(0.0, floor_max, facecolor="none", edgecolor="0.7", hatch="///", linewidth=0, zorder=0.2,
                   gid="noise-floor")
        value = f"up to {floor_max:.3g} (mean {floor_mean:.3g})" if varies else f"{floor_max:.3g}"
        handles.append(Patch(facecolor="none", edgecolor="0.7", hatch="///", linewidth=0, label=f"Task2Vec noise floor {value}: one task, two seeds;\n"
                                                                "coefficients here are indistinguishable from noise"))
    if any(res.fit.ok for res in families.values()):
        handles.append(Patch(facecolor="0.5", alpha=0.25, label="95% band: hierarchical bootstrap"))
    if points.empty:
        ax.text(0.5, 0.5, "no results to plot", transform=ax.transAxes, ha="center", va="center", color="0.4")

    ax.set_xlabel(f"Task2Vec diversity coefficient of the training set\n(horizontal bars: {x_ci_text})")
    ax.set_ylabel(f"{axis.label}\n(marker: training set, mean over its seeds; vertical bar:\nrange over its seeds; "
                  "small faint points: single checkpoints)", fontsize=9)
    setting = _setting_line(summary)
    title = f"{axis.title} vs training-data diversity" + (f"\n{setting}" if setting else "")
    if "heldout_overlap" in summary and summary["heldout_overlap"].fillna("").astype(str).str.len().gt(0).any():
        # evaluation.allow_overlap: say it where the answer is read, not only in the table
        title += "\nWARNING: the held-out episodes share data with training sets (evaluation.allow_overlap)"
    ax.set_title(title, fontsize=11)
    ax.grid(True, color="0.92", linewidth=0.8, zorder=0)
    ax.set_axisbelow(True)

    # Legends outside the axes never cover a point.
    if handles:
        fam_legend = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7.5,
                               frameon=False)
        fam_legend.set_gid("legend-families")
        fam_legend.set_clip_on(False)  # add_artist clips to the axes: the saved bounding box would miss it
        ax.add_artist(fam_legend)
    if colors:
        title = "diversity level" if key == "level" else "training set (by diversity)"
        colour_handles = [Line2D([], [], marker="s", linestyle="none", markerfacecolor=c, markeredgecolor="black",
                                 markersize=7, label=str(t) or "no level") for t, c in colors.items()]
        leg = ax.legend(handles=colour_handles, title=title, loc="lower left", bbox_to_anchor=(1.02, 0.0), fontsize=8,
                        title_fontsize=8, frameon=False, ncols=1 if len(colors) <= 8 else 2)
        leg.set_gid("legend-colours")

    ax.annotate(stats_text(families, metric, n_boot), xy=(0, 0), xycoords="axes fraction", xytext=(0, -62),
                textcoords="offset points", ha="left", va="top", fontsize=7.5, gid="stats")
    return ScatterPlot(fig, ax, metric, families, drawn_floor)


def save_figure(fig: plt.Figure, paths: Mapping[str, str | Path], dpi: int) -> None:
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
