# Shared by every stage: config and sheet validation, the settings, and the paths one stage
# writes and another reads. Each stage's own helpers are in rules/helpers/<stage>.smk.
import re as _re
import sys
from pathlib import Path

# This workflow's own folder: workflow.basedir is the folder of the *using* workflow when this one
# runs as a Snakemake module. None for a remote module (snakedeploy's github(...)), whose divcoeff
# library comes installed (pip) and whose schemas come with it as package data.
_HERE = workflow.current_basedir
WORKFLOW_DIR = (
    Path(_HERE.get_path_or_uri(secret_free=True)).parent if _HERE.is_local else None
)
if WORKFLOW_DIR is not None:
    # the divcoeff library, also inside conda envs
    sys.path.insert(0, str(WORKFLOW_DIR))

from divcoeff.codeversion import rule_code_versions
from divcoeff.fetch.redact import redact, redact_obj
from divcoeff.config import (
    MADE_HERE,
    expand_sheet,
    load_sheet,
    sheet_path,
    validate_config,
)
from divcoeff.settings import (
    OWN_TEST,
    SCHEMA_PATH,
    SHEET_SCHEMA_PATH,
    train_set_spec,
    workflow_settings,
)

CONFIG_SOURCE = ", ".join(str(p) for p in workflow.configfiles) or "config"
# Checked against the schema (which fills in every default), naming file and field, before any job.
validate_config(config, SCHEMA_PATH, CONFIG_SOURCE)
# Frozen settings per stage: result settings go into params (a rerun trigger), compute settings
# into threads and resources (profiles may override them; they rerun nothing).
S = workflow_settings(config, CONFIG_SOURCE)
# Per rule, a hash of the library code its script runs: as a param it reruns the rule when that
# code changes (Snakemake's own code trigger sees only the script).
CODE = rule_code_versions()


# The user's sheet, from the working directory (else the embedded one, under WORKFLOW_DIR).
SHEET = load_sheet(
    sheet_path(S.checkpoint_sheet, WORKFLOW_DIR), SHEET_SCHEMA_PATH, config
)
# One row per checkpoint: a train/init sheet row stands for its replicates <name>-r<k>.
CKPTS = expand_sheet(SHEET, S.training.replicates.as_dict(), S.checkpoint_sheet)
# Training sets some checkpoint was trained on (or took its BatchNorm statistics from).
USED_TRAIN_SETS = sorted(set(CKPTS["train_set"]))

EVAL = S.evaluation
DIV = S.diversity
OWN = S.own_test
TRAIN_SETS = list(S.train_sets)
# The view a pool-pretrained probe learns from (diversity.probe.weights: pool), when there is one.
PROBE_POOL = "probe-pool" if DIV.probe.pretrained_here else None
# own_test (the published tables): each train set's test view, own-test.<train set>.
OWN_TEST_VIEWS = {OWN.view_name(t): t for t in TRAIN_SETS} if OWN.enabled else {}


wildcard_constraints:
    benchmark=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    view=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    name=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    train_set=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


def _alternatives(names):
    """A wildcard regex matching exactly these names (and nothing when there are none)."""
    return "|".join(_re.escape(n) for n in names) or "^$"


def dataset_files(benchmark):
    """The four files of an indexed dataset (docs/formats.md section 1)."""
    d = f"results/data/{benchmark}"
    return {
        "images": f"{d}/images.npy",
        "index": f"{d}/index.tsv",
        "classes": f"{d}/classes.tsv",
        "manifest": f"{d}/manifest.json",
    }


def own_test_settings(train_set):
    """The evaluation settings of a train set's own test view: evaluation's scoring, the train set's data."""
    return OWN.evaluation(
        EVAL, train_set, train_set_spec(dict(S.train_sets[train_set]))
    )


def episodes_file(view, ways, shots, queries, n, seed):
    return f"results/episodes/{view}/{ways}way-{shots}shot-{queries}query-{n}x-seed{seed}.json"


def eval_episodes_file(settings=None):
    e = settings or EVAL
    return episodes_file(e.name, e.ways, e.shots, e.queries, e.episodes, e.seed)


def diversity_episodes_file(train_set):
    d = DIV
    return episodes_file(train_set, d.ways, d.shots, d.queries, d.tasks, d.seed)


def checkpoint_file(name):
    """Checkpoints made here (trained, or the untrained control) are results; downloaded ones are resources."""
    if CKPTS.loc[name, "source"] in MADE_HERE:
        return f"results/checkpoints/{name}.pt"
    return f"resources/checkpoints/{name}.pt"


# The probe the workflow pretrains itself (diversity.probe.weights: pool): one file, cached like any output.
PROBE_FILE = "results/probe/probe.pt"
