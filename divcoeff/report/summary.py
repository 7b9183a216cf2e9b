"""The summary table: one row per checkpoint x evaluation method (docs/formats.md section 7).

It joins three sources: the checkpoint sheet (name, family, arch, train_set), the evaluation
JSON of each checkpoint (section 6) and the diversity JSON of its training set (section 5).
Every value is checked on the way in, so a malformed result file fails here with its path and
field named instead of turning into a silent gap in a plot.

Units: accuracy is a fraction in [0, 1] (as in the evaluation JSON); losses are in nats.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from divcoeff.io import atomic_path, read_json

METRICS = ("accuracy", "loss", "loss_calibrated")

COLUMNS = [
    "checkpoint", "family", "arch", "train_set", "method",
    "diversity", "diversity_ci_pairs_t_lo", "diversity_ci_pairs_t_hi",
    "diversity_ci_bootstrap_lo", "diversity_ci_bootstrap_hi", "vendi", "tasks",
    *[f"{m}_{s}" for m in METRICS for s in ("mean", "lo", "hi")],
    "n_episodes", "ways", "shots", "queries",
    "probe", "diversity_method", "diversity_seed", "eval_seed",
]
INT_COLUMNS = ["tasks", "n_episodes", "ways", "shots", "queries", "diversity_seed", "eval_seed"]
TEXT_COLUMNS = ["checkpoint", "family", "arch", "train_set", "method", "probe", "diversity_method"]

_EPISODE_SEED = re.compile(r"-seed(\d+)\.json$")


class ResultFileError(ValueError):
    """A diversity or evaluation JSON that does not match its contract; the message names file and field."""


def _number(doc: Mapping, key: str, where: str, *, optional: bool = False) -> float:
    if key not in doc or doc[key] is None:
        if optional:
            return math.nan
        raise ResultFileError(f"{where}: field {key!r} missing")
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultFileError(f"{where}: field {key!r}: expected a number, got {value!r}")
    return float(value)


def _optional_int(doc: Mapping, key: str, where: str) -> int | None:
    return None if doc.get(key) is None else int(_number(doc, key, where))


def _interval(doc: Mapping, key: str, where: str) -> tuple[float, float]:
    value = doc.get(key)
    if value is None:  # an interval the stage could not compute (e.g. bootstrap: 0)
        return math.nan, math.nan
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ResultFileError(f"{where}: field {key!r}: expected [lo, hi], got {value!r}")
    lo, hi = (_number({"v": v}, "v", f"{where}: field {key!r}", optional=True) for v in value)
    return lo, hi


def probe_label(probe: Any) -> str:
    """A short readable name of the probe network: 'torchvision/resnet18/random/32px'."""
    if not isinstance(probe, Mapping):
        return "" if probe is None else str(probe)
    parts = [str(probe[k]) for k in ("kind", "arch", "weights", "checkpoint") if probe.get(k) not in (None, "")]
    if probe.get("image_size") is not None:
        parts.append(f"{probe['image_size']}px")
    known = {"kind", "arch", "weights", "checkpoint", "image_size"}
    # Keys this module does not know are kept, so no probe setting is lost from the table.
    parts += [f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(probe.items()) if k not in known]
    return "/".join(parts)


def diversity_fields(doc: Mapping, train_set: str, where: str) -> dict:
    """The table columns taken from one diversity JSON."""
    if doc.get("train_set") != train_set:
        raise ResultFileError(f"{where}: field 'train_set' is {doc.get('train_set')!r}, expected {train_set!r}")
    pairs = _interval(doc, "ci_pairs_t", where)
    boot = _interval(doc, "ci_bootstrap", where)
    return {
        "diversity": _number(doc, "coefficient", where),
        "diversity_ci_pairs_t_lo": pairs[0], "diversity_ci_pairs_t_hi": pairs[1],
        "diversity_ci_bootstrap_lo": boot[0], "diversity_ci_bootstrap_hi": boot[1],
        "vendi": _number(doc, "vendi", where, optional=True),
        "tasks": int(_number(doc, "tasks", where)),
        "probe": probe_label(doc.get("probe")),
        "diversity_method": str(doc.get("method", "")),
        "diversity_seed": _optional_int(doc, "seed", where),
    }


def eval_seed(doc: Mapping) -> int | None:
    """The seed of the evaluation episodes: the JSON's own `seed`, else the one in the episode file's name."""
    if isinstance(doc.get("seed"), int):
        return int(doc["seed"])
    m = _EPISODE_SEED.search(str(doc.get("episodes", "")))
    return int(m.group(1)) if m else None


def eval_rows(doc: Mapping, checkpoint: Mapping, where: str) -> list[dict]:
    """One dict per evaluation method of one evaluation JSON, checked against the sheet row."""
    name = checkpoint["name"]
    for key in ("checkpoint", "family", "train_set"):
        expected = name if key == "checkpoint" else checkpoint[key]
        if doc.get(key) is not None and doc.get(key) != expected:
            raise ResultFileError(f"{where}: field {key!r} is {doc.get(key)!r}, but the checkpoint sheet says "
                                  f"{expected!r} for checkpoint {name!r}")
    methods = doc.get("methods")
    if not isinstance(methods, Mapping) or not methods:
        raise ResultFileError(f"{where}: field 'methods': expected a non-empty mapping of method -> metrics")
    common = {
        "n_episodes": int(_number(doc, "n_episodes", where)),
        **{k: _optional_int(doc, k, where) for k in ("ways", "shots", "queries")},
        "eval_seed": eval_seed(doc),
    }
    rows = []
    for method, metrics in methods.items():
        mwhere = f"{where}: methods.{method}"
        if not isinstance(metrics, Mapping) or "accuracy" not in metrics or "loss" not in metrics:
            raise ResultFileError(f"{mwhere}: expected 'accuracy' and 'loss' entries")
        row = {"method": method, **common}
        for metric in METRICS:
            entry = metrics.get(metric)
            if entry is None:  # loss_calibrated when calibrate_temperature is off
                row.update({f"{metric}_{s}": math.nan for s in ("mean", "lo", "hi")})
                continue
            if not isinstance(entry, Mapping):
                raise ResultFileError(f"{mwhere}.{metric}: expected {{mean, lo, hi}}, got {entry!r}")
            for s in ("mean", "lo", "hi"):
                row[f"{metric}_{s}"] = _number(entry, s, f"{mwhere}.{metric}")
        acc = row["accuracy_mean"]
        if not 0.0 <= acc <= 1.0:
            raise ResultFileError(f"{mwhere}.accuracy.mean: {acc} is not a fraction in [0, 1]")
        rows.append(row)
    return rows


def summary_table(checkpoints: Iterable[Mapping], evals: Mapping[str, Mapping], diversities: Mapping[str, Mapping],
                  sources: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Join sheet rows, evaluation documents (by checkpoint name) and diversity documents (by train set).

    `checkpoints`: mappings with name, family, arch, train_set (the sheet's columns).
    `sources`: optional file path per checkpoint name / train set, used only in error messages.
    Rows keep the sheet's order, then the evaluation JSON's method order.
    """
    sources = sources or {}
    rows = []
    for ck in checkpoints:
        name, ts = ck["name"], ck["train_set"]
        if name not in evals:
            raise ResultFileError(f"no evaluation result for checkpoint {name!r} (expected results/eval/{name}.json)")
        if ts not in diversities:
            raise ResultFileError(f"no diversity result for train set {ts!r} of checkpoint {name!r} "
                                  f"(expected results/diversity/{ts}.json)")
        div = diversity_fields(diversities[ts], ts, sources.get(ts, f"diversity of {ts}"))
        base = {"checkpoint": name, "family": ck["family"], "arch": ck["arch"], "train_set": ts}
        for row in eval_rows(evals[name], ck, sources.get(name, f"evaluation of {name}")):
            rows.append({**base, **div, **row})
    table = pd.DataFrame(rows, columns=COLUMNS)
    for c in INT_COLUMNS:
        table[c] = table[c].astype("Int64")
    return table


def build_summary(checkpoints: Iterable[Mapping], eval_paths: Mapping[str, str | Path],
                  diversity_paths: Mapping[str, str | Path]) -> pd.DataFrame:
    """Read the result files (checkpoint name -> eval JSON, train set -> diversity JSON) and join them."""
    evals = {k: read_json(p) for k, p in eval_paths.items()}
    divs = {k: read_json(p) for k, p in diversity_paths.items()}
    sources = {**{k: str(p) for k, p in eval_paths.items()}, **{k: str(p) for k, p in diversity_paths.items()}}
    return summary_table(checkpoints, evals, divs, sources)


def write_summary(table: pd.DataFrame, path: str | Path) -> None:
    """Tab-separated, empty cells for missing values, 8 significant digits (the published
    pairs-t CIs are ~1e-5 wide around ~0.1, so fewer digits would erase them)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="", float_format="%.8g")


def read_summary(path: str | Path) -> pd.DataFrame:
    """Read a summary TSV back with its column types (text stays text, integers stay integers)."""
    path = Path(path)
    table = pd.read_csv(path, sep="\t", dtype={c: "string" for c in TEXT_COLUMNS} | {c: "Int64" for c in INT_COLUMNS},
                        keep_default_na=False, na_values={c: [""] for c in COLUMNS if c not in TEXT_COLUMNS})
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ResultFileError(f"{path}: missing column(s) {missing}; expected the columns of divcoeff.report.summary")
    for c in TEXT_COLUMNS:
        table[c] = table[c].astype(object)
    return table
