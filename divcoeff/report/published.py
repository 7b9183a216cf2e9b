"""Published numbers next to ours: results/published_vs_reproduced.tsv and its figure.

The published table (``report.published``, config/paper/published.tsv; REFERENCE section 7) has
one row per published value::

    what       diversity | accuracy | effect_size
    train_set  the train set of the config the value belongs to
    probe      diversity: the probe (resnet18-imagenet, resnet34-random, ...); empty: any
    split      diversity: the split the tasks came from (val in 2022); empty: any
    tasks      diversity: the published number of tasks (reported, not matched)
    method     accuracy: pt | maml5 | maml10 (our methods logreg, maml5, maml10); effect_size: maml5 |
               maml10, the MAML side of PT minus MAML
    checkpoint accuracy: a sheet checkpoint the value is for; effect_size: <pt checkpoint>+<maml
               checkpoint>; empty: every checkpoint (pair) of the train set
    value, ci95  the published value and its 95% half-width, in `unit` (% for accuracies; nan: none)
    unit, source, note

Effect sizes as the authors compute them (U: ``py_src/uutils/stats_uu/effect_size.py`` lines 80-107,
called by D's ``stats_analysis_with_emphasis_on_effect_size.py`` lines 102-115 on the per-episode
test accuracies of USL and MAML): d = (mean_pt - mean_maml) / sqrt((s_pt^2 + s_maml^2) / 2), s the
standard deviation with ddof=1, no small-sample correction. Ours come from the own-test summary rows
of a PT and a MAML checkpoint of the same train set (s recovered from the t-interval and n).

A published row that no result of ours matches is kept, with status ``not run`` and empty values of
ours; matched rows have status ``compared``. Ours, for each published row that matches: a diversity JSON with the same train set, probe and
split (diversity.probe and each of diversity.probes), or a summary row of the own-test
evaluation (each checkpoint on its own training set's test split, as the tables were made) with
the same train set and method. Columns (COLUMNS): what, train_set, probe_or_method, checkpoint,
ours, ours_lo, ours_hi (our 95% interval: bootstrap over tasks for a coefficient, t over episodes
for an accuracy), ours_ci_pairs_t (a coefficient's published-style interval, half width),
ours_tasks_or_episodes, published, published_ci95, published_tasks, difference (ours -
published), inside_published_ci (|difference| <= published_ci95; empty without a published
interval or a result), unit, source, note, status.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.stats as sps  # noqa: E402

from divcoeff.io import atomic_path  # noqa: E402
from divcoeff.report.summary import ResultFileError  # noqa: E402

PUBLISHED_COLUMNS = ["what", "train_set", "probe", "split", "tasks", "method", "checkpoint", "value", "ci95", "unit",
                     "source", "note"]
COLUMNS = ["what", "train_set", "probe_or_method", "checkpoint", "ours", "ours_lo", "ours_hi", "ours_ci_pairs_t",
           "ours_tasks_or_episodes", "published", "published_ci95", "published_tasks", "difference",
           "inside_published_ci", "unit", "source", "note", "status"]
WHAT = ("diversity", "accuracy", "effect_size")
EFFECT_METHODS = ("maml5", "maml10")
COMPARED, NOT_RUN = "compared", "not run"
# Published accuracy columns -> (our family, our method): PT is the published logistic regression.
METHODS = {"pt": ("pt", "logreg"), "maml5": ("maml", "maml5"), "maml10": ("maml", "maml10")}
OWN_TEST = "own-test"


def read_published(path: str | Path) -> pd.DataFrame:
    """The published table, checked: known columns and values, numbers where numbers belong."""
    path = Path(path)
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    missing = [c for c in PUBLISHED_COLUMNS if c not in table.columns]
    if missing:
        raise ResultFileError(f"{path}: missing column(s) {missing} (expected {PUBLISHED_COLUMNS})")
    for i, row in table.iterrows():
        where = f"{path}, row {i + 2}"
        if row["what"] not in WHAT:
            raise ResultFileError(f"{where}: field 'what': {row['what']!r} is not one of {', '.join(WHAT)}")
        if row["what"] == "accuracy" and row["method"] not in METHODS:
            raise ResultFileError(f"{where}: field 'method': {row['method']!r} is not one of {', '.join(METHODS)}")
        if row["what"] == "effect_size" and row["method"] not in EFFECT_METHODS:
            raise ResultFileError(f"{where}: field 'method': {row['method']!r} is not one of "
                                  f"{', '.join(EFFECT_METHODS)} (an effect size is PT minus that MAML)")
        if row["what"] == "effect_size" and row["checkpoint"] and row["checkpoint"].count("+") != 1:
            raise ResultFileError(f"{where}: field 'checkpoint': {row['checkpoint']!r} is not <pt>+<maml>")
        for c in ("value", "ci95"):
            try:
                float(row[c])
            except ValueError:
                raise ResultFileError(f"{where}: field {c!r}: {row[c]!r} is not a number") from None
        if not row["train_set"]:
            raise ResultFileError(f"{where}: field 'train_set' is empty")
    for c in ("value", "ci95"):
        table[c] = table[c].astype(float)
    return table


def _scale(unit: str) -> float:
    """Our accuracies are fractions; published ones are in %."""
    return 100.0 if unit.strip() == "%" else 1.0


def diversity_records(docs: Mapping[str, Mapping], splits: Mapping[str, str]) -> list[dict]:
    """Our coefficients from diversity JSONs (path -> document): train set, probe label, split, value, CIs."""
    out = []
    for path, doc in docs.items():
        probe = (doc.get("settings") or {}).get("probe") or {}
        label = f"checkpoint-{probe.get('checkpoint')}" if probe.get("kind") == "checkpoint" else \
            f"{probe.get('arch')}-{probe.get('weights')}"
        ts = doc.get("train_set")
        if ts is None or "coefficient" not in doc:
            raise ResultFileError(f"{path}: not a diversity result (fields 'train_set' and 'coefficient')")
        lo, hi = doc.get("ci_bootstrap") or (math.nan, math.nan)
        plo, phi = doc.get("ci_pairs_t") or (math.nan, math.nan)
        out.append({"train_set": ts, "probe": label, "split": splits.get(ts, ""), "value": float(doc["coefficient"]),
                    "lo": lo, "hi": hi, "pairs_t": (phi - plo) / 2, "n": doc.get("tasks")})
    return out


def episode_std(half_width: float, n: int) -> float:
    """The per-episode standard deviation (ddof=1) behind a 95% t-interval of half width `half_width`."""
    return half_width * math.sqrt(n) / float(sps.t.ppf(0.975, n - 1))


def effect_size(pt: Mapping, maml: Mapping) -> float:
    """PT minus MAML in pooled standard deviations, as the authors' effect_size.py computes it, from two
    own-test summary rows (mean accuracy, its 95% t-interval, the number of episodes)."""
    s_pt = episode_std((pt["accuracy_hi"] - pt["accuracy_lo"]) / 2, int(pt["n_episodes"]))
    s_maml = episode_std((maml["accuracy_hi"] - maml["accuracy_lo"]) / 2, int(maml["n_episodes"]))
    return (pt["accuracy_mean"] - maml["accuracy_mean"]) / math.sqrt((s_pt ** 2 + s_maml ** 2) / 2)


def _effect_rows(pub: Mapping, own: pd.DataFrame) -> list[dict]:
    ts = own[own["train_set"] == pub["train_set"]]
    pts = ts[(ts["family"] == "pt") & (ts["method"] == "logreg")]
    mamls = ts[(ts["family"] == "maml") & (ts["method"] == pub["method"])]
    if pub["checkpoint"]:
        want_pt, want_maml = pub["checkpoint"].split("+")
        pts, mamls = pts[pts["checkpoint"] == want_pt], mamls[mamls["checkpoint"] == want_maml]
    out = []
    for _, p in pts.iterrows():
        for _, m in mamls.iterrows():
            out.append({"probe_or_method": f"pt-{pub['method']}", "checkpoint": f"{p['checkpoint']}+{m['checkpoint']}",
                        "ours": effect_size(p, m), "ours_lo": math.nan, "ours_hi": math.nan,
                        "ours_ci_pairs_t": math.nan,
                        "ours_tasks_or_episodes": min(int(p["n_episodes"]), int(m["n_episodes"]))})
    return out


def compare(published: pd.DataFrame, summary: pd.DataFrame, diversity_docs: Mapping[str, Mapping],
            splits: Mapping[str, str]) -> pd.DataFrame:
    """One row per (published row, matching result of ours), status ``compared``; a published row
    without a match is one row with status ``not run``."""
    ours_div = diversity_records(diversity_docs, splits)
    own = summary[summary["evaluation"] == OWN_TEST] if "evaluation" in summary.columns else summary.iloc[:0]
    rows = []
    for _, pub in published.iterrows():
        matched = len(rows)
        scale = _scale(pub["unit"])
        base = {"what": pub["what"], "train_set": pub["train_set"], "published": pub["value"],
                "published_ci95": pub["ci95"], "published_tasks": pub["tasks"], "unit": pub["unit"],
                "source": pub["source"], "note": pub["note"]}
        if pub["what"] == "diversity":
            for d in ours_div:
                if d["train_set"] != pub["train_set"] or (pub["probe"] and d["probe"] != pub["probe"]) or \
                        (pub["split"] and d["split"] != pub["split"]):
                    continue
                rows.append({**base, "probe_or_method": d["probe"], "checkpoint": "", "ours": d["value"] * scale,
                             "ours_lo": d["lo"] * scale, "ours_hi": d["hi"] * scale,
                             "ours_ci_pairs_t": d["pairs_t"] * scale, "ours_tasks_or_episodes": d["n"]})
        elif pub["what"] == "effect_size":
            rows.extend({**base, **r} for r in _effect_rows(pub, own))
        else:
            family, method = METHODS[pub["method"]]
            match = own[(own["train_set"] == pub["train_set"]) & (own["family"] == family) & (own["method"] == method)]
            if pub["checkpoint"]:
                match = match[match["checkpoint"] == pub["checkpoint"]]
            for _, r in match.iterrows():
                rows.append({**base, "probe_or_method": pub["method"], "checkpoint": r["checkpoint"],
                             "ours": r["accuracy_mean"] * scale, "ours_lo": r["accuracy_lo"] * scale,
                             "ours_hi": r["accuracy_hi"] * scale, "ours_ci_pairs_t": math.nan,
                             "ours_tasks_or_episodes": r["n_episodes"]})
        for r in rows[matched:]:
            r["status"] = COMPARED
        if len(rows) == matched:
            wanted = pub["probe"] if pub["what"] == "diversity" else \
                f"pt-{pub['method']}" if pub["what"] == "effect_size" else pub["method"]
            rows.append({**base, "probe_or_method": wanted, "checkpoint": pub["checkpoint"], "ours": math.nan,
                         "ours_lo": math.nan, "ours_hi": math.nan, "ours_ci_pairs_t": math.nan,
                         "ours_tasks_or_episodes": math.nan, "status": NOT_RUN})
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["difference"] = table["ours"] - table["published"]
    inside = (table["difference"].abs() <= table["published_ci95"]).astype(object)
    unknown = table["difference"].isna() | table["published_ci95"].isna()
    table["inside_published_ci"] = inside.where(~unknown, None)
    return table


def write_comparison(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="", float_format="%.6g")


def _outside(inside) -> bool:
    """False/True/None (no interval to compare with) -> outside the published interval?"""
    return inside is not None and not pd.isna(inside) and not bool(inside)


def comparison_figure(table: pd.DataFrame, *, dpi: int):
    """Ours against published, one panel per quantity, each point with both intervals; y = x dashed."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    for ax, what in zip(axes, WHAT):
        rows = table[(table["what"] == what) & (table["status"] == COMPARED)]
        unit = rows["unit"].iloc[0] if len(rows) else ""
        ax.set_title(f"{what} ({unit})" if unit else what)
        ax.set_xlabel("published (95% CI as published)")
        ax.set_ylabel("reproduced here (95% CI)")
        if rows.empty:
            ax.text(0.5, 0.5, "no published value matched", ha="center", va="center", transform=ax.transAxes)
            continue
        for i, (_, r) in enumerate(rows.iterrows()):
            yerr = [[max(r["ours"] - r["ours_lo"], 0)], [max(r["ours_hi"] - r["ours"], 0)]] \
                if pd.notna(r["ours_lo"]) else None
            xerr = [[r["published_ci95"]], [r["published_ci95"]]] if pd.notna(r["published_ci95"]) else None
            ax.errorbar([r["published"]], [r["ours"]], xerr=xerr,
                        yerr=yerr, fmt="x" if _outside(r["inside_published_ci"]) else "o", color=f"C{i % 10}",
                        capsize=3,
                        label=f"{r['train_set']} {r['probe_or_method']}" + (f" ({r['checkpoint']})"
                                                                           if r["checkpoint"] else ""))
        lo = min(v for v in (rows["published"].min(), rows["ours_lo"].min(skipna=True), rows["ours"].min())
                 if pd.notna(v))
        hi = max(v for v in (rows["published"].max(), rows["ours_hi"].max(skipna=True), rows["ours"].max())
                 if pd.notna(v))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ls="--", color="grey", lw=1, gid=f"identity-{what}")
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Published values vs reproduced (o: inside the published CI or none published, x: outside)")
    fig.set_dpi(dpi)
    return fig
