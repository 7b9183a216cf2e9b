"""config/paper/: the published study's configuration validates, and its DAG builds offline."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from divcoeff.config import load_sheet, validate_config
from divcoeff.readers import READERS

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper" / "config.yaml"
SCHEMA = REPO / "config" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def paper():
    config = yaml.safe_load(PAPER.read_text())
    return validate_config(config, SCHEMA, str(PAPER))


def test_paper_config_and_sheet_validate(paper):
    sheet = load_sheet(REPO / paper["checkpoint_sheet"], REPO / "config/schemas/checkpoints.schema.yaml", paper)
    assert len(sheet) >= 4
    assert set(sheet["family"]) == {"pt", "maml"}
    for _, row in sheet.iterrows():
        assert row["source"] == "zenodo" and re.fullmatch(r"8247898/\S+", row["uri"]), row["name"]


def test_benchmarks_follow_the_reference(paper):
    benchmarks = paper["benchmarks"]
    assert set(b["format"] for b in benchmarks.values()) == set(READERS)
    zenodo = {b: {f["uri"].split("/")[0] for f in s["files"]} for b, s in benchmarks.items() if s["source"] == "zenodo"}
    assert zenodo["mini-imagenet"] == {"7311663"} and zenodo["delaunay"] == {"7756788"}
    assert zenodo["cifar-fs"] == zenodo["fc100"] == zenodo["tiered-imagenet"] == {"7978538"}
    assert [f["name"] for f in benchmarks["mini-imagenet"]["files"]] == [
        f"mini-imagenet-cache-{s}.pkl" for s in ("train", "validation", "test")]
    for name, spec in benchmarks.items():
        names = [f["name"] for f in spec["files"]]
        assert len(names) == len(set(names)), name
        if spec["source"] == "url":
            assert all(re.fullmatch(r"md5:[0-9a-f]{32}", f["checksum"]) for f in spec["files"]), name


def test_mixtures_probe_and_protocol(paper):
    ts = paper["train_sets"]
    assert ts["hdb1"]["benchmarks"] == ["mini-imagenet", "omniglot"]
    assert ts["hdb4"]["benchmarks"] == ["mini-imagenet", "cifar-fs", "omniglot", "delaunay"]
    assert ts["hdb5"]["benchmarks"] == ["vgg-flower", "aircraft"]
    assert ts["hdb10"]["benchmarks"] == ["mini-imagenet", "cifar-fs", "omniglot", "vgg-flower", "aircraft"]
    assert all(t["mixture_over"] == "benchmark" for t in ts.values())  # a source dataset drawn uniformly
    probe = paper["diversity"]["probe"]
    assert (probe["kind"], probe["arch"], probe["weights"], probe["image_size"]) == (
        "torchvision", "resnet18", "imagenet", 84)
    assert paper["diversity"]["method"] == "faithful" and paper["diversity"]["tasks"] == 500
    ev = paper["evaluation"]
    assert (ev["split"], ev["ways"], ev["shots"], ev["queries"]) == ("test", 5, 5, 15)
    assert not {"fc100", "tiered-imagenet"} & set(ev["benchmarks"])  # their test classes overlap others' train


def _dry_run(tmp_path, *targets):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), *targets,
           "-n", "--nolock", "--configfile", str(PAPER)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", text.split("Job stats:", 1)[-1], re.M))
    return {k: int(v) for k, v in counts.items()}, text


def test_dry_run_of_the_data_stage_builds_the_dag_offline(tmp_path, paper):
    ev, div = paper["evaluation"], paper["diversity"]
    targets = [f"results/episodes/{ev['name']}/5way-5shot-15query-{ev['episodes']}x-seed{ev['seed']}.json"]
    targets += [f"results/episodes/{t}/5way-5shot-15query-{div['tasks']}x-seed{div['seed']}.json"
                for t in paper["train_sets"]]
    counts, text = _dry_run(tmp_path, *targets)
    n_files = sum(len(s["files"]) for s in paper["benchmarks"].values())
    assert counts["fetch_benchmark_file"] == n_files == 14
    assert counts["index_benchmark"] == len(paper["benchmarks"]) == 10
    assert counts["build_view"] == counts["sample_episodes"] == len(paper["train_sets"]) + 1
    assert "render_glyphs" not in counts  # the embedded glyph config is not merged in
    assert "resources/benchmarks/mini-imagenet/mini-imagenet-cache-train.pkl" in text
    assert not (tmp_path / "resources").exists()  # a dry run fetches nothing


def _included_stages():
    return set(re.findall(r'^include: "rules/(\w+)\.smk"', (REPO / "Snakefile").read_text(), re.M))


@pytest.mark.skipif(not {"diversity", "evaluate"} <= _included_stages(),
                    reason="the diversity and evaluate stages are not in the Snakefile yet")
def test_dry_run_of_the_whole_study(tmp_path, paper):
    counts, _ = _dry_run(tmp_path)
    sheet_rows = [line for line in (REPO / paper["checkpoint_sheet"]).read_text().splitlines()
                  if line.strip() and not line.startswith(("#", "name\t"))]
    assert counts["fetch_checkpoint"] == len(sheet_rows)
    assert counts["index_benchmark"] == 10


@pytest.mark.parametrize("change, message", [
    ({"format": "imagenet-21k"}, "format"),
    ({"source": "url"}, "checksum"),                      # a URL without a checksum
    ({"files": [{"name": "../x.pkl", "uri": "1/x.pkl"}]}, "name"),
    ({"files": [{"name": "x.pkl", "uri": "mini-imagenet-cache-train.pkl"}]}, "uri"),  # no record id
    ({"image_sise": 84}, "image_sise"),                    # unknown keys are refused, not ignored
])
def test_bad_benchmark_entries_are_refused_naming_the_field(paper, change, message):
    import copy

    from divcoeff.config import ConfigError

    config = copy.deepcopy(paper)
    config["benchmarks"]["mini-imagenet"].update(change)
    with pytest.raises(ConfigError, match=rf"benchmarks\.mini-imagenet.*{message}"):
        validate_config(config, SCHEMA, "paper")
