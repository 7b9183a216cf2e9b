"""The whole workflow on config/tiny (DejaVu fonts only, a few steps, tasks and episodes), run by Snakemake.

One run per test session in a temporary working directory; the tests then read what it left.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.workflow
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(repo, workdir, *args, config="config/tiny/config.yaml"):
    cmd = [*SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(repo / config), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    repo = Path(__file__).resolve().parents[1]
    workdir = tmp_path_factory.mktemp("tiny")
    out = snakemake(repo, workdir)
    assert out.returncode == 0, out.stderr[-4000:]
    return repo, workdir


def test_tiny_study_renders_data_montage_and_episodes(tiny_run):
    _, wd = tiny_run
    manifest = json.loads((wd / "results/data/glyphs/manifest.json").read_text())
    assert len(manifest["domains"]) >= 5
    assert (wd / "results/figures/glyphs_montage.png").stat().st_size > 1000
    eval_eps = json.loads((wd / "results/episodes/tiny-heldout/5way-1shot-2query-6x-seed21.json").read_text())
    assert eval_eps["n_episodes"] == 6 and len(eval_eps["episodes"]) == 6
    for t in ("tiny-1s", "tiny-all"):
        assert (wd / f"results/episodes/{t}/5way-1shot-1query-4x-seed31.json").exists()
        assert (wd / f"logs/data/build_view_{t}.log").exists()


def test_groups_train_their_replicates_and_the_summary_says_what_stopped_them(tiny_run):
    import pandas as pd
    _, wd = tiny_run
    group = wd / "results/checkpoints/groups/pt-tiny-1s-g0"
    assert sorted(p.name for p in group.glob("*.pt")) == ["pt-tiny-1s-r0.pt", "pt-tiny-1s-r1.pt"]
    for name in ("pt-tiny-1s-r0", "pt-tiny-1s-r1"):
        assert (wd / f"results/checkpoints/{name}.pt").read_bytes() == (group / f"{name}.pt").read_bytes()
    assert (wd / "benchmarks/train/pt-tiny-1s-g0.tsv").exists()
    table = pd.read_csv(wd / "results/summary.tsv", sep="\t", keep_default_na=False)
    trained = table[table["role"] == "trained"]
    assert set(trained["stopped_by"]) <= {"criterion", "cap"} and len(trained)
    # tiny: cap 3 steps, the rule may stop at step 2 (two 1-step windows)
    assert set(trained["train_steps"].astype(int)) <= {2, 3}
    assert (table.loc[table["role"] == "control", "stopped_by"] == "").all()


def test_tiny_study_chooses_sets_by_the_domain_matrix(tiny_run):
    import numpy as np
    import pandas as pd

    from divcoeff.domains import read_matrix
    from divcoeff.selection import mixture_coefficient

    _, wd = tiny_run
    D, names = read_matrix(wd / "results/diversity/glyphs-domains.tsv")
    info = json.loads((wd / "results/diversity/glyphs-domains.json").read_text())
    assert info["domains"] == names and len(info["task_domain"]) == 2 * len(names)
    assert np.load(wd / "results/diversity/glyphs-domains.npy").shape[0] == 2 * len(names)
    assert (wd / "results/figures/glyphs_domains.png").stat().st_size > 1000
    chosen = {}
    for t in ("tiny-2max", "tiny-2min"):
        sel = json.loads((wd / f"results/views/{t}.json").read_text())["selection"]
        idx = [names.index(d) for d in sel["domains"]]
        assert len(idx) == 2 and sel["predicted_coefficient"] == pytest.approx(mixture_coefficient(D, idx))
        chosen[t] = sel["predicted_coefficient"]
    assert chosen["tiny-2max"] > chosen["tiny-2min"]
    pvm = pd.read_csv(wd / "results/diversity/predicted_vs_measured.tsv", sep="\t")
    assert pvm["train_set"].iloc[-1] == "all" and set(pvm["train_set"][:-1]) == {"tiny-1s", "tiny-all", "tiny-2max",
                                                                                   "tiny-2min"}
    assert (wd / "results/design_check.tsv").exists()
    corr = pd.read_csv(wd / "results/correlation.tsv", sep="\t")
    assert "slope_within" in corr.columns
    paired = pd.read_csv(wd / "results/paired_comparison.tsv", sep="\t")
    rows = paired[(paired["level_low"] == "k=2 select=min") & (paired["level_high"] == "k=2 select=max")]
    # PT only (the tiny sheet trains no MAML on these sets): a t row and a bootstrap row for accuracy
    assert list(rows["family"]) == ["pt", "pt"] and list(rows["metric"]) == ["accuracy", "accuracy"]


def test_second_run_has_nothing_to_do(tiny_run):
    repo, wd = tiny_run
    out = snakemake(repo, wd, "-n")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Nothing to be done" in out.stdout + out.stderr


def test_episodes_are_rebuilt_byte_identical(tiny_run):
    repo, wd = tiny_run
    path = wd / "results/episodes/tiny-heldout/5way-1shot-2query-6x-seed21.json"
    before = path.read_bytes()
    out = snakemake(repo, wd, "--force", str(path.relative_to(wd)))
    assert out.returncode == 0, out.stderr[-2000:]
    assert path.read_bytes() == before


def _planned_jobs(stdout):
    """{rule: count} from the 'Job stats' table of a dry run."""
    lines = stdout.split("Job stats:", 1)[1].splitlines()[3:]
    jobs = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def test_a_new_sheet_row_runs_only_its_jobs_and_the_report(finished_run, tmp_path):
    repo, wd = finished_run
    sheet = (repo / "config/tiny/checkpoints.tsv").read_text()
    new = tmp_path / "checkpoints.tsv"
    new.write_text(sheet + "pt-tiny-1s-again\tpt\tresnet12\ttrain\t\t\ttiny-1s\tfalse\t\n")
    out = snakemake(repo, wd, "-n", "--config", f"checkpoint_sheet={new}")
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = _planned_jobs(out.stdout)
    # The row stands for training.replicates.pt = 2 seeds, one group (training.replicate_group 2): one
    # training job, its two checkpoints copied to their paths, two evaluations.
    assert jobs.pop("train_checkpoint") == 1 and jobs.pop("checkpoint_from_group") == 2
    assert jobs.pop("evaluate") == 2
    assert jobs.pop("summarize") == 1 and jobs.pop("statistics") == 1 and jobs.pop("all") == 1
    assert set(jobs) <= {"plot"}, jobs    # nothing else: no diversity, data or other checkpoints
    assert "results/eval/pt-tiny-1s-again-r0.json" in out.stdout
    assert "results/eval/pt-tiny-1s-again-r1.json" in out.stdout


def test_adding_a_replicate_runs_only_its_jobs(finished_run, tmp_path):
    repo, wd = finished_run
    lines = (repo / "config/tiny/checkpoints.tsv").read_text().splitlines()
    lines = [ln + "3" if ln.startswith("pt-tiny-1s\t") else ln for ln in lines]  # empty replicates (2) -> 3
    sheet = tmp_path / "checkpoints.tsv"
    sheet.write_text("\n".join(lines) + "\n")
    out = snakemake(repo, wd, "-n", "--config", f"checkpoint_sheet={sheet}")
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = _planned_jobs(out.stdout)
    # r2 opens the row's second group (replicate_group 2): that group's job alone, not r0-r1's.
    assert jobs == {"train_checkpoint": 1, "checkpoint_from_group": 1, "evaluate": 1, "summarize": 1,
                    "statistics": 1, "plot": 3, "all": 1}, jobs
    assert "results/checkpoints/groups/pt-tiny-1s-g1" in out.stdout
    assert "results/checkpoints/pt-tiny-1s-r2.pt" in out.stdout
    assert "results/checkpoints/groups/pt-tiny-1s-g0" not in out.stdout


def test_a_corrupt_checkpoint_fails_alone_with_a_clear_log(tiny_run, tmp_path):
    repo, wd = tiny_run
    bad = wd / "bad.pt"  # inside the project: a file row may not copy from elsewhere (fetch.local_roots)
    bad.write_bytes(b"this is not a checkpoint")
    sheet = tmp_path / "checkpoints.tsv"
    sheet.write_text((repo / "config/tiny/checkpoints.tsv").read_text()
                     + f"bad-ckpt\tpt\tresnet12\tfile\t{bad}\t\ttiny-1s\tfalse\t\n")
    (wd / "results/eval/pt-tiny-all-r0.json").unlink()     # a healthy job that must still run
    out = snakemake(repo, wd, "--keep-going", "--config", f"checkpoint_sheet={sheet}")
    assert out.returncode != 0
    assert (wd / "results/eval/pt-tiny-all-r0.json").exists()
    assert not (wd / "results/eval/bad-ckpt.json").exists()
    log = (wd / "logs/eval/bad-ckpt.log").read_text()
    assert "bad-ckpt.pt" in log


# --- what reruns: result settings and code changes rerun what they affect, compute settings nothing ---

def _config_with(repo, tmp_path, **sections):
    """The tiny config with some keys of some sections replaced, as a file."""
    cfg = yaml.safe_load((repo / "config/tiny/config.yaml").read_text())
    cfg["checkpoint_sheet"] = str(repo / cfg["checkpoint_sheet"])
    for section, values in sections.items():
        cfg.setdefault(section, {})
        for key, value in values.items():
            if isinstance(value, dict):
                cfg[section].setdefault(key, {}).update(value)
            else:
                cfg[section][key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _dry_run(repo, wd, config, *extra, snakefile=None):
    cmd = [*SNAKEMAKE, "-n", "-s", str(snakefile or repo / "Snakefile"), "--directory", str(wd), "--configfile",
           str(config), "--cores", "2", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    return {} if "Nothing to be done" in text else _planned_jobs(out.stdout)


@pytest.fixture
def finished_run(tiny_run):
    """The tiny run brought up to date (earlier tests may have left the report behind)."""
    repo, wd = tiny_run
    out = snakemake(repo, wd)
    assert out.returncode == 0, out.stderr[-2000:]
    return repo, wd


def test_compute_settings_rerun_nothing(finished_run, tmp_path):
    repo, wd = finished_run
    cfg = _config_with(repo, tmp_path, compute={"device": "cpu", "train": {"threads": 2},
                                                "diversity": {"threads": 2, "task_batch": 1, "engine": "loop",
                                                              "exact_chunk_size": 4},
                                                "evaluate": {"threads": 2, "batch_size": 7, "maml_chunk_size": 1}})
    assert _dry_run(repo, wd, cfg) == {}
    # ... nor does a profile's override per rule.
    assert _dry_run(repo, wd, repo / "config/tiny/config.yaml", "--set-threads", "evaluate=2",
                    "--set-resources", "evaluate:batch_size=1024", "diversity:task_batch=16") == {}


def test_result_settings_rerun_exactly_what_they_affect(finished_run, tmp_path):
    repo, wd = finished_run
    # A PT classifier setting: the two PT evaluations and the report, nothing of MAML, training or data.
    report = {"summarize": 1, "statistics": 1, "plot": 3, "all": 1}
    # A PT classifier setting: the PT evaluations (6 trained, 1 control) and the report; nothing of
    # MAML, training or data.
    jobs = _dry_run(repo, wd, _config_with(repo, tmp_path, evaluation={"logreg_C": 0.5}))
    assert jobs == {"evaluate": 7, **report}, jobs
    jobs = _dry_run(repo, wd, _config_with(repo, tmp_path, evaluation={"maml": {"inner_lr": 0.05}}))
    assert jobs == {"evaluate": 2, **report}, jobs
    # An optimiser setting: every trained checkpoint and its evaluation, not the untrained control;
    # diversity and data untouched.
    jobs = _dry_run(repo, wd, _config_with(repo, tmp_path, training={"lr": 2e-3}))
    # (6 group jobs: pt-tiny-1s r0-r1, maml-tiny-1s r0, pt-tiny-all r0-r1, maml-tiny-all r0,
    # pt-tiny-2max r0, pt-tiny-2min r0)
    assert jobs == {"train_checkpoint": 6, "checkpoint_from_group": 8, "evaluate": 8, **report}, jobs
    # A diversity setting: the four coefficients, their check against the prediction and the report;
    # not the domain matrix (its embeddings do not depend on the bootstrap), so no set is chosen anew.
    jobs = _dry_run(repo, wd, _config_with(repo, tmp_path, diversity={"bootstrap": 51}))
    assert jobs == {"diversity": 4, "predicted_vs_measured": 1, **report}, jobs


def _copy_of_the_workflow(repo, dest):
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (repo / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, dest / name)
    return dest


def test_library_code_changes_rerun_the_rules_that_run_that_code(finished_run, tmp_path):
    repo, wd = finished_run
    copy = _copy_of_the_workflow(repo, tmp_path / "wf")
    cfg = repo / "config/tiny/config.yaml"
    assert _dry_run(repo, wd, cfg, snakefile=copy / "Snakefile") == {}
    metrics = copy / "divcoeff/fewshot/metrics.py"
    text = metrics.read_text()
    # A docstring or a comment is not code.
    metrics.write_text(text.replace('"""', '"""Reworded. ', 1) + "\n# a comment\n")
    assert _dry_run(repo, wd, cfg, snakefile=copy / "Snakefile") == {}
    # Code is: every evaluation reruns, and the report after it; training, diversity and data do not.
    metrics.write_text(text + "\n\ndef _unused():\n    return 0\n")
    jobs = _dry_run(repo, wd, cfg, snakefile=copy / "Snakefile")
    assert jobs == {"evaluate": 9, "summarize": 1, "statistics": 1, "plot": 3, "all": 1}, jobs


def test_a_held_out_split_that_overlaps_training_stops_the_run_unless_allowed(finished_run, tmp_path):
    repo, wd = finished_run
    cfg = _config_with(repo, tmp_path, evaluation={"split": "train"})
    cmd = [*SNAKEMAKE, "-s", str(repo / "Snakefile"), "--directory", str(wd), "--configfile", str(cfg),
           "--cores", "2"]
    out = subprocess.run([*cmd, "results/views/tiny-heldout.tsv"], capture_output=True, text=True, timeout=600)
    assert out.returncode != 0
    log = (wd / "logs/data/build_view_tiny-heldout.log").read_text()
    assert "held-out view 'tiny-heldout' shares data with training sets" in log and "tiny-1s:" in log
    cfg = _config_with(repo, tmp_path, evaluation={"split": "train", "allow_overlap": True})
    out = subprocess.run([*cmd[:-4], "--configfile", str(cfg), "--cores", "2", "results/summary.tsv"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = (wd / "results/summary.tsv").read_text()
    assert "images, " in summary and "classes" in summary
    # leave the run as the other tests expect it
    out = snakemake(repo, wd)
    assert out.returncode == 0, out.stderr[-2000:]
