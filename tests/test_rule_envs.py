"""Each rule's script imports with only the packages of its conda env.

`snakemake --use-conda` runs a rule in the env its `conda:` names; a module the env lacks fails
there and nowhere else (`make run` uses the one .venv that has everything). So each script's
top-level imports run here in a fresh interpreter in which the heavy packages its env does not
list (torch, torchvision, scikit-learn, scipy, matplotlib, requests, huggingface_hub) cannot be
imported.
"""
import ast
import re
import subprocess
import sys

import yaml

# import name -> conda package name, for the packages whose absence we can simulate
HEAVY = {"torch": "pytorch", "torchvision": "torchvision", "sklearn": "scikit-learn", "scipy": "scipy",
         "matplotlib": "matplotlib-base", "requests": "requests", "huggingface_hub": "huggingface_hub"}

BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(",")) - {""}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in this rule's conda env)")
sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[2])
exec(compile(sys.argv[3], sys.argv[4], "exec"), {"__name__": "imports_only"})
"""


def env_packages(path) -> set[str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    names = set()
    for d in deps:
        if isinstance(d, str):
            names.add(re.split(r"[=<>\s]", d, maxsplit=1)[0])
        elif isinstance(d, dict):
            names.update(re.split(r"[=<>\s\[]", p, maxsplit=1)[0] for p in d.get("pip", []))
    return names


def rules_with_scripts(repo):
    for smk in sorted((repo / "rules").glob("*.smk")):
        for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", smk.read_text(), re.M):
            env = re.search(r"^\s+conda:\s*\n\s+\"\.\./envs/([\w.-]+)\"", m.group(2), re.M)
            script = re.search(r"^\s+script:\s*\n\s+\"\.\./(workflow_scripts/[\w.-]+)\"", m.group(2), re.M)
            if env and script:
                yield m.group(1), repo / "envs" / env.group(1), repo / script.group(1)


def top_level_imports(script) -> str:
    """The script's module-level import statements (not those inside functions or blocks)."""
    tree = ast.parse(script.read_text())
    return "\n".join(ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))


def test_every_rule_script_imports_within_its_conda_env(repo):
    checked, failures = 0, []
    for rule, env, script in rules_with_scripts(repo):
        have = env_packages(env)
        blocked = sorted(mod for mod, pkg in HEAVY.items() if pkg not in have)
        code = top_level_imports(script)
        r = subprocess.run([sys.executable, "-c", BLOCKER, ",".join(blocked), str(repo), code, str(script)],
                           capture_output=True, text=True, cwd=repo)
        checked += 1
        if r.returncode != 0:
            failures.append(f"rule {rule} ({script.name}, env {env.name}, without {', '.join(blocked)}):\n"
                            + r.stderr.strip().splitlines()[-1])
    assert checked >= 15, f"only {checked} rules with a script and a conda env found"
    assert not failures, "\n".join(failures)


def test_the_blocker_catches_a_missing_package(repo):
    """The check above can fail: a script importing torch under an env without it is refused."""
    r = subprocess.run([sys.executable, "-c", BLOCKER, "torch", str(repo), "import divcoeff.images", "x.py"],
                       capture_output=True, text=True, cwd=repo)
    assert r.returncode != 0 and "not in this rule's conda env" in r.stderr
