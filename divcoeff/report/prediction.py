"""Predicted vs measured coefficients, and the design check (docs/formats.md section 5b).

- ``predicted_vs_measured.tsv``: per training set whose benchmark has a domain matrix, the
  coefficient its domains predict for a mixture (divcoeff.domains.mixture_coefficient) next to
  the one measured on its own tasks; a last row ``all`` with Pearson r over the sets, the mean
  error (measured - predicted) and the largest absolute error.
- ``design_check.tsv``: per diversity level the measured coefficients' mean, min, max and spread
  (max - min), and against every other level the gap between the two levels' means, with
  ``spread_ge_gap``: whether the coefficient varies inside the level at least as much as it
  differs between the levels (what a design needs to tell the coefficient from the count).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from divcoeff.domains import domain_names, predicted_for_components, read_matrix
from divcoeff.io import atomic_write_text, read_json

log = logging.getLogger(__name__)


def measured_coefficients(diversity: list[str]) -> dict[str, float]:
    """Training set -> its measured coefficient, from the diversity JSONs."""
    docs = [read_json(path) for path in diversity]
    return {d["train_set"]: float(d["coefficient"]) for d in docs}


def prediction_table(matrices: dict[str, str], views: list[str], measured: dict[str, float],
                     levels: dict[str, str]) -> pd.DataFrame:
    loaded = {b: read_matrix(p) for b, p in matrices.items()}
    rows = []
    for path in views:
        meta = read_json(path)
        name = meta["name"]
        benchmarks = meta["benchmarks"]
        spec = meta.get("spec", {})
        if len(benchmarks) != 1 or benchmarks[0] not in loaded or spec.get("mixture_over", "domain") != "domain":
            continue
        D, names = loaded[benchmarks[0]]
        predicted = predicted_for_components(D, names, meta["components"], f"{path}: components")
        sel = meta.get("selection") or {}
        rows.append({"train_set": name, "level": levels.get(name, ""), "benchmark": benchmarks[0],
                     "k": len(meta["components"]),
                     "domains": ",".join(domain_names(meta["components"])),
                     "select": sel.get("select", ""), "predicted": predicted,
                     "measured": measured.get(name, np.nan)})
    table = pd.DataFrame(rows, columns=["train_set", "level", "benchmark", "k", "domains", "select", "predicted",
                                        "measured"])
    table["error"] = table["measured"] - table["predicted"]
    return table


def with_summary_row(table: pd.DataFrame) -> pd.DataFrame:
    ok = table.dropna(subset=["predicted", "measured"])
    r = float(np.corrcoef(ok["predicted"], ok["measured"])[0, 1]) if len(ok) > 2 else np.nan
    summary = {"train_set": "all", "k": len(ok), "r": r,
               "error": float(ok["error"].mean()) if len(ok) else np.nan,
               "max_abs_error": float(ok["error"].abs().max()) if len(ok) else np.nan}
    out = table.assign(r=np.nan, max_abs_error=np.nan)
    return pd.concat([out, pd.DataFrame([summary])], ignore_index=True)[list(out.columns)]


def design_check(measured: dict[str, float], levels: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame({"train_set": list(measured), "coefficient": list(measured.values())})
    frame["level"] = frame["train_set"].map(levels).astype(str)
    stats = frame.groupby("level")["coefficient"].agg(["size", "mean", "min", "max"])
    stats["spread"] = stats["max"] - stats["min"]
    rows = []
    for level, s in stats.iterrows():
        base = {"level": level, "n_sets": int(s["size"]), "mean": s["mean"], "min": s["min"], "max": s["max"],
                "spread": s["spread"]}
        others = [o for o in stats.index if o != level]
        if not others:
            rows.append({**base, "other_level": "", "gap": np.nan, "spread_ge_gap": ""})
        for other in others:
            gap = abs(s["mean"] - stats.loc[other, "mean"])
            rows.append({**base, "other_level": other, "gap": gap, "spread_ge_gap": bool(s["spread"] >= gap)})
    return pd.DataFrame(rows)


def write_prediction_files(matrices: dict[str, str], views: list[str], diversity: list[str], levels: dict[str, str],
                           out_tsv: str | Path, out_design: str | Path) -> None:
    measured = measured_coefficients(diversity)
    table = with_summary_row(prediction_table(matrices, views, measured, levels))
    atomic_write_text(out_tsv, table.to_csv(sep="\t", index=False, float_format="%.6g", lineterminator="\n"))
    last = table.iloc[-1]
    log.info("predicted vs measured over %s sets: r %.3f, mean error %+.4f, largest |error| %.4f",
             last["k"], last["r"], last["error"], last["max_abs_error"])
    design = design_check(measured, levels)
    atomic_write_text(out_design, design.to_csv(sep="\t", index=False, float_format="%.6g", lineterminator="\n"))
    for _, row in design.iterrows():
        log.info("level %s: spread %.4f, gap to level %s %.4f: %s", row["level"], row["spread"], row["other_level"],
                 row["gap"], row["spread_ge_gap"])
