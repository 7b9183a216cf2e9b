"""Issue 25, point 1: the workflow runs as a Snakemake module, from a local clone and as snakedeploy writes it.

Each test deploys into a temporary folder that holds only the user's Snakefile, config and sheet
(nothing of the repository), runs the tiny study there to the end, and checks that the user's
sheet was the one read (a row renamed in the user's copy is the one evaluated).
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.workflow
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
WORKFLOW_PARTS = ["Snakefile", "rules", "config", "divcoeff", "workflow_scripts", "envs", "profiles"]


def _user_config(repo, folder, sheet="config/checkpoints.tsv"):
    """The tiny study as a user's config/ (config.yaml, checkpoints.tsv), with the control row renamed."""
    (folder / "config").mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((repo / "config/tiny/config.yaml").read_text())
    config["checkpoint_sheet"] = sheet
    (folder / "config/config.yaml").write_text(yaml.safe_dump(config))
    rows = (repo / "config/tiny/checkpoints.tsv").read_text()
    assert "\nuntrained\t" in rows
    (folder / sheet).write_text(rows.replace("\nuntrained\t", "\nmy-control\t"))


def _run(folder, *args, timeout=2400):
    # Run from the user's folder, with no -s or -d: Snakemake finds workflow/Snakefile or Snakefile there.
    env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_PROFILE"}
    return subprocess.run([*SNAKEMAKE, "--cores", "2", *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _assert_tiny_study_done(folder):
    summary = (folder / "results/summary.tsv").read_text()
    assert re.search(r"^my-control-r0\t", summary, re.M) and not re.search(r"^untrained-r0\t", summary, re.M)
    assert json.loads((folder / "results/eval/my-control-r0.json").read_text())
    assert not (folder / "results/eval/untrained-r0.json").exists()
    for metric in ("accuracy", "loss"):
        assert (folder / f"results/figures/diversity_vs_{metric}.png").stat().st_size > 1000
    out = _run(folder, "-n")
    assert out.returncode == 0 and "Nothing to be done" in out.stdout + out.stderr, out.stderr[-3000:]


def test_a_local_module_runs_the_tiny_study_from_the_users_folder(repo, tmp_path):
    user = tmp_path / "my-study"
    _user_config(repo, user)
    (user / "Snakefile").write_text(
        'configfile: "config/config.yaml"\n\n\n'
        f'module divcoeff:\n    snakefile:\n        "{repo / "Snakefile"}"\n    config:\n        config\n\n\n'
        "use rule * from divcoeff\n")
    out = _run(user)
    assert out.returncode == 0, out.stderr[-4000:]
    _assert_tiny_study_done(user)


def test_what_snakedeploy_deploys_from_a_local_clone_runs_the_tiny_study(repo, tmp_path):
    # The workflow's files only: snakedeploy's local provider copies the whole folder (a venv, results).
    clone = tmp_path / "divcoeff"
    clone.mkdir()
    for part in WORKFLOW_PARTS:
        src = repo / part
        if src.is_dir():
            shutil.copytree(src, clone / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, clone / part)
    dest = tmp_path / "deployed"
    # snakedeploy is in the test extra of pyproject.toml (installed by make test).
    cmd = [os.path.join(os.path.dirname(sys.executable), "snakedeploy"), "deploy-workflow", str(clone), str(dest),
           "--tag", "v0.1.0"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    snakefile = dest / "workflow/Snakefile"
    text = snakefile.read_text()
    assert re.search(r"^module \w+:", text, re.M) and re.search(r"^use rule \* from \w+", text, re.M), text
    assert (dest / "config/config.yaml").is_file() and (dest / "profiles").is_dir()
    # snakedeploy 0.17's local provider writes the module's snakefile as the bare "Snakefile", which
    # Snakemake resolves next to workflow/Snakefile (the module would include itself); a github(...)
    # source names the repository's Snakefile, and so does this adaptation to a local path.
    text, n = re.subn(r'(snakefile:\s*\n\s*)"Snakefile"', rf'\g<1>"{clone / "Snakefile"}"', text)
    assert n == 1, text
    snakefile.write_text(text)
    # The user edits the copied config/: here the tiny study, its sheet in config/tiny/.
    _user_config(repo, dest, sheet="config/tiny/checkpoints.tsv")
    out = _run(dest)
    assert out.returncode == 0, out.stderr[-4000:]
    _assert_tiny_study_done(dest)


def test_the_schemas_are_package_data_of_the_library(repo, tmp_path):
    """A wheel of divcoeff holds both schemas, so an installed library finds them without the workflow's folder."""
    import zipfile

    from divcoeff.settings import SCHEMA_PATH, SHEET_SCHEMA_PATH

    package = repo / "divcoeff"
    for path in (SCHEMA_PATH, SHEET_SCHEMA_PATH):
        assert path.parent == package / "schemas"
        assert path.read_bytes() == (repo / "config/schemas" / path.name).read_bytes()
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(repo / "pyproject.toml", src)
    shutil.copytree(repo / "config/schemas", src / "config/schemas")
    shutil.copytree(package, src / "divcoeff", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp_path / "dist").glob("divcoeff-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for path in (SCHEMA_PATH, SHEET_SCHEMA_PATH):
            assert zf.read(f"divcoeff/schemas/{path.name}") == path.read_bytes()
