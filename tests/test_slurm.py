"""The tiny study through a real SLURM on this machine (tests/cluster/run_local_slurm.sh).

Needs root and apt-get (it installs slurm-wlm, munge, slurmdbd, mariadb-server when missing) and
snakemake-executor-plugin-slurm; skipped with the reason otherwise. It starts private daemons,
runs `snakemake --profile profiles/slurm` in a temporary copy of the working tree, checks the
outputs and sacct, and stops every daemon it started. Takes a few minutes (see the script).
"""
import os
import shutil
import subprocess
import sys

import pytest
import yaml

SKIP = 77  # the script's "cannot run here" exit code


@pytest.mark.slurm
def test_tiny_study_runs_through_a_real_local_slurm(repo):
    if os.geteuid() != 0:
        pytest.skip("needs root: installs Debian packages and runs the SLURM daemons")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("no apt-get to install SLURM, and SLURM is not installed")
    pytest.importorskip("snakemake_executor_plugin_slurm",
                        reason="snakemake-executor-plugin-slurm not installed (pip install -e '.[slurm]')")
    script = repo / "tests" / "cluster" / "run_local_slurm.sh"
    res = subprocess.run(["bash", str(script)], cwd=repo, capture_output=True, text=True, timeout=1800)
    out = res.stdout + res.stderr
    if res.returncode == SKIP:
        pytest.skip(next((line for line in out.splitlines() if "SKIP:" in line), out.strip()[-300:]))
    assert res.returncode == 0, out[-8000:]
    assert "PASS:" in out, out[-8000:]


def test_fit_profile_caps_only_what_the_test_node_cannot_give(repo, tmp_path, monkeypatch):
    """The test runs the real profile, changed only where a 2-CPU node without partitions must."""
    monkeypatch.syspath_prepend(str(repo / "tests" / "cluster"))
    from fit_profile import fit_profile

    profile = {"executor": "slurm", "jobs": 50,
               "default-resources": {"runtime": 60, "mem_mb": 4000, "slurm_partition": "cpu", "slurm_account": "p1"},
               "set-resources": {"evaluate": {"gpu": 1, "gpu_model": "a100", "cpus_per_gpu": 8, "mem_mb": 32000,
                                              "runtime": 240, "slurm_partition": "gpu"}},
               "set-threads": {"evaluate": 8}}
    fitted = fit_profile(profile, cpus=2, mem_mb=16000, gpus=2)
    # one GPU's share of the node: 2 CPUs / 2 GPUs; one CPU's share of the memory: 16000 / 2
    assert fitted["set-resources"]["evaluate"] == {"gpu": 1, "cpus_per_gpu": 1, "mem_mb": 8000, "runtime": 240}
    assert fitted["set-threads"] == {"evaluate": 1}
    assert fitted["default-resources"] == {"runtime": 60, "mem_mb": 4000}
    assert fitted["executor"] == "slurm" and fitted["jobs"] == 50
    assert profile["set-resources"]["evaluate"]["cpus_per_gpu"] == 8  # the input is left alone

    no_gpu = fit_profile(profile, cpus=2, mem_mb=16000, gpus=0)
    assert no_gpu["set-resources"]["evaluate"] == {"mem_mb": 8000, "runtime": 240}
    assert no_gpu["set-threads"] == {"evaluate": 2}

    # the script form writes a profile Snakemake reads back unchanged
    out = tmp_path / "profile" / "config.yaml"
    subprocess.run([sys.executable, str(repo / "tests" / "cluster" / "fit_profile.py"),
                    str(repo / "profiles" / "slurm" / "config.yaml"), str(out),
                    "--nodes-cpus", "2", "--node-mem-mb", "16000", "--gpus", "2"], check=True)
    written = yaml.safe_load(out.read_text())
    real = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
    assert written["set-resources"].keys() == real["set-resources"].keys()
    assert all(r["gpu"] == 1 and r["cpus_per_gpu"] == 1 for r in written["set-resources"].values())
