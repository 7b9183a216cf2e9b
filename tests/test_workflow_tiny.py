"""The whole workflow on config/tiny (DejaVu fonts only, a few steps, tasks and episodes), run by Snakemake.

One run per test session in a temporary working directory; the tests then read what it left.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_a_new_sheet_row_runs_only_its_jobs_and_the_report(tiny_run, tmp_path):
    repo, wd = tiny_run
    sheet = (repo / "config/tiny/checkpoints.tsv").read_text()
    new = tmp_path / "checkpoints.tsv"
    new.write_text(sheet + "pt-tiny-1s-again\tpt\tresnet12\ttrain\t\t\ttiny-1s\tfalse\n")
    out = snakemake(repo, wd, "-n", "--config", f"checkpoint_sheet={new}")
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = _planned_jobs(out.stdout)
    assert jobs.pop("train_checkpoint") == 1 and jobs.pop("evaluate") == 1
    assert jobs.pop("summarize") == 1 and jobs.pop("all") == 1
    assert set(jobs) <= {"plot"}, jobs    # nothing else: no diversity, data or other checkpoints
    assert "results/eval/pt-tiny-1s-again.json" in out.stdout


def test_a_corrupt_checkpoint_fails_alone_with_a_clear_log(tiny_run, tmp_path):
    repo, wd = tiny_run
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    sheet = tmp_path / "checkpoints.tsv"
    sheet.write_text((repo / "config/tiny/checkpoints.tsv").read_text()
                     + f"bad-ckpt\tpt\tresnet12\tfile\t{bad}\t\ttiny-1s\tfalse\n")
    (wd / "results/eval/pt-tiny-all.json").unlink()     # a healthy job that must still run
    out = snakemake(repo, wd, "--keep-going", "--config", f"checkpoint_sheet={sheet}")
    assert out.returncode != 0
    assert (wd / "results/eval/pt-tiny-all.json").exists()
    assert not (wd / "results/eval/bad-ckpt.json").exists()
    log = (wd / "logs/eval/bad-ckpt.log").read_text()
    assert "bad-ckpt.pt" in log
