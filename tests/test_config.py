"""The config and the checkpoint sheet: schema validation with errors that name file, row and field."""
import subprocess
import sys

import pytest
import yaml

from divcoeff.config import ConfigError, load_sheet, validate_config

SCHEMA = "config/schemas/config.schema.yaml"
SHEET_SCHEMA = "config/schemas/checkpoints.schema.yaml"


@pytest.fixture
def config(repo):
    with open(repo / "config/config.yaml") as f:
        return yaml.safe_load(f)


def test_embedded_config_is_valid_and_gets_defaults(repo, config):
    del config["report"]
    out = validate_config(config, repo / SCHEMA, "config/config.yaml")
    assert out["report"]["bootstrap"] == 2000           # default filled in from the schema
    assert out["evaluation"]["maml"]["first_order"] is True


@pytest.mark.parametrize("mutate, field, expected", [
    (lambda c: c["evaluation"].__setitem__("ways", "five"), "evaluation.ways", "is not of type 'integer'"),
    (lambda c: c.__setitem__("epochs", 3), "(top level)", "'epochs' was unexpected"),
    (lambda c: c["diversity"].__setitem__("method", "fast"), "diversity.method", "is not one of"),
    (lambda c: c["train_sets"]["glyphs-4s-d0"].__setitem__("domains", -1), "train_sets.glyphs-4s-d0.domains", ""),
])
def test_malformed_config_names_file_and_field(repo, config, mutate, field, expected):
    mutate(config)
    with pytest.raises(ConfigError) as e:
        validate_config(config, repo / SCHEMA, "my.yaml")
    assert f"my.yaml: {field}" in str(e.value)
    assert expected in str(e.value)


def test_train_set_with_unknown_benchmark(repo, config):
    config["train_sets"]["glyphs-4s-d0"]["benchmarks"] = ["omniglot"]
    with pytest.raises(ConfigError, match=r"train_sets.glyphs-4s-d0.benchmarks: unknown benchmark 'omniglot'"):
        validate_config(config, repo / SCHEMA, "c.yaml")


def write_sheet(tmp_path, rows):
    head = "name\tfamily\tarch\tsource\turi\tchecksum\ttrain_set\tallow_pickle"
    p = tmp_path / "sheet.tsv"
    p.write_text("\n".join([head] + rows) + "\n")
    return p


def test_embedded_sheet_loads(repo, config):
    validate_config(config, repo / SCHEMA)
    sheet = load_sheet(repo / "config/checkpoints.tsv", repo / SHEET_SCHEMA, config)
    # a PT row per training set, a MAML row per 4-script set (MAML answers the within-level
    # question there), and the untrained control
    trained = sheet[sheet["source"] == "train"]
    assert sorted(trained.loc[trained["family"] == "pt", "train_set"]) == sorted(config["train_sets"])
    four = sorted(n for n, t in config["train_sets"].items() if t["domains"] == 4)
    assert len(four) == 4 and sorted(trained.loc[trained["family"] == "maml", "train_set"]) == four
    assert (sheet["source"] == "init").sum() == 1 and len(sheet) == len(trained) + 1
    assert not sheet["allow_pickle"].any()


@pytest.mark.parametrize("row, message", [
    ("a\tpt\tresnet12\ttrain\t\t\tnope\tfalse", "line 2 (row 'a'): field 'train_set': 'nope' is not a train set"),
    ("a\tsupervised\tresnet12\ttrain\t\t\tglyphs-4s-d0\tfalse", "line 2 (row 'a'): family: 'supervised' is not one of"),
    ("a\tpt\tresnet12\tzenodo\t\t\tglyphs-4s-d0\tfalse", "line 2 (row 'a'): uri: '' does not match '^[0-9]+/.+$'"),
    ("a\tpt\tresnet12\turl\thttp://x/a.pt\t\tglyphs-4s-d0\tfalse", "line 2 (row 'a'): checksum: '' should be non-empty"),
    ("a\tpt\tresnet12\ttrain\t\t\tglyphs-4s-d0\tmaybe", "line 2 (row 'a'): field 'allow_pickle': expected true or false"),
    ("a\tpt\tresnet12\tfile\t/x.pt\tmd5:XYZ\tglyphs-4s-d0\tfalse", "line 2 (row 'a'): checksum: 'md5:XYZ' does not match"),
])
def test_malformed_sheet_row_names_line_row_and_field(tmp_path, repo, config, row, message):
    validate_config(config, repo / SCHEMA)
    with pytest.raises(ConfigError) as e:
        load_sheet(write_sheet(tmp_path, [row]), repo / SHEET_SCHEMA, config)
    assert message in str(e.value)
    assert "sheet.tsv" in str(e.value)


def test_duplicate_names_and_unknown_columns(tmp_path, repo, config):
    validate_config(config, repo / SCHEMA)
    row = "a\tpt\tresnet12\ttrain\t\t\tglyphs-4s-d0\tfalse"
    with pytest.raises(ConfigError, match="line 3 .*'a' already used on line 2"):
        load_sheet(write_sheet(tmp_path, [row, row]), repo / SHEET_SCHEMA, config)
    bad = tmp_path / "cols.tsv"
    bad.write_text("name\tfamily\tcolour\n")
    with pytest.raises(ConfigError, match="unknown column.*colour"):
        load_sheet(bad, repo / SHEET_SCHEMA, config)


def _snakemake_dry_run(repo, tmp_path, extra):
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--directory", str(tmp_path),
                           "--snakefile", str(repo / "Snakefile"), *extra],
                          cwd=repo, capture_output=True, text=True, timeout=300)


def test_workflow_stops_before_any_job_on_a_bad_config(repo, tmp_path, config):
    config["evaluation"]["episodes"] = "many"
    config["checkpoint_sheet"] = str(repo / "config/checkpoints.tsv")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    out = _snakemake_dry_run(repo, tmp_path, ["--configfile", str(bad)])
    assert out.returncode != 0
    assert "evaluation.episodes: 'many' is not of type 'integer'" in out.stderr + out.stdout
    assert not (tmp_path / "results").exists()


def test_workflow_stops_on_a_bad_sheet_row(repo, tmp_path, config):
    sheet = write_sheet(tmp_path, ["x\tpt\tresnet12\ttrain\t\t\tno-such-set\tfalse"])
    config["checkpoint_sheet"] = str(sheet)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out = _snakemake_dry_run(repo, tmp_path, ["--configfile", str(cfg)])
    assert out.returncode != 0
    assert "line 2 (row 'x'): field 'train_set': 'no-such-set'" in out.stderr + out.stdout


@pytest.mark.parametrize("mutate, expected", [
    # A count written as a float passed JSON Schema's "integer" and failed later as "5.0way-...".
    (lambda c: c["evaluation"].__setitem__("ways", 5.0), "evaluation.ways: 5.0 is not an integer (write 5"),
    (lambda c: c["training"].__setitem__("lr", float("nan")), "training.lr: nan is not a finite number"),
    (lambda c: c["training"]["maml"].__setitem__("inner_lr", float("inf")),
     "training.maml.inner_lr: inf is not a finite number"),
    (lambda c: c["diversity"].__setitem__("tasks", 2), "diversity.tasks: 2 is less than the minimum of 3"),
    (lambda c: c["evaluation"].__setitem__("logreg_C", True), "evaluation.logreg_C: True is not of type 'number'"),
])
def test_numbers_are_what_they_say(repo, config, mutate, expected):
    mutate(config)
    with pytest.raises(ConfigError) as e:
        validate_config(config, repo / SCHEMA, "my.yaml")
    assert f"my.yaml: {expected}" in str(e.value)


def test_names_may_not_differ_only_in_case(repo, config, tmp_path):
    first = next(iter(config["train_sets"]))
    config["train_sets"][first.upper()] = dict(config["train_sets"][first])
    with pytest.raises(ConfigError, match=f"'{first}' and '{first.upper()}' differ only in case"):
        validate_config(config, repo / SCHEMA, "c.yaml")
    del config["train_sets"][first.upper()]
    validate_config(config, repo / SCHEMA, "c.yaml")
    rows = [f"ok\tpt\tresnet12\ttrain\t\t\t{first}\tfalse", f"Ok\tpt\tresnet12\ttrain\t\t\t{first}\tfalse"]
    with pytest.raises(ConfigError, match=r"line 3 .*'Ok' already used on line 2 \(as 'ok': names may not differ"):
        load_sheet(write_sheet(tmp_path, rows), repo / SHEET_SCHEMA, config)
