"""Validation of the config and the checkpoint sheet, with errors that name file, row and field.

The schemas live in config/schemas/. Snakemake's own `validate` fills in their defaults; this
module checks first so that a user reads "config/config.yaml: evaluation.ways: 'five' is not of
type 'integer'" instead of a bare jsonschema trace, and adds the checks a schema cannot make
(train sets that exist, unique names, a URI for each source).
"""
from __future__ import annotations

import copy
import csv
import math
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import pandas as pd
import yaml

SHEET_COLUMNS = ["name", "family", "arch", "source", "uri", "checksum", "train_set", "allow_pickle", "replicates",
                 "size"]
MADE_HERE = ("train", "init")  # sources the workflow makes itself: one checkpoint per replicate
_BOOL = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False, "": False}


RESERVED_VIEW = "probe-pool"  # the view a pool-pretrained probe learns from (rules/common.smk)


class ConfigError(ValueError):
    """A config or sheet that does not fit its schema; the message names file, row and field."""


def load_schema(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _is_integer(checker, value) -> bool:
    # JSON Schema counts 5.0 as an integer; a count written 5.0 is a typo here (it would name files
    # "5.0way-..."), so only real integers pass.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(checker, value) -> bool:
    # NaN and infinity are never a valid learning rate, probability or size.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_STRICT_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
    {"integer": _is_integer, "number": _is_number})


def _validator(schema: dict, fill_defaults: bool):
    base = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_STRICT_TYPES)
    if not fill_defaults:
        return base(schema)
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, sub):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(key, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, sub)

    return jsonschema.validators.extend(base, {"properties": set_defaults})(schema)


def _field(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    # oneOf/anyOf errors are vague at the top; the deepest sub-error says what is wrong.
    best = jsonschema.exceptions.best_match([error])
    value = best.instance
    if best.validator == "type" and isinstance(value, float) and not math.isfinite(value):
        return f"{_field(best)}: {value} is not a finite number"
    if best.validator == "type" and isinstance(value, float) and "integer" in str(best.validator_value):
        return f"{_field(best)}: {value} is not an integer (write {int(value)} if that is what you mean)"
    return f"{_field(best)}: {best.message}"


def check_against_schema(data: dict, schema: dict, where: str, fill_defaults: bool = True) -> dict:
    """Validate `data` (filled with defaults in place) and raise ConfigError naming `where` and the field."""
    errors = sorted(_validator(schema, fill_defaults).iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"{where}: {_describe(e)}" for e in errors[:5]]
        more = f"\n  ... and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines) + more)
    return data


def validate_config(config: dict, schema_path: str | Path, source: str = "config") -> dict:
    """Check the whole config against its schema and the cross-references between sections."""
    if not isinstance(config, dict) or not config:
        raise ConfigError(f"{source}: empty or not a mapping")
    check_against_schema(config, load_schema(schema_path), source)
    benchmarks = config["benchmarks"]
    for name, spec in config["train_sets"].items():
        for b in spec["benchmarks"]:
            if b not in benchmarks:
                raise ConfigError(f"{source}: train_sets.{name}.benchmarks: unknown benchmark {b!r} "
                                  f"(known: {', '.join(benchmarks)})")
    for b in config["evaluation"]["benchmarks"]:
        if b not in benchmarks:
            raise ConfigError(f"{source}: evaluation.benchmarks: unknown benchmark {b!r} (known: {', '.join(benchmarks)})")
    if config["evaluation"]["name"] in config["train_sets"]:
        raise ConfigError(f"{source}: evaluation.name {config['evaluation']['name']!r} is also a train set name; "
                          "the held-out view needs a name of its own")
    _unique_ignoring_case(source, "benchmarks", list(benchmarks))
    _unique_ignoring_case(source, "train_sets (and evaluation.name: they share results/views/)",
                          [*config["train_sets"], config["evaluation"]["name"]])
    for name in (*config["train_sets"], config["evaluation"]["name"]):
        if name == RESERVED_VIEW:
            raise ConfigError(f"{source}: the view name {RESERVED_VIEW!r} is reserved for the probe's pool "
                              "(diversity.probe.weights: pool); rename the train set or the evaluation")
    views = {"evaluation": config["evaluation"], **{f"train_sets.{k}": v for k, v in config["train_sets"].items()}}
    for where, spec in views.items():
        for b in spec.get("normalisation") or {}:
            if b not in spec["benchmarks"]:
                raise ConfigError(f"{source}: {where}.normalisation: {b!r} is not one of its benchmarks "
                                  f"({', '.join(spec['benchmarks'])})")
    own = config.get("own_test") or {}
    for name in own.get("episodes_per_train_set") or {}:
        if name not in config["train_sets"]:
            raise ConfigError(f"{source}: own_test.episodes_per_train_set: {name!r} is not a train set "
                              f"(known: {', '.join(config['train_sets'])})")
    if own.get("enabled"):
        taken = {*config["train_sets"], config["evaluation"]["name"]}
        for name in config["train_sets"]:
            view = f"own-test.{name}"  # settings.OwnTestSettings.view_name
            if view in taken:
                raise ConfigError(f"{source}: the view name {view!r} (own_test of train set {name!r}) is also the "
                                  "name of a train set or of the evaluation; rename that one")
    return config


def _parse_int(value: str, where: str) -> int | str:
    """An integer cell; anything else is left as text for the schema to name."""
    try:
        return int(value.strip())
    except ValueError:
        return value


def _parse_bool(value: str, where: str) -> bool:
    key = value.strip().lower()
    if key not in _BOOL:
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return _BOOL[key]


def _unique_ignoring_case(source: str, what: str, names: list[str]) -> None:
    """Names become file names: two that differ only in case collide on macOS and Windows."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise ConfigError(f"{source}: {what}: {other!r} and {name!r} differ only in case; their files would "
                              "collide on a case-insensitive file system (macOS, Windows): rename one")


def sheet_path(value: str | Path, workflow_dir: str | Path | None) -> Path:
    """The config's checkpoint_sheet: as given when it exists (relative to the working directory, or
    an absolute path), else under the workflow folder (None: a remote module has none on disk)."""
    p = Path(value)
    return p if p.is_absolute() or p.exists() or workflow_dir is None else Path(workflow_dir, p)


def local_file_roots(config: dict, project_dir: str | Path | None = None) -> list[Path]:
    """Where `file` rows may copy from: the project directory (the working directory) and the
    config's fetch.local_roots (relative ones to the project directory), links resolved."""
    project = Path(project_dir if project_dir is not None else Path.cwd()).resolve()
    roots = ((config.get("fetch") or {}).get("local_roots") or [])
    return [project] + [(project / Path(r).expanduser()).resolve() for r in roots]


def _outside_roots(uri: str, roots: list[Path]) -> Path | None:
    """The real path of a `file` row's uri when it lies outside every root, else None."""
    real = (roots[0] / Path(uri).expanduser()).resolve()  # relative paths: to the project directory
    return None if any(real == r or r in real.parents for r in roots) else real


def load_sheet(path: str | Path, schema_path: str | Path, config: dict,
               project_dir: str | Path | None = None) -> pd.DataFrame:
    """Read and validate the checkpoint sheet; one error message per bad row names line, row name and field.

    A `file` row must point inside the project directory (default: the working directory) or one of
    the config's fetch.local_roots: a sheet from elsewhere cannot copy /etc/passwd into resources/."""
    path = Path(path)
    roots = local_file_roots(config, project_dir)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint sheet not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader((line for line in f if line.strip() and not line.startswith("#")), delimiter="\t")
        header = reader.fieldnames or []
        unknown = [c for c in header if c not in SHEET_COLUMNS]
        if unknown:
            raise ConfigError(f"{path}: unknown column(s) {unknown}; expected columns {SHEET_COLUMNS}")
        raw_rows = list(reader)
    schema = load_schema(schema_path)
    rows, seen = [], {}
    for i, raw in enumerate(raw_rows, start=2):  # line 1 is the header
        if None in raw:
            raise ConfigError(f"{path}, line {i}: more fields than columns (a stray tab?)")
        name = (raw.get("name") or "").strip()
        where = f"{path}, line {i} (row {name or '?'!r})"
        row: dict[str, Any] = {k: (v or "").strip() for k, v in raw.items() if v is not None}
        if "allow_pickle" in row:
            row["allow_pickle"] = _parse_bool(row["allow_pickle"], f"{where}: field 'allow_pickle'")
        for column in ("replicates", "size"):
            if row.get(column, "") != "":
                row[column] = _parse_int(row[column], f"{where}: field {column!r}")
        row = {k: v for k, v in row.items() if not (v == "" and k not in ("uri", "checksum"))}
        try:
            check_against_schema(row, schema, where)
        except ConfigError as e:
            raise ConfigError(str(e).replace("invalid configuration", "invalid checkpoint sheet row")) from None
        key = row["name"].lower()  # names become file names: case-insensitive file systems collide
        if key in seen:
            first, line = seen[key]
            same = "" if first == row["name"] else f" (as {first!r}: names may not differ only in case)"
            raise ConfigError(f"{where}: field 'name': {row['name']!r} already used on line {line}{same}")
        seen[key] = (row["name"], i)
        if row["train_set"] not in config["train_sets"]:
            raise ConfigError(f"{where}: field 'train_set': {row['train_set']!r} is not a train set of the config "
                              f"(known: {', '.join(config['train_sets'])})")
        if row["source"] in MADE_HERE and row["uri"]:
            raise ConfigError(f"{where}: field 'uri': must be empty for source {row['source']!r} "
                              "(the workflow makes the file)")
        if row["source"] not in MADE_HERE and not row["uri"]:
            raise ConfigError(f"{where}: field 'uri': required for source {row['source']!r}")
        if row["source"] == "url" and not row["checksum"]:
            raise ConfigError(f"{where}: field 'checksum': required for source 'url' (md5:... or sha256:...)")
        if row["source"] == "file" and (real := _outside_roots(row["uri"], roots)) is not None:
            raise ConfigError(f"{where}: field 'uri': {row['uri']!r} is {real}, outside the project directory "
                              f"({roots[0]}){' and fetch.local_roots' if len(roots) > 1 else ''}; a file row copies "
                              "only from there. If you mean it, add its folder to fetch.local_roots in the config")
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no checkpoint rows")
    return pd.DataFrame(rows, columns=SHEET_COLUMNS).set_index("name", drop=False)


CHECKPOINT_COLUMNS = ["name", "row", "family", "arch", "source", "uri", "checksum", "train_set", "allow_pickle",
                      "size", "replicate", "role"]


def expand_sheet(sheet: pd.DataFrame, replicates: Mapping[str, int], where: str = "checkpoint sheet") -> pd.DataFrame:
    """One row per checkpoint the workflow evaluates: a train/init sheet row stands for its
    replicates, ``<name>-r0``, ``<name>-r1``, ... (its own `replicates` cell, else
    ``replicates[family]``, ``replicates['control']`` for init rows); a fetched row is one
    checkpoint. Columns: CHECKPOINT_COLUMNS (`row` is the sheet row's name, `replicate` the seed
    index or None, `role` 'control' for init rows, else 'trained'). Raising a row's replicates
    adds checkpoints and leaves the others' names, hence seeds and files, as they are."""
    out, seen = [], {}
    for name, row in sheet.iterrows():
        base = {k: row[k] for k in ("family", "arch", "source", "uri", "checksum", "train_set", "allow_pickle")}
        base["allow_pickle"] = bool(base["allow_pickle"]) if not pd.isna(base["allow_pickle"]) else False
        size = row.get("size")
        base["size"] = None if size is None or pd.isna(size) else int(size)  # a fetched row's exact size
        role = "control" if row["source"] == "init" else "trained"
        if row["source"] in MADE_HERE:
            n = row["replicates"]
            n = int(n) if n is not None and not pd.isna(n) else int(replicates["control" if role == "control"
                                                                            else row["family"]])
            names = [(f"{name}-r{k}", k) for k in range(n)]
        else:
            names = [(name, None)]
        for ck, k in names:
            if ck.lower() in seen:
                raise ConfigError(f"{where}: checkpoint {ck!r} (row {name!r}) has the name of {seen[ck.lower()]!r}; "
                                  "rename one of the rows")
            seen[ck.lower()] = ck
            out.append({"name": ck, "row": name, **base, "replicate": k, "role": role})
    frame = pd.DataFrame(out, columns=CHECKPOINT_COLUMNS)
    frame["size"] = pd.Series([r["size"] for r in out], index=frame.index, dtype=object)  # ints and None, not floats
    return frame.set_index("name", drop=False)
