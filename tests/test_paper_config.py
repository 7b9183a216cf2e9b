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
PAPER_2022 = REPO / "config" / "paper" / "diversity-2022.yaml"
SCHEMA = REPO / "config" / "schemas" / "config.schema.yaml"
# REFERENCE section 7, "Files": the real keys of the benchmark records.
REAL_KEYS = {
    "mini-imagenet": {f"7978538/mini-imagenet-cache-{s}.pkl" for s in ("train", "validation", "test")},
    "cifar-fs": {"7978538/cifar100.zip"},
    "fc100": {"7978538/fc100.zip"},
    "tiered-imagenet": {f"7978538/tiered-imagenet-{s}_{k}.pkl" for s in ("train", "val", "test")
                        for k in ("images_png", "labels")},
    "cub": {"8000562/CUB_200_2011.tgz"},
    "delaunay": {"7756788/delauny_l2l_bm_splits.zip"},
}
RFS_MEAN = [120.39586422 / 255, 115.59361427 / 255, 104.54012653 / 255]
NORM_2023 = [0.5853, 0.5335, 0.4950]
NORM_2022 = [0.5071, 0.4867, 0.4408]


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
    zenodo = {b: {f["uri"] for f in s["files"]} for b, s in benchmarks.items() if s["source"] == "zenodo"}
    assert zenodo == REAL_KEYS
    text = PAPER.read_text()
    assert "PLACEHOLDER" not in text and "FILL-IN" not in text and "7311663" not in text
    assert [f["name"] for f in benchmarks["mini-imagenet"]["files"]] == [
        f"mini-imagenet-cache-{s}.pkl" for s in ("train", "validation", "test")]
    for name, spec in benchmarks.items():
        names = [f["name"] for f in spec["files"]]
        assert len(names) == len(set(names)), name
        if spec["source"] == "url":
            assert all(re.fullmatch(r"md5:[0-9a-f]{32}", f["checksum"]) for f in spec["files"]), name


def test_inputs_as_the_published_loaders_make_them(paper):
    b = paper["benchmarks"]
    assert b["mini-imagenet"]["normalisation"]["mean"] == pytest.approx(RFS_MEAN)
    for name in ("cifar-fs", "fc100", "tiered-imagenet", "aircraft", "vgg-flower", "dtd", "cub", "delaunay"):
        assert b[name]["normalisation"]["mean"] == pytest.approx(NORM_2023), name
    om = b["omniglot"]
    assert (om["normalisation"], om["pixels"], om["shuffle_classes"], om["channels"], om["image_size"],
            om["resample"], om["task_rotations"]) == (None, "inverted", False, 3, 84, "bilinear", [0, 90, 180, 270])
    ts = paper["train_sets"]
    assert ts["cifar-fs"]["image_size"] == 32 and ts["cifar-fs"]["normalisation"]["cifar-fs"]["mean"] == NORM_2022
    assert all(ts[t]["image_size"] == 84 for t in ("hdb1", "hdb4", "hdb5", "hdb10"))


def test_two_evaluations_and_the_published_protocol(paper):
    ev, own = paper["evaluation"], paper["own_test"]
    assert ev["protocol"] == "published" and ev["maml"]["inner_steps"] == [5, 10] and ev["pt_methods"] == ["logreg"]
    assert own["enabled"] and own["split"] == "test" and own["episodes"] == 300
    assert own["episodes_per_train_set"] == {"mini-imagenet": 500, "cifar-fs": 500, "hdb4": 500, "hdb5": 200,
                                             "dtd": 100, "hdb1": 10000}
    assert paper["diversity"]["probe"]["normalisation"] == "dataset"
    assert paper["report"]["published"] == "config/paper/published.tsv"


def test_the_2022_variant_has_the_published_diversity_setup():
    config = validate_config(yaml.safe_load(PAPER_2022.read_text()), SCHEMA, str(PAPER_2022))
    ts = config["train_sets"]
    assert set(ts) == {"mini-imagenet", "cifar-fs"} and {t["split"] for t in ts.values()} == {"val"}
    div = config["diversity"]
    assert (div["tasks"], div["method"]) == (500, "faithful")
    probes = [div["probe"], *div["probes"].values()]
    assert {(p["arch"], p["weights"]) for p in probes} == {(a, w) for a in ("resnet18", "resnet34")
                                                          for w in ("imagenet", "random")}
    assert config["benchmarks"]["cifar-fs"]["normalisation"]["mean"] == NORM_2022
    sheet = load_sheet(REPO / config["checkpoint_sheet"], REPO / "config/schemas/checkpoints.schema.yaml", config)
    assert set(sheet["train_set"]) == {"mini-imagenet", "cifar-fs"}


def test_mixtures_probe_and_protocol(paper):
    ts = paper["train_sets"]
    assert ts["hdb1"]["benchmarks"] == ["mini-imagenet", "omniglot"]
    assert ts["hdb4"]["benchmarks"] == ["mini-imagenet", "cifar-fs", "omniglot", "delaunay"]
    assert ts["hdb5"]["benchmarks"] == ["vgg-flower", "aircraft"]
    assert ts["hdb10"]["benchmarks"] == ["mini-imagenet", "cifar-fs", "omniglot", "vgg-flower", "aircraft"]
    assert all(t["mixture_over"] == "benchmark" for t in ts.values())  # a source dataset drawn uniformly
    probe = paper["diversity"]["probe"]
    assert (probe["kind"], probe["arch"], probe["weights"], probe["image_size"]) == (
        "torchvision", "resnet18", "imagenet", None)  # None: each view's size (32 for the 2022 CIFAR-FS)
    assert paper["diversity"]["method"] == "faithful" and paper["diversity"]["tasks"] == 500
    ev = paper["evaluation"]
    assert (ev["split"], ev["ways"], ev["shots"], ev["queries"]) == ("test", 5, 5, 15)
    assert not {"fc100", "tiered-imagenet"} & set(ev["benchmarks"])  # their test classes overlap others' train


def _dry_run(tmp_path, *targets, config=PAPER):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), *targets,
           "-n", "--nolock", "--configfile", str(config)]
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
    assert counts["fetch_benchmark_file"] == n_files == 19
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
    counts, text = _dry_run(tmp_path)
    sheet_rows = [line for line in (REPO / paper["checkpoint_sheet"]).read_text().splitlines()
                  if line.strip() and not line.startswith(("#", "name\t"))]
    assert counts["fetch_checkpoint"] == len(sheet_rows)
    assert counts["index_benchmark"] == 10
    # both evaluations: every checkpoint on the held-out episodes and on its own train set's test episodes
    assert counts["evaluate"] == 2 * len(sheet_rows)
    assert "results/eval/own-test/usl-hdb4.json" in text and "results/eval/usl-hdb4.json" in text
    assert "results/episodes/own-test.hdb1/5way-5shot-15query-10000x-seed22.json" in text
    # views: the train sets, the held-out one, each train set's own test view
    assert counts["build_view"] == 2 * len(paper["train_sets"]) + 1
    assert counts["diversity"] == len(paper["train_sets"]) and counts["published_comparison"] == 1


@pytest.mark.skipif(not {"diversity", "evaluate"} <= _included_stages(),
                    reason="the diversity and evaluate stages are not in the Snakefile yet")
def test_dry_run_of_the_2022_variant_computes_four_probes_in_one_run(tmp_path):
    counts, text = _dry_run(tmp_path, config=PAPER_2022)
    assert counts["diversity"] == 8 and counts["evaluate"] == 8  # 2 train sets x 4 probes; 4 checkpoints x 2
    for probe in ("resnet18-random", "resnet34-imagenet", "resnet34-random"):
        assert f"results/diversity/probes/{probe}/cifar-fs.json" in text
    assert "results/diversity/mini-imagenet.json" in text
    assert "results/episodes/mini-imagenet/5way-5shot-15query-500x-seed31.json" in text


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


def test_every_slurm_command_skips_the_workflow_profile():
    """profiles/slurm must run with --workflow-profile none (its header says why): every SLURM command
    the paper study documents says so."""
    docs = [REPO / "docs/published-study.md", REPO / "config/paper/README.md", PAPER]
    commands = [(p.name, line) for p in docs for line in p.read_text().splitlines() if "--profile profiles/slurm" in line]
    assert len(commands) >= 3
    assert [c for c in commands if "--workflow-profile none" not in c[1]] == []


def test_the_2023_single_dataset_checkpoints_have_rows_to_fill_in(paper):
    """A PT and a MAML row for each 2023 single-dataset run, with its benchmark as train set, so that
    list-zenodo's output has somewhere to go; their uris are placeholders until the keys are known."""
    sheet = load_sheet(REPO / paper["checkpoint_sheet"], REPO / "config/schemas/checkpoints.schema.yaml", paper)
    rows = {(r["train_set"], r["family"]): r for r in sheet.to_dict("records")}
    for ts in ("fc100", "tiered-imagenet", "aircraft", "vgg-flower", "dtd", "cub", "delaunay"):
        assert ts in paper["train_sets"] and paper["train_sets"][ts]["benchmarks"] == [ts]
        for family in ("pt", "maml"):
            row = rows[(ts, family)]
            assert row["source"] == "zenodo" and row["uri"].startswith("8247898/FILL-IN-"), row
            assert row["arch"] == "resnet12_rfs"
