# Shared by every stage: config and sheet validation, paths, and the list of final targets.
import re as _re
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # the divcoeff library, also inside conda envs

from divcoeff.codeversion import rule_code_versions
from divcoeff.fetch.redact import redact, redact_obj
from divcoeff.config import MADE_HERE, expand_sheet, load_sheet, sheet_path, validate_config
from divcoeff.settings import SCHEMA_PATH, workflow_settings

CONFIG_SOURCE = ", ".join(str(p) for p in workflow.configfiles) or "config"
# Checked against the schema (which fills in every default), naming file and field, before any job.
validate_config(config, SCHEMA_PATH, CONFIG_SOURCE)
# Frozen settings per stage: result settings go into params (a rerun trigger), compute settings
# into threads and resources (profiles may override them; they rerun nothing).
S = workflow_settings(config, CONFIG_SOURCE)
# Per rule, a hash of the library code its script runs: as a param it reruns the rule when that
# code changes (Snakemake's own code trigger sees only the script).
CODE = rule_code_versions()


SHEET = load_sheet(
    sheet_path(S.checkpoint_sheet, workflow.basedir),
    Path(workflow.basedir, "config/schemas/checkpoints.schema.yaml"),
    config,
)
# One row per checkpoint: a train/init sheet row stands for its replicates <name>-r<k>.
CKPTS = expand_sheet(SHEET, S.training.replicates.as_dict(), S.checkpoint_sheet)
# Training sets some checkpoint was trained on (or took its BatchNorm statistics from).
USED_TRAIN_SETS = sorted(set(CKPTS["train_set"]))

EVAL = S.evaluation
DIV = S.diversity
TRAIN_SETS = list(S.train_sets)
# The view a pool-pretrained probe learns from (diversity.probe.weights: pool), when there is one.
PROBE_POOL = "probe-pool" if DIV.probe.pretrained_here else None
VIEWS = TRAIN_SETS + [EVAL.name] + ([PROBE_POOL] if PROBE_POOL else [])
# Final targets; each stage's file adds its own.
ALL_TARGETS = []


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


def view_spec(view):
    """The config entry a view is built from: a train set, or the evaluation set. A train set's
    `level` is a label for the statistics, not part of the data."""
    if view == EVAL.name:
        return EVAL.view_spec()
    if view == PROBE_POOL:
        pool = DIV.probe.pool
        benchmarks = list(pool.benchmarks) or list(dict.fromkeys(b for t in S.train_sets.values()
                                                                for b in t["benchmarks"]))
        return {"kind": "probe", "benchmarks": benchmarks, "split": pool.split, "domains": "all"}
    return {"kind": "train", **{k: v for k, v in S.train_sets[view].items() if k != "level"}}


def train_set_level(train_set):
    """The diversity level of a training set: its `level`, else its `domains` (k or all)."""
    spec = S.train_sets[train_set]
    if spec["level"] is not None:
        return str(spec["level"])
    domains = spec["domains"]
    return str(len(domains)) if isinstance(domains, list) else str(domains)


def view_inputs(wildcards):
    """The indexed-dataset files of every benchmark a view draws from, named <benchmark>_<file>;
    for the held-out view also the training sets' views it must not overlap (train_<set>)."""
    files = {}
    for b in view_spec(wildcards.view)["benchmarks"]:
        for kind, path in dataset_files(b).items():
            files[f"{b}_{kind}"] = path
    if wildcards.view == EVAL.name:
        for ts in USED_TRAIN_SETS:
            files[f"train_{ts}"] = f"results/views/{ts}.tsv"
    return files


def episodes_file(view, ways, shots, queries, n, seed):
    return f"results/episodes/{view}/{ways}way-{shots}shot-{queries}query-{n}x-seed{seed}.json"


def eval_episodes_file():
    e = EVAL
    return episodes_file(e.name, e.ways, e.shots, e.queries, e.episodes, e.seed)


def diversity_episodes_file(train_set):
    d = DIV
    return episodes_file(train_set, d.ways, d.shots, d.queries, d.tasks, d.seed)


def checkpoint_file(name):
    """Checkpoints made here (trained, or the untrained control) are results; downloaded ones are resources."""
    if CKPTS.loc[name, "source"] in MADE_HERE:
        return f"results/checkpoints/{name}.pt"
    return f"resources/checkpoints/{name}.pt"


# --- diversity stage helpers ---
PROBE_FILE = "results/probe/probe.pt"

def diversity_inputs(wildcards):
    """A train set's view and diversity episodes, and the probe's checkpoint when the probe is one."""
    files = {
        "tsv": f"results/views/{wildcards.train_set}.tsv",
        "meta": f"results/views/{wildcards.train_set}.json",
        "episodes": diversity_episodes_file(wildcards.train_set),
    }
    probe = DIV.probe
    if probe.kind == "checkpoint":
        name = probe.checkpoint
        if name not in CKPTS.index:
            raise ValueError(f"{CONFIG_SOURCE}: diversity.probe.checkpoint: {name!r} is not a checkpoint of "
                             f"{S.checkpoint_sheet} (replicates of a row are <row>-r0, <row>-r1, ...)")
        files["probe_checkpoint"] = checkpoint_file(name)
    elif DIV.probe.pretrained_here:
        files["probe_checkpoint"] = PROBE_FILE
    return files


# --- report stage helpers ---
def report_metrics():
    """The metrics plotted against diversity; the calibrated loss only where the evaluation computes it."""
    return ["accuracy", "loss"] + (["loss_calibrated"] if EVAL.calibrate_temperature else [])


def report_figures():
    """Every scatter plot in every format: results/figures/diversity_vs_<metric>.<png|pdf|svg>."""
    return [f"results/figures/diversity_vs_{m}.{fmt}" for m in report_metrics() for fmt in ("png", "pdf", "svg")]


def report_checkpoints():
    """The checkpoints the summary joins, with their place in the design (level, replicate, role)
    and the paths of their evaluation and diversity JSON (docs/formats.md sections 5 and 6).
    Passed as a param, so a changed sheet redraws the report. Controls have no training set
    in the statistics (their train_set only gave them BatchNorm statistics)."""
    out = []
    for name, row in CKPTS.iterrows():
        control = row["role"] == "control"
        out.append({
            "name": name,
            "family": row["family"],
            "arch": row["arch"],
            "train_set": "" if control else row["train_set"],
            "level": None if control else train_set_level(row["train_set"]),
            "replicate": None if row["replicate"] is None or _eval_pd.isna(row["replicate"]) else int(row["replicate"]),
            "role": row["role"],
            "eval": f"results/eval/{name}.json",
            "diversity": None if control else f"results/diversity/{row['train_set']}.json",
        })
    return out


def report_eval_files(wildcards):
    return [c["eval"] for c in report_checkpoints()]


def report_npz_files(wildcards):
    return [c["eval"].replace(".json", ".npz") for c in report_checkpoints()]


def report_diversity_files(wildcards):
    """One diversity JSON per training set that some trained checkpoint was trained on."""
    return list(dict.fromkeys(c["diversity"] for c in report_checkpoints() if c["diversity"]))


# --- benchmarks stage helpers ---

# Benchmarks read from files as distributed (everything but the rendered glyphs).
FETCHED_BENCHMARKS = [b for b, spec in S.benchmarks.items() if spec["source"] != "glyphs"]


def benchmark_file_entries(benchmark):
    """The benchmark's `files:` entries by name; a name used twice is a config error."""
    entries = {}
    for entry in S.benchmarks[benchmark]["files"]:
        if entry["name"] in entries:
            raise ValueError(f"{CONFIG_SOURCE}: benchmarks.{benchmark}.files: the name {entry['name']!r} is used "
                             "twice; every file needs its own name")
        entries[entry["name"]] = entry
    return entries


def benchmark_file(benchmark, name):
    return f"resources/benchmarks/{benchmark}/{name}"


def benchmark_provenance(benchmark, name):
    return f"resources/benchmarks/{benchmark}/{name}.provenance.json"


def benchmark_inputs(wildcards):
    """The fetched files of a benchmark and their provenance JSONs, in config order."""
    names = list(benchmark_file_entries(wildcards.benchmark))
    return {
        "files": [benchmark_file(wildcards.benchmark, n) for n in names],
        "provenance": [benchmark_provenance(wildcards.benchmark, n) for n in names],
    }


FETCHED_BENCHMARKS_RE = _alternatives(FETCHED_BENCHMARKS)
BENCHMARK_FILE_NAMES_RE = _alternatives(sorted({n for b in FETCHED_BENCHMARKS for n in benchmark_file_entries(b)}))


# --- fetch stage helpers ---
# Checkpoints the workflow downloads or copies rather than makes.
FETCHED_CHECKPOINTS = [n for n in CKPTS.index if CKPTS.loc[n, "source"] not in MADE_HERE]
FETCHED_CHECKPOINTS_RE = _alternatives(FETCHED_CHECKPOINTS)


def fetched_checkpoint_input(wildcards):
    """A `file` row's local path is an input: editing that file makes the copy out of date."""
    if CKPTS.loc[wildcards.name, "source"] == "file":
        return {"local": CKPTS.loc[wildcards.name, "uri"]}
    return {}


# --- train stage helpers ---
# Checkpoints the workflow makes itself: trained (source train) or untrained controls (init).
TRAINED_CHECKPOINTS = [n for n in CKPTS.index if CKPTS.loc[n, "source"] in MADE_HERE]
TRAINED_CHECKPOINTS_RE = _alternatives(TRAINED_CHECKPOINTS)


def train_view_files(wildcards):
    """The view of the checkpoint's training set (docs/formats.md section 2)."""
    view = CKPTS.loc[wildcards.name, "train_set"]
    return {"tsv": f"results/views/{view}.tsv", "meta": f"results/views/{view}.json"}


# --- evaluate stage helpers ---
import pandas as _eval_pd

# Every sheet row is evaluated on the one held-out episode file.
EVALUATED_CHECKPOINTS_RE = _alternatives(CKPTS.index)


def evaluate_inputs(wildcards):
    """The checkpoint, the held-out view and its evaluation episodes (docs/formats.md sections 2-4)."""
    return {
        "checkpoint": checkpoint_file(wildcards.name),
        "episodes": eval_episodes_file(),
        "view_tsv": f"results/views/{EVAL.name}.tsv",
        "view_json": f"results/views/{EVAL.name}.json",
    }


def evaluate_sheet_row(wildcards):
    """What the evaluation needs from the checkpoint's sheet row."""
    row = CKPTS.loc[wildcards.name]
    return {
        "name": wildcards.name,
        "family": row["family"],
        "train_set": row["train_set"],
        "role": row["role"],
        "allow_pickle": bool(row["allow_pickle"]),
    }
