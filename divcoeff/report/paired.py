"""The paired comparison of the least and the most diverse level on the shared held-out episodes.

Every checkpoint is evaluated on the same episodes in the same order, so the levels can be
compared episode by episode: per episode, the metric averaged over all checkpoints of a level,
then high - low. Two rows per family x metric in `results/paired_comparison.tsv`:

- `paired t over episodes`: the mean difference, its 95% t-interval over episodes and the
  paired t-test p-value (`scipy.stats.ttest_rel` of the two per-episode level means). It
  treats the checkpoints of a level as fixed: it ignores seed-to-seed variance.
- `hierarchical bootstrap`: resamples, within each level, its training sets and, inside each
  drawn training set, its checkpoints (seeds), and the episodes (the same episode draw for both
  levels), so the interval also carries the variance between training-set draws and between
  seeds, as the design nests them (the checkpoints of one training set share its data: they are
  not independent draws of the level).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from divcoeff.report.design import LEVEL, TABLE_METRICS, design_points, hierarchical_counts, level_order, roles
from divcoeff.report.summary import ResultFileError
from divcoeff.seeding import derive_seed

PAIRED_COLUMNS = ["family", "metric", "level_low", "level_high", "n_checkpoints_low", "n_checkpoints_high",
                  "n_episodes", "mean_low", "mean_high", "diff", "diff_lo", "diff_hi", "p_value", "ci_method", "note"]
# the episode setting must be one for every checkpoint compared (docs/formats.md section 6)
EPISODE_KEYS = ("n_episodes", "ways", "shots", "queries", "eval_seed")


def t_method(level: float = LEVEL) -> str:
    return (f"paired t over episodes: per episode the metric averaged over each level's checkpoints, high - low; "
            f"{100 * level:g}% t-interval over episodes; p: paired t-test (scipy.stats.ttest_rel); "
            "ignores seed-to-seed variance")


def bootstrap_method(n_boot: int, level: float = LEVEL) -> str:
    return (f"hierarchical percentile bootstrap, {100 * level:g}%, {n_boot} resamples: within each level its "
            "training sets with replacement and, inside each drawn training set, its checkpoints (seeds) with "
            "replacement, and episodes with replacement (one draw shared by both levels); carries draw-to-draw, "
            "seed-to-seed and episode variance; p: twice the smaller share of resamples on either side of 0, "
            "as (k + 1) / (B + 1)")


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    n_low: int
    n_high: int
    n_episodes: int
    mean_low: float
    mean_high: float
    diff: float
    lo: float
    hi: float
    p_value: float
    ci_method: str
    note: str = ""


def _matrices(low, high) -> tuple[np.ndarray, np.ndarray]:
    low = np.atleast_2d(np.asarray(low, dtype=float))
    high = np.atleast_2d(np.asarray(high, dtype=float))
    if low.shape[1] != high.shape[1]:
        raise ValueError(f"the levels were evaluated on different numbers of episodes ({low.shape[1]} vs "
                         f"{high.shape[1]}): a paired comparison needs the same episodes")
    if low.shape[0] == 0 or high.shape[0] == 0:
        raise ValueError("each level needs at least one checkpoint")
    return low, high


def paired_t(low, high, level: float = LEVEL) -> PairedDifference:
    """`low`, `high`: (checkpoints, episodes) per-episode values of each level, episodes aligned."""
    low, high = _matrices(low, high)
    a, b = low.mean(axis=0), high.mean(axis=0)
    d = b - a
    n = int(d.size)
    mean = float(d.mean())
    note = ""
    if n < 2:
        lo = hi = p = math.nan
        note = "fewer than 2 episodes: no interval"
    else:
        half = float(sps.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
        lo, hi = mean - half, mean + half
        p = float(sps.ttest_rel(b, a).pvalue)
    return PairedDifference(low.shape[0], high.shape[0], n, float(a.mean()), float(b.mean()), mean, lo, hi, p,
                            t_method(level), note)


def _multiplicities(n_items: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_items) counts of a with-replacement resample of size n_items, per row."""
    idx = rng.integers(0, n_items, size=(n_boot, n_items)) + n_items * np.arange(n_boot)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n_items).reshape(n_boot, n_items).astype(float)


def _grouped(matrix: np.ndarray, groups: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `matrix` listed group after group, and the group sizes (no groups: one row each)."""
    if groups is None:
        return matrix, np.ones(matrix.shape[0], dtype=np.int64)
    labels = np.asarray([str(g) for g in groups])
    if labels.size != matrix.shape[0]:
        raise ValueError(f"{labels.size} group labels for {matrix.shape[0]} checkpoints")
    order = np.argsort(labels, kind="stable")
    _, sizes = np.unique(labels[order], return_counts=True)
    return matrix[order], sizes


def _level_weights(sizes: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, checkpoints) weights of one level's resampled mean: training sets with replacement,
    then each drawn set's checkpoints with replacement (design.hierarchical_counts)."""
    counts, _ = hierarchical_counts(sizes, n_boot, rng)
    return counts / counts.sum(axis=1, keepdims=True)


def paired_bootstrap(low, high, *, groups_low: Sequence | None = None, groups_high: Sequence | None = None,
                     n_boot: int, rng: np.random.Generator | None = None,
                     level: float = LEVEL) -> PairedDifference:
    """Percentile bootstrap of the mean per-episode difference, resampling each level's training
    sets (`groups_*`: the training set of each row; None: every checkpoint its own), their
    checkpoints and the (shared) episodes; vectorised over resamples in bounded chunks."""
    low, high = _matrices(low, high)
    n_low, n_high, n_ep = low.shape[0], high.shape[0], low.shape[1]
    point = paired_t(low, high, level)
    low, sizes_low = _grouped(low, groups_low)
    high, sizes_high = _grouped(high, groups_high)
    notes = ["a level with a single checkpoint: no seed variance to resample"] if min(n_low, n_high) == 1 else []
    if any(g is not None and len(set(map(str, g))) == 1 for g in (groups_low, groups_high)):
        notes.append("a level with a single training set: no draw-to-draw variance to resample")
    if n_boot <= 0:
        return dataclasses.replace(point, lo=math.nan, hi=math.nan, p_value=math.nan,
                                   ci_method=bootstrap_method(n_boot, level), note="no resamples")
    rng = rng if rng is not None else np.random.default_rng(0)
    diffs = []
    chunk = max(1, 1_000_000 // max(n_ep, 1))   # a few (chunk, episodes) arrays of 8 MB at a time
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w_low = _level_weights(sizes_low, b, rng)
        w_high = _level_weights(sizes_high, b, rng)
        per_episode = w_high @ high - w_low @ low                      # (b, episodes)
        w_ep = _multiplicities(n_ep, b, rng) / n_ep
        diffs.append((per_episode * w_ep).sum(axis=1))
    diffs = np.concatenate(diffs)
    alpha = (1.0 - level) / 2
    lo, hi = (float(q) for q in np.quantile(diffs, [alpha, 1.0 - alpha]))
    k = min(int((diffs <= 0).sum()), int((diffs >= 0).sum()))
    p = min(1.0, 2.0 * (k + 1) / (n_boot + 1))
    return PairedDifference(n_low, n_high, n_ep, point.mean_low, point.mean_high, point.diff, lo, hi, p,
                            bootstrap_method(n_boot, level), "; ".join(notes))


# --- from result files to the table -----------------------------------------------------------

def load_episode_arrays(paths: Mapping[str, str | Path]) -> dict[str, dict[str, np.ndarray]]:
    """checkpoint name -> {array name -> float64 values} from the evaluation's .npz files
    (docs/formats.md section 6); read without pickle."""
    out = {}
    for name, path in paths.items():
        with np.load(path, allow_pickle=False) as npz:
            out[name] = {k: np.asarray(npz[k], dtype=np.float64) for k in npz.files}
    return out


def npz_paths_by_checkpoint(paths: Sequence[str | Path]) -> dict[str, Path]:
    """The per-episode files named results/eval/<checkpoint>.npz, by checkpoint name."""
    out: dict[str, Path] = {}
    for p in map(Path, paths):
        if p.suffix != ".npz":
            raise ValueError(f"{p}: expected an evaluation's .npz file (results/eval/<checkpoint>.npz)")
        if p.stem in out:
            raise ValueError(f"two per-episode files for checkpoint {p.stem!r}: {out[p.stem]} and {p}")
        out[p.stem] = p
    return out


def episode_matrix(points: pd.DataFrame, arrays: Mapping[str, Mapping[str, np.ndarray]], metric: str) -> np.ndarray:
    """(checkpoints, episodes) per-episode values of `metric` for the rows of `points`, checked:
    the file exists, has the array, all values finite, the same length for all, and its mean is
    the mean in the summary (the .npz and the JSON come from one evaluation)."""
    rows = []
    for _, p in points.iterrows():
        name, key = p["checkpoint"], f"{p['method']}_{metric}"
        if name not in arrays:
            raise ResultFileError(f"no per-episode values for checkpoint {name!r} (expected results/eval/{name}.npz)")
        if key not in arrays[name]:
            raise ResultFileError(f"{name}.npz: no array {key!r} (has {', '.join(sorted(arrays[name]))})")
        values = np.asarray(arrays[name][key], dtype=float).ravel()
        if not np.isfinite(values).all():
            raise ResultFileError(f"{name}.npz: {key}: {int((~np.isfinite(values)).sum())} of {values.size} "
                                  "values are not finite")
        if not math.isclose(float(values.mean()), float(p["y"]), rel_tol=1e-6, abs_tol=1e-9):
            raise ResultFileError(f"{name}.npz: {key}: mean {values.mean()!r} but the summary (its evaluation JSON) "
                                  f"says {p['y']!r}: the two files are not from one evaluation")
        rows.append(values)
    lengths = {r.size for r in rows}
    if len(lengths) > 1:
        raise ResultFileError(f"the checkpoints were evaluated on different numbers of episodes {sorted(lengths)}: "
                              "a paired comparison needs the same episodes")
    return np.vstack(rows) if rows else np.empty((0, 0))


def _check_same_episodes(summary: pd.DataFrame, names: Sequence[str]) -> None:
    rows = summary[summary["checkpoint"].isin(list(names))].drop_duplicates("checkpoint")
    for key in EPISODE_KEYS:
        if key not in rows:
            continue
        values = rows[key].dropna().unique()
        if len(values) > 1:
            raise ResultFileError(f"summary: column {key!r} differs between the checkpoints compared "
                                  f"({', '.join(map(str, values))}): they were not evaluated on the same episodes")


def _empty_row(family: str, metric: str, low: str, high: str, ci_method: str, note: str) -> dict:
    return {"family": family, "metric": metric, "level_low": low, "level_high": high, "n_checkpoints_low": 0,
            "n_checkpoints_high": 0, "n_episodes": 0, "mean_low": math.nan, "mean_high": math.nan,
            "diff": math.nan, "diff_lo": math.nan, "diff_hi": math.nan, "p_value": math.nan,
            "ci_method": ci_method, "note": note}


def _row(family: str, metric: str, low: str, high: str, r: PairedDifference) -> dict:
    return {"family": family, "metric": metric, "level_low": low, "level_high": high,
            "n_checkpoints_low": r.n_low, "n_checkpoints_high": r.n_high, "n_episodes": r.n_episodes,
            "mean_low": r.mean_low, "mean_high": r.mean_high, "diff": r.diff, "diff_lo": r.lo, "diff_hi": r.hi,
            "p_value": r.p_value, "ci_method": r.ci_method, "note": r.note}


def paired_rows(family: str, metric: str, low: str, high: str, at_low: pd.DataFrame, at_high: pd.DataFrame,
                arrays: Mapping[str, Mapping[str, np.ndarray]], *, rng: np.random.Generator, n_boot: int,
                level: float = LEVEL) -> list[dict]:
    """The two rows of high - low on the shared episodes: the t-interval over episodes and the
    design bootstrap (training sets, their checkpoints, episodes)."""
    m_low = episode_matrix(at_low, arrays, metric)
    m_high = episode_matrix(at_high, arrays, metric)
    boot = paired_bootstrap(m_low, m_high, groups_low=list(at_low["train_set"]),
                            groups_high=list(at_high["train_set"]), n_boot=n_boot, rng=rng, level=level)
    return [_row(family, metric, low, high, paired_t(m_low, m_high, level)), _row(family, metric, low, high, boot)]


def paired_seed(seed: int, family: str, metric: str) -> int:
    return derive_seed(seed, "paired", family, metric)


def paired_comparison_table(summary: pd.DataFrame, arrays: Mapping[str, Mapping[str, np.ndarray]], *,
                            metrics: Sequence[str] = TABLE_METRICS, pt_method: str = "logreg",
                            n_boot: int, seed: int = 0, level: float = LEVEL) -> pd.DataFrame:
    """results/paired_comparison.tsv: per family x metric, the t row and the bootstrap row comparing
    the family's most and least diverse level (levels of `design.level_order` over the trained
    checkpoints of all families, so every family compares the same two levels). Controls and
    checkpoints without a level take no part. A family or metric that cannot be compared gets
    its two rows with NaN and a note."""
    trained = design_points(summary, "accuracy", pt_method)
    trained = trained[trained["level"] != ""]
    levels = level_order(trained)
    low, high = (levels[0], levels[-1]) if levels else ("", "")
    families = list(dict.fromkeys(summary.loc[roles(summary) == "trained", "family"]))
    rows = []
    for metric in metrics:
        points = design_points(summary, metric, pt_method)
        points = points[points["level"] != ""]
        for family in families:
            mine = points[points["family"] == family]
            at_low, at_high = mine[mine["level"] == low], mine[mine["level"] == high]
            methods = (t_method(level), bootstrap_method(n_boot, level))
            reason = ""
            if len(levels) < 2:
                reason = f"{len(levels)} diversity level{'s' if len(levels) != 1 else ''}: nothing to compare"
            elif at_low.empty or at_high.empty:
                reason = (f"no {metric} values at level {low if at_low.empty else high!r} for this family")
            if reason:
                rows += [_empty_row(family, metric, low, high, m, reason) for m in methods]
                continue
            _check_same_episodes(summary, list(at_low["checkpoint"]) + list(at_high["checkpoint"]))
            rows += paired_rows(family, metric, low, high, at_low, at_high, arrays, n_boot=n_boot, level=level,
                                rng=np.random.default_rng(paired_seed(seed, family, metric)))
    table = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    for c in ("n_checkpoints_low", "n_checkpoints_high", "n_episodes"):
        table[c] = table[c].astype("Int64")
    return table
