"""Conda env files, rule structure and `snakemake --lint`."""
import re
import subprocess
import sys

import pytest
import yaml

PIN = re.compile(r"^[A-Za-z0-9_.\-]+(\[[^\]]+\])?\s*(==?|>=)\s*[0-9][\w.*+!-]*$")


def env_files(repo):
    files = sorted((repo / "envs").glob("*.yaml"))
    assert files, "no conda env files in envs/"
    return files


def test_env_files_are_valid_pinned_conda_envs(repo):
    for path in env_files(repo):
        env = yaml.safe_load(path.read_text())
        assert isinstance(env, dict), path
        assert env.get("channels"), f"{path}: no channels"
        deps = env.get("dependencies")
        assert deps, f"{path}: no dependencies"
        for dep in deps:
            if isinstance(dep, dict):  # a pip: section
                for p in dep.get("pip", []):
                    assert "==" in p, f"{path}: pip dependency {p!r} is not pinned"
                continue
            assert PIN.match(dep.replace(" ", "")), f"{path}: dependency {dep!r} is not pinned (name=version)"
        names = [d.split("=")[0] for d in deps if isinstance(d, str)]
        assert "python" in names, f"{path}: python version not pinned"


def rule_blocks(repo):
    for smk in sorted((repo / "rules").glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", text, re.M):
            yield smk, m.group(1), m.group(2)


def test_every_rule_has_conda_log_and_named_outputs(repo):
    envs = {p.name for p in env_files(repo)}
    seen = 0
    for smk, name, body in rule_blocks(repo):
        seen += 1
        where = f"{smk.name}: rule {name}"
        assert re.search(r"^\s+log:", body, re.M), f"{where} has no log:"
        m = re.search(r"^\s+conda:\s*\n\s+\"\.\./envs/([\w.-]+)\"", body, re.M)
        assert m, f"{where} has no conda: env"
        assert m.group(1) in envs, f"{where} names a missing env {m.group(1)}"
        out = re.search(r"^\s+output:\s*\n((?:\s{8,}.*\n)+)", body, re.M)
        assert out, f"{where} has no output:"
        # One entry per line at the directive's indentation; snakefmt (black) puts the rest of a
        # long entry on deeper lines and its closing bracket back at that indentation.
        for line in out.group(1).splitlines():
            if len(line) - len(line.lstrip()) != 8 or line.strip()[:1] in ")]}":
                continue
            line = line.strip()
            assert line.startswith("**") or re.match(r"^\w+=", line), f"{where}: unnamed output {line!r}"
    assert seen >= 4


def test_snakemake_lint_is_clean(repo):
    out = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=repo, capture_output=True, text=True,
                         timeout=300)
    assert "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr, out.stdout + out.stderr


# --- SLURM profile (profiles/slurm): which jobs get a GPU, which stay on the login node ---

GPU_RULES = {"train_checkpoint", "train_probe", "diversity", "evaluate"}
DOWNLOAD_RULES = {"fetch_checkpoint", "fetch_benchmark_file"}
# Plots, tables and statistics are quick; on the login node they do not wait in the queue.
PLOT_RULES = {"montage", "summarize", "statistics", "plot", "published_comparison"}
JOB_HEADER = re.compile(r"^(local)?(?:rule|checkpoint) (\w+):$")


def slurm_dry_run_jobs(repo, configfile):
    """Jobs of `snakemake --profile profiles/slurm -n` as dicts: rule, threads, resources."""
    pytest.importorskip("snakemake_executor_plugin_slurm",
                        reason="snakemake-executor-plugin-slurm not installed (pip install -e '.[slurm]')")
    # A dry run caps threads at --cores (1 when not given); a real SLURM run does not, so give
    # plenty to see the threads the jobs would get.
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "--workflow-profile", "none",
           "--configfile", configfile, "--dry-run", "--cores", "1024"]
    res = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    jobs, job = [], None
    for line in (res.stdout + res.stderr).splitlines():
        m = JOB_HEADER.match(line)
        if m:
            job = {"rule": m.group(2), "threads": 1, "resources": {}}
            jobs.append(job)
        elif job is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key == "threads":
                job["threads"] = int(value)
            elif key == "resources":
                job["resources"] = dict(kv.split("=", 1) for kv in value.split(", "))
        else:
            job = None
    assert jobs, f"no jobs in the dry run of {configfile}:\n{res.stdout[-3000:]}"
    return jobs


def test_slurm_profile_names_rules_that_exist(repo):
    profile = yaml.safe_load((repo / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"runtime", "mem_mb"} <= set(profile["default-resources"])
    gpu = {r for r, res in profile["set-resources"].items() if res.get("gpu") == 1}
    assert gpu == GPU_RULES
    for rule in GPU_RULES:
        res = profile["set-resources"][rule]
        assert res["cpus_per_gpu"] == profile["set-threads"][rule], f"{rule}: CPUs allocated != threads used"
    defined = {name for _, name, _ in rule_blocks(repo)}
    missing = (set(profile["set-resources"]) | set(profile["set-threads"]) | DOWNLOAD_RULES | PLOT_RULES) - defined
    assert not missing, f"profiles/slurm names rules the workflow does not have: {sorted(missing)}"


LOCAL_RULES_PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=Path("Snakefile"), workdir=Path("."),
                      config_settings=ConfigSettings(configfiles=[Path(sys.argv[1])]))._workflow
    # What Workflow.is_local decides for a remote executor: `localrules`, and rules that run nothing.
    print(json.dumps(sorted(r.name for r in wf.rules if r.name in wf._localrules or r.norun)))
"""


def local_rules(repo, configfile):
    """Rules the workflow runs on the submitting host under a cluster executor.

    A dry run does not print it (Snakemake shows `localrule` only in real runs), so ask the parsed
    workflow, as Snakemake's scheduler does.
    """
    import json

    res = subprocess.run([sys.executable, "-c", LOCAL_RULES_PROBE, configfile], cwd=repo, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


def check_slurm_jobs(jobs, local):
    for job in jobs:
        rule, res = job["rule"], job["resources"]
        if rule in GPU_RULES:
            assert rule not in local, f"GPU rule {rule} would run on the login node"
            assert res.get("gpu") == "1", f"{rule}: resources {res} ask for no GPU"
            assert int(res["cpus_per_gpu"]) == job["threads"], f"{rule}: {res} vs threads {job['threads']}"
        else:
            assert "gpu" not in res, f"{rule} is not a GPU rule but asks for {res}"
        if rule in DOWNLOAD_RULES or rule == "all":
            assert rule in local, f"{rule} would be submitted to a compute node (no network there)"
        elif rule in PLOT_RULES:
            assert rule in local, f"plotting rule {rule} would wait in the SLURM queue; make it a localrule"
        elif rule not in local:
            assert int(res["runtime"]) > 0 and int(res["mem_mb"]) > 0, f"{rule}: {res}"


def test_slurm_profile_on_the_tiny_study_gives_every_gpu_rule_a_gpu(repo):
    config = "config/tiny/config.yaml"
    jobs = slurm_dry_run_jobs(repo, config)
    check_slurm_jobs(jobs, local_rules(repo, config))
    assert GPU_RULES <= {j["rule"] for j in jobs}, "the tiny study should run every GPU rule"


def test_slurm_profile_on_the_paper_config_keeps_downloads_local(repo):
    config = "config/paper/config.yaml"
    jobs = slurm_dry_run_jobs(repo, config)
    check_slurm_jobs(jobs, local_rules(repo, config))
    rules = {j["rule"] for j in jobs}
    assert DOWNLOAD_RULES <= rules, "the paper config downloads its checkpoints and benchmarks"
    assert {"diversity", "evaluate"} <= rules


def test_the_probe_and_the_domain_matrix_go_first_among_ready_jobs(repo, tmp_path):
    """They are the critical path of a study that selects sets by the matrix: the dry run of the tiny
    study (which selects) gives them, and only them, a priority above the default 0."""
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/tiny/config.yaml", "--dry-run", "--forceall",
           "--cores", "2"]
    res = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    priority, rule = {}, None
    for line in (res.stdout + res.stderr).splitlines():
        if m := JOB_HEADER.match(line):
            rule = m.group(2)
            priority.setdefault(rule, set()).add(0)
        elif rule and line.strip().startswith("priority: "):
            priority[rule] = priority[rule] - {0} | {int(line.split(": ")[1])}
    assert {"train_probe", "domain_distances", "train_checkpoint", "diversity"} <= set(priority)
    first = {r for r, p in priority.items() if p != {0}}
    assert first == {"train_probe", "domain_distances"}, priority
    assert min(priority["train_probe"] | priority["domain_distances"]) > 0
