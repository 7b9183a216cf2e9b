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
        for line in out.group(1).strip().splitlines():
            line = line.strip()
            assert line.startswith("**") or re.match(r"^\w+=", line), f"{where}: unnamed output {line!r}"
    assert seen >= 4


def test_snakemake_lint_is_clean(repo):
    out = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=repo, capture_output=True, text=True,
                         timeout=300)
    assert "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr, out.stdout + out.stderr
