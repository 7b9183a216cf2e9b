"""The summary table: one row per checkpoint x evaluation method (docs/formats.md section 7).

It joins three sources: the checkpoint list of the summarize rule (name, family, arch,
train_set, level, replicate, role), the evaluation JSON of each checkpoint (section 6) and the
diversity JSON of its training set (section 5). Every value is checked on the way in, so a
malformed result file fails here with its path and field named instead of turning into a
silent gap in a plot.

Columns (`COLUMNS`, in this order):
- checkpoint, family (pt | maml), arch; role: `trained`, or `control` (an untrained network of
  the same architecture, evaluated like the others; it has no training set, so its level,
  replicate and every diversity column are empty);
- train_set; level: the training set's diversity level, a text label ("1", "2", "4", ...);
  replicate: the training seed's index inside the training set (empty for downloaded
  checkpoints); evaluation: which evaluation the row is (the held-out view's name, or
  `own-test`: the checkpoint on its own training set's test split, the published tables);
  method: the evaluation method of the row (logreg | proto | maml, or maml<k> per inner-step
  count); protocol: clean or published (evaluation.protocol);
- diversity, diversity_ci_pairs_t_lo/hi (published t-interval over task pairs, too narrow),
  diversity_ci_bootstrap_lo/hi (bootstrap over tasks), vendi, tasks; noise_floor: the mean
  distance between two embeddings of one task under two seeds, the coefficient's own noise
  (0 for the exact Fisher, empty where not measured);
- accuracy / loss / loss_calibrated _mean, _lo, _hi: mean over the held-out episodes and its
  95% t-interval over episodes;
- final_train_loss, final_train_acc, train_steps, stopped_by: the training run's mean loss and
  accuracy over the last 10% of the steps it took, its number of steps, and what stopped it
  (`criterion` or `cap`, training.convergence) (empty for downloaded checkpoints and controls);
- n_episodes, ways, shots, queries, probe, diversity_method, diversity_seed, eval_seed;
  heldout_overlap: empty, or what the held-out view shares with the checkpoint's training set
  ("12 images, 3 classes"; only with evaluation.allow_overlap: true).

Units: accuracies are fractions in [0, 1] (as in the evaluation JSON); losses are in nats.
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

ROLES = ("trained", "control")
DIVERSITY_COLUMNS = [
    "diversity", "diversity_ci_pairs_t_lo", "diversity_ci_pairs_t_hi",
    "diversity_ci_bootstrap_lo", "diversity_ci_bootstrap_hi", "vendi", "tasks", "noise_floor",
    "probe", "diversity_method", "diversity_seed",
]
COLUMNS = [
    "checkpoint", "family", "arch", "role", "train_set", "level", "replicate", "evaluation", "method", "protocol",
    "diversity", "diversity_ci_pairs_t_lo", "diversity_ci_pairs_t_hi",
    "diversity_ci_bootstrap_lo", "diversity_ci_bootstrap_hi", "vendi", "tasks", "noise_floor",
    *[f"{m}_{s}" for m in METRICS for s in ("mean", "lo", "hi")],
    "final_train_loss", "final_train_acc", "train_steps", "stopped_by",
    "n_episodes", "ways", "shots", "queries",
    "probe", "diversity_method", "diversity_seed", "eval_seed", "heldout_overlap",
]
INT_COLUMNS = ["replicate", "tasks", "train_steps", "n_episodes", "ways", "shots", "queries", "diversity_seed",
               "eval_seed"]
TEXT_COLUMNS = ["checkpoint", "family", "arch", "role", "train_set", "level", "evaluation", "method", "protocol", "probe",
                "diversity_method", "heldout_overlap", "stopped_by"]

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
        "noise_floor": _noise_floor(doc, where),
        "probe": probe_label(doc.get("probe")),
        "diversity_method": str(doc.get("method", "")),
        "diversity_seed": _optional_int(doc, "seed", where),
    }


def _noise_floor(doc: Mapping, where: str) -> float:
    value = _number(doc, "noise_floor", where, optional=True)  # absent or null: not measured
    if not (math.isnan(value) or (math.isfinite(value) and value >= 0.0)):
        raise ResultFileError(f"{where}: field 'noise_floor': {value} is not a distance >= 0")
    return value


def training_fields(doc: Mapping, where: str) -> dict:
    """final_train_loss, final_train_acc, train_steps, stopped_by from the evaluation JSON's `training` field
    (null, or absent in files from before it existed: all empty)."""
    training = doc.get("training")
    if training is None:
        return {"final_train_loss": math.nan, "final_train_acc": math.nan, "train_steps": None, "stopped_by": ""}
    if not isinstance(training, Mapping):
        raise ResultFileError(f"{where}: field 'training': expected {{final_loss, final_accuracy, steps}} or null, "
                              f"got {training!r}")
    twhere = f"{where}: training"
    loss = _number(training, "final_loss", twhere, optional=True)
    acc = _number(training, "final_accuracy", twhere, optional=True)
    if not (math.isnan(loss) or (math.isfinite(loss) and loss >= 0.0)):
        raise ResultFileError(f"{twhere}.final_loss: {loss} is not a loss >= 0")
    if not (math.isnan(acc) or 0.0 <= acc <= 1.0):
        raise ResultFileError(f"{twhere}.final_accuracy: {acc} is not a fraction in [0, 1]")
    steps = training.get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        raise ResultFileError(f"{twhere}.steps: expected a whole number >= 0 or null, got {steps!r}")
    stopped_by = training.get("stopped_by")  # absent in files from before the stopping rule: empty
    if stopped_by not in (None, "criterion", "cap"):
        raise ResultFileError(f"{twhere}.stopped_by: expected 'criterion', 'cap' or null, got {stopped_by!r}")
    return {"final_train_loss": loss, "final_train_acc": acc, "train_steps": steps, "stopped_by": stopped_by or ""}


def eval_seed(doc: Mapping) -> int | None:
    """The seed of the evaluation episodes: the JSON's own `seed`, else the one in the episode file's name."""
    if isinstance(doc.get("seed"), int):
        return int(doc["seed"])
    m = _EPISODE_SEED.search(str(doc.get("episodes", "")))
    return int(m.group(1)) if m else None


def overlap_text(value: Any, where: str) -> str:
    """The evaluation JSON's `overlap` ({images, classes} shared with the training set) as text."""
    if not value:
        return ""
    if not isinstance(value, Mapping) or not all(isinstance(value.get(k), int) for k in ("images", "classes")):
        raise ResultFileError(f"{where}: field 'overlap': expected {{images, classes}} counts, got {value!r}")
    return f"{value['images']} images, {value['classes']} classes"


def eval_rows(doc: Mapping, checkpoint: Mapping, where: str) -> list[dict]:
    """One dict per evaluation method of one evaluation JSON, checked against the sheet row."""
    name = checkpoint["name"]
    for key in ("checkpoint", "family", "train_set"):
        expected = name if key == "checkpoint" else checkpoint.get(key)
        if key == "train_set" and not expected:  # a control: no training set, in the sheet or the file
            if doc.get(key) not in (None, ""):
                raise ResultFileError(f"{where}: field 'train_set' is {doc.get(key)!r}, but checkpoint {name!r} is "
                                      "a control (no training set)")
            continue
        if doc.get(key) is not None and doc.get(key) != expected:
            raise ResultFileError(f"{where}: field {key!r} is {doc.get(key)!r}, but the checkpoint sheet says "
                                  f"{expected!r} for checkpoint {name!r}")
    methods = doc.get("methods")
    if not isinstance(methods, Mapping) or not methods:
        raise ResultFileError(f"{where}: field 'methods': expected a non-empty mapping of method -> metrics")
    common = {
        "protocol": str(doc.get("protocol") or ""),
        "n_episodes": int(_number(doc, "n_episodes", where)),
        **{k: _optional_int(doc, k, where) for k in ("ways", "shots", "queries")},
        "eval_seed": eval_seed(doc),
        "heldout_overlap": overlap_text(doc.get("overlap"), where),
        **training_fields(doc, where),
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


class DesignError(ValueError):
    """A checkpoint list that contradicts the study's design (a control with a training set, two
    checkpoints claiming one seed, one training set at two levels); the message names them."""


def design_fields(checkpoint: Mapping) -> dict:
    """role, train_set, level, replicate of one checkpoint of the summarize rule's list, checked.

    Missing keys take the values of a trained checkpoint outside the level design (role
    trained, no level, no replicate), so a list from before the design still joins.
    """
    name = checkpoint.get("name")
    where = f"checkpoint {name!r}"
    role = checkpoint.get("role") or "trained"
    if role not in ROLES:
        raise DesignError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    train_set = checkpoint.get("train_set") or ""
    level = checkpoint.get("level")
    if isinstance(level, bool) or not (level is None or isinstance(level, (str, int, float))):
        raise DesignError(f"{where}: level {level!r}: expected a text label such as '4', or None")
    if isinstance(level, float) and level.is_integer():
        level = int(level)
    level = "" if level is None else str(level).strip()
    replicate = checkpoint.get("replicate")
    if replicate is not None and (isinstance(replicate, bool) or not isinstance(replicate, int) or replicate < 0):
        raise DesignError(f"{where}: replicate {replicate!r}: expected a seed index >= 0, or None")
    if role == "control":
        extra = [k for k, v in (("train_set", train_set), ("level", level), ("diversity", checkpoint.get("diversity")))
                 if v not in (None, "")]
        if extra:
            raise DesignError(f"{where} is a control (an untrained network) but has {', '.join(extra)}: a control has "
                              "no training set, level or diversity")
    elif not train_set:
        raise DesignError(f"{where}: a trained checkpoint needs a train_set")
    return {"role": role, "train_set": train_set, "level": level, "replicate": replicate}


def check_design(checkpoints: Iterable[Mapping]) -> None:
    """Across checkpoints: each name once, each training set at one level, each (family, training
    set, replicate) once (two checkpoints with one seed would count one replicate twice)."""
    names, levels, seeds = {}, {}, {}
    for ck in checkpoints:
        name = ck["name"]
        if name in names:
            raise DesignError(f"checkpoint {name!r} is listed twice")
        names[name] = True
        d = design_fields(ck)
        if d["role"] != "trained":
            continue
        ts = d["train_set"]
        first = levels.setdefault(ts, (d["level"], name))
        if first[0] != d["level"]:
            raise DesignError(f"training set {ts!r} has level {first[0]!r} for checkpoint {first[1]!r} but "
                              f"{d['level']!r} for {name!r}: a training set belongs to one level")
        if d["replicate"] is not None:
            key = (ck["family"], ts, d["replicate"])
            if key in seeds:
                raise DesignError(f"checkpoints {seeds[key]!r} and {name!r} are both replicate {d['replicate']} of "
                                  f"{ck['family']} on training set {ts!r}")
            seeds[key] = name


def eval_key(checkpoint: Mapping) -> str:
    """The key of a checkpoint's evaluation document: its name, or <evaluation>:<name> when the list
    gives evaluations (a checkpoint is evaluated once per evaluation)."""
    evaluation = checkpoint.get("evaluation")
    return f"{evaluation}:{checkpoint['name']}" if evaluation else checkpoint["name"]


def summary_table(checkpoints: Iterable[Mapping], evals: Mapping[str, Mapping], diversities: Mapping[str, Mapping],
                  sources: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Join checkpoint rows, evaluation documents (by :func:`eval_key`) and diversity documents (by train set).

    `checkpoints`: mappings with name, family, arch, train_set, optionally evaluation, and the design
    keys role, level, replicate (see `design_fields`); the design is checked per evaluation.
    Controls need no diversity document: their diversity columns are empty. `sources`: optional
    file path per evaluation key / train set, used only in error messages. Rows keep the list's
    order, then the evaluation JSON's method order.
    """
    sources = sources or {}
    checkpoints = list(checkpoints)
    for evaluation in dict.fromkeys(ck.get("evaluation") or "" for ck in checkpoints):
        check_design([ck for ck in checkpoints if (ck.get("evaluation") or "") == evaluation])
    empty_diversity = {c: (None if c in INT_COLUMNS else "" if c in TEXT_COLUMNS else math.nan)
                       for c in DIVERSITY_COLUMNS}
    rows = []
    for ck in checkpoints:
        name, key = ck["name"], eval_key(ck)
        design = design_fields(ck)
        ts = design["train_set"]
        if key not in evals:
            which = f" ({ck['evaluation']})" if ck.get("evaluation") else ""
            raise ResultFileError(f"no evaluation result for checkpoint {name!r}{which} "
                                  f"(expected {ck.get('eval') or f'results/eval/{name}.json'})")
        if design["role"] == "control":
            div = empty_diversity
        else:
            if ts not in diversities:
                raise ResultFileError(f"no diversity result for train set {ts!r} of checkpoint {name!r} "
                                      f"(expected results/diversity/{ts}.json)")
            div = diversity_fields(diversities[ts], ts, sources.get(ts, f"diversity of {ts}"))
        doc = evals[key]
        evaluation = ck.get("evaluation") or str(doc.get("evaluation") or "")
        if ck.get("evaluation") and doc.get("evaluation") not in (None, ck["evaluation"]):
            raise ResultFileError(f"{sources.get(key, key)}: field 'evaluation' is {doc.get('evaluation')!r}, "
                                  f"expected {ck['evaluation']!r}")
        base = {"checkpoint": name, "family": ck["family"], "arch": ck["arch"], **design, "evaluation": evaluation}
        where = sources.get(key, f"evaluation of {name}")
        for row in eval_rows(doc, {**ck, "train_set": ts}, where):
            if design["role"] == "control" and row["train_steps"]:
                raise ResultFileError(f"{where}: training.steps is {row['train_steps']}, but checkpoint {name!r} is a "
                                      "control (an untrained network)")
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


def result_paths(checkpoints: Iterable[Mapping]) -> tuple[dict[str, str], dict[str, str]]:
    """(evaluation key -> eval JSON, train set -> diversity JSON) from the summarize rule's list;
    controls have no diversity file."""
    checkpoints = list(checkpoints)
    evals = {eval_key(c): c["eval"] for c in checkpoints}
    divs = {c["train_set"]: c["diversity"] for c in checkpoints
            if (c.get("role") or "trained") != "control" and c.get("train_set")}
    return evals, divs


def write_summary(table: pd.DataFrame, path: str | Path) -> None:
    """Tab-separated, empty cells for missing values, 8 significant digits (the published
    pairs-t CIs are ~1e-5 wide around ~0.1, so fewer digits would erase them)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="", float_format="%.8g")


def of_evaluation(table: pd.DataFrame, evaluation: str | None) -> pd.DataFrame:
    """The rows of one evaluation (the statistics and plots answer the held-out question; own-test rows
    reproduce the published tables). None: all rows, when there is only one evaluation."""
    if evaluation is None:
        found = list(dict.fromkeys(table["evaluation"]))
        if len(found) > 1:
            raise ValueError(f"the summary holds several evaluations ({', '.join(map(str, found))}); name one")
        return table
    rows = table[table["evaluation"] == evaluation]
    if rows.empty:
        raise ResultFileError(f"the summary has no rows of evaluation {evaluation!r} "
                              f"(it has {', '.join(map(str, dict.fromkeys(table['evaluation'])))})")
    return rows.reset_index(drop=True)


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
