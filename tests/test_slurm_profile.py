"""No `slurm_extra` in the SLURM profile, its README or a rule carries an sbatch option that
snakemake-executor-plugin-slurm sets itself: the plugin refuses such a job when it submits it,
long after the run started. The refused options come from the installed plugin."""
import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

PROFILE = "profiles/slurm/config.yaml"
README = "profiles/slurm/README.md"

# The options snakemake-executor-plugin-slurm 2.8.0 refuses in slurm_extra
# (validation.get_forbidden_slurm_options), as (long, short) spellings. Used only when the plugin
# is not installed; test_the_fallback_list_is_the_installed_plugins keeps it current.
FALLBACK_OPTIONS = [
    ("--job-name", "-J"), ("--output", "-o"), ("--error", "-e"), ("--parsable", None),
    ("--export", None), ("--comment", None), ("--workdir", "-D"), ("--account", "-A"),
    ("--partition", "-p"), ("--mem", None), ("--mem-per-cpu", None), ("--ntasks", "-n"),
    ("--ntasks-per-gpu", None), ("--cpus-per-task", "-c"), ("--cpus-per-gpu", None),
    ("--time", "-t"), ("--constraint", "-C"), ("--qos", None), ("--nodes", "-N"),
    ("--clusters", None), ("--gres", None), ("--gpus", None),
]


def _fallback_patterns():
    return {"|".join([re.escape(long) + r"(?:[=\s]|$)"] + ([re.escape(short) + r"\s"] if short else [])): long
            for long, short in FALLBACK_OPTIONS}


def _probes(option):
    """Ways to write `option` with a value in slurm_extra."""
    return [f"{option}=x", f"{option} x"] if option.startswith("--") else [f"{option} x"]


def managed_options():
    """{regex: what} of the options the plugin sets itself, from the installed plugin if any."""
    try:
        from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options
    except ImportError:
        return _fallback_patterns()
    return get_forbidden_slurm_options()


def refused(slurm_extra: str) -> list[str]:
    """What the plugin would refuse in this slurm_extra (empty: it submits the job)."""
    return [what for pattern, what in managed_options().items() if re.search(pattern, slurm_extra)]


def plugin_refuses(slurm_extra: str) -> bool | None:
    """The plugin's own check at submission, on a stand-in job; None without the plugin."""
    try:
        from snakemake_executor_plugin_slurm.validation import validate_slurm_extra
    except ImportError:
        return None
    try:
        validate_slurm_extra(SimpleNamespace(resources=SimpleNamespace(slurm_extra=slurm_extra)))
    except Exception:  # WorkflowError
        return True
    return False


def check(slurm_extra: str, where: str):
    bad = refused(slurm_extra)
    assert not bad, (f"{where}: slurm_extra {slurm_extra!r} carries options the SLURM plugin sets itself "
                     f"({', '.join(bad)}); use the resource or plugin option for it (profiles/slurm/README.md)")
    assert plugin_refuses(slurm_extra) in (None, False), f"{where}: the plugin refuses slurm_extra {slurm_extra!r}"


# --- the checker itself ---

def test_the_check_refuses_what_the_profile_advised_before_and_accepts_other_options():
    assert refused("'--qos=gpu --constraint=80gb'")          # the old advice of this profile
    assert refused("--gres=gpu:1") and refused("-p gpu") and refused("--mem 4G") and refused("-C a100")
    assert not refused("--nice=10 --mail-type=FAIL") and not refused("--time-min=30")
    if plugin_refuses("x") is not None:
        assert plugin_refuses("--qos=gpu --constraint=80gb") and not plugin_refuses("--nice=10")


def test_the_fallback_list_is_the_installed_plugins():
    plugin = pytest.importorskip("snakemake_executor_plugin_slurm.validation")
    patterns = plugin.get_forbidden_slurm_options()
    probes = {opt: _probes(opt) for long, short in FALLBACK_OPTIONS for opt in (long, short) if opt}
    for opt, ps in probes.items():
        assert any(re.search(p, s) for p in patterns for s in ps), f"the plugin no longer refuses {opt}"
    for pattern, what in patterns.items():
        assert any(re.search(pattern, s) for ps in probes.values() for s in ps), \
            f"the plugin refuses {what} ({pattern}): add it to FALLBACK_OPTIONS and to {README}"


def test_the_readme_lists_exactly_the_options_the_plugin_refuses(repo):
    """profiles/slurm/README.md names the refused options; they must be the plugin's."""
    text = (repo / README).read_text()
    m = re.search(r"these are:(.*?)\(`snakemake_executor_plugin_slurm\.validation", text, re.S)
    assert m, f"{README}: the list of refused options is gone"
    listed = re.findall(r"`(-[-\w]+)`", m.group(1))
    assert listed
    patterns = managed_options()
    for opt in listed:
        assert any(re.search(p, s) for p in patterns for s in _probes(opt)), f"{README} lists {opt}, not refused"
    for pattern, what in patterns.items():
        assert any(re.search(pattern, s) for opt in listed for s in _probes(opt)), \
            f"{README} does not list {what} ({pattern}), which the plugin refuses"


# --- what the repository advises and sets ---

def _slurm_extra_in_text(text):
    """Every `slurm_extra: <YAML scalar>` written in a file, commented out or in prose included."""
    for m in re.finditer(r"""slurm_extra:\s*("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')""", text):
        yield yaml.safe_load(m.group(1))


def test_no_slurm_extra_in_the_profile_or_its_readme_carries_a_managed_option(repo):
    profile = yaml.safe_load((repo / PROFILE).read_text())
    seen = 0
    sections = {"default-resources": profile.get("default-resources") or {}}
    sections.update({f"set-resources.{r}": res for r, res in (profile.get("set-resources") or {}).items()})
    for where, res in sections.items():
        if "slurm_extra" in res:
            check(str(res["slurm_extra"]), f"{PROFILE} {where}")
            seen += 1
    for path in (PROFILE, README):
        for value in _slurm_extra_in_text((repo / path).read_text()):
            check(str(value), path)
            seen += 1
    assert seen, f"no slurm_extra example left in {PROFILE} or {README}"


RESOURCES_PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=Path("Snakefile"), workdir=Path("."),
                      config_settings=ConfigSettings(configfiles=[Path(sys.argv[1])]))._workflow
    def value(v):  # a str, or (Snakemake 9) a Resource holding a str or a function of the job
        if hasattr(v, "is_evaluable"):
            if v.is_evaluable():
                return "<callable>"
            v = v.value
        return v if v is None or isinstance(v, str) else "<callable>"
    print(json.dumps({r.name: value(r.resources["slurm_extra"]) if "slurm_extra" in r.resources else None
                      for r in wf.rules}))
"""


@pytest.mark.parametrize("configfile", ["config/tiny/config.yaml", "config/paper/config.yaml"])
def test_no_rule_sets_a_slurm_extra_with_a_managed_option(repo, configfile):
    res = subprocess.run([sys.executable, "-c", RESOURCES_PROBE, configfile], cwd=repo, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    extras = json.loads(res.stdout.strip().splitlines()[-1])
    assert extras, "no rules parsed"
    for rule, value in extras.items():
        if value is None:
            continue
        assert value != "<callable>", f"rule {rule}: slurm_extra is computed per job; this test cannot check it"
        check(value, f"rule {rule} ({configfile})")
