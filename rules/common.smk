# Shared by every stage: config and sheet validation, paths, and the list of final targets.
import re as _re
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # the divcoeff library, also inside conda envs

from divcoeff.codeversion import rule_code_versions
from divcoeff.fetch.redact import redact, redact_obj
from divcoeff.config import (
    MADE_HERE,
    expand_sheet,
    load_sheet,
    sheet_path,
    validate_config,
)
from divcoeff.settings import OWN_TEST, SCHEMA_PATH, train_set_spec, workflow_settings
from divcoeff.domains import DomainSettings
from divcoeff.selection import check_select_specs

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
OWN = S.own_test
TRAIN_SETS = list(S.train_sets)
# The view a pool-pretrained probe learns from (diversity.probe.weights: pool), when there is one.
PROBE_POOL = "probe-pool" if DIV.probe.pretrained_here else None
# own_test (the published tables): each train set's test view, own-test.<train set>.
OWN_TEST_VIEWS = {OWN.view_name(t): t for t in TRAIN_SETS} if OWN.enabled else {}
VIEWS = (
    TRAIN_SETS
    + [EVAL.name]
    + ([PROBE_POOL] if PROBE_POOL else [])
    + list(OWN_TEST_VIEWS)
)
# A probe with normalisation: dataset reads the train set views' images normalised per benchmark
# (what View.images hands out by default for them), exactly as the published protocol feeds checkpoints.
TRAIN_VIEW_INPUTS = "normalised" if DIV.probe.normalisation == "dataset" else "pixels"
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


def own_test_settings(train_set):
    """The evaluation settings of a train set's own test view: evaluation's scoring, the train set's data."""
    return OWN.evaluation(
        EVAL, train_set, train_set_spec(dict(S.train_sets[train_set]))
    )


def view_spec(view):
    """The config entry a view is built from: a train set, the evaluation set, or a train set's own
    test view. A train set's `level` is a label for the statistics, not part of the data.
    """
    if view == EVAL.name:
        return EVAL.view_spec()
    if view in OWN_TEST_VIEWS:
        return own_test_settings(OWN_TEST_VIEWS[view]).view_spec()
    if view == PROBE_POOL:
        pool = DIV.probe.pool
        benchmarks = list(pool.benchmarks) or list(
            dict.fromkeys(b for t in S.train_sets.values() for b in t["benchmarks"])
        )
        return {
            "kind": "probe",
            "benchmarks": benchmarks,
            "split": pool.split,
            "domains": "all",
        }
    return {
        "kind": "train",
        **{k: v for k, v in S.train_sets[view].items() if k != "level"},
    }


def train_set_level(train_set):
    """The diversity level of a training set: its `level`, else its `domains` (k or all)."""
    spec = S.train_sets[train_set]
    if spec["level"] is not None:
        return str(spec["level"])
    domains = spec["domains"]
    return str(len(domains)) if isinstance(domains, list) else str(domains)


def view_default_inputs(view):
    """What the view's images are by default (View.images): normalised for the train sets a
    dataset-normalised probe reads, else pixels in [0, 1]."""
    return TRAIN_VIEW_INPUTS if view in TRAIN_SETS else "pixels"


def view_inputs(wildcards):
    """The indexed-dataset files of every benchmark a view draws from, named <benchmark>_<file>;
    for the held-out view also the training sets' views it must not overlap (train_<set>, train-meta_<set>).
    """
    files = {}
    for b in view_spec(wildcards.view)["benchmarks"]:
        for kind, path in dataset_files(b).items():
            files[f"{b}_{kind}"] = path
    # A train set that selects its domains by diversity reads its benchmark's domain matrix.
    if wildcards.view in S.train_sets and S.train_sets[wildcards.view]["select"]:
        for b in S.train_sets[wildcards.view]["benchmarks"]:
            files[f"domains_{b}"] = f"results/diversity/{b}-domains.tsv"
    if wildcards.view == EVAL.name:
        for ts in USED_TRAIN_SETS:
            files[f"train_{ts}"] = f"results/views/{ts}.tsv"
            # Its JSON too: View.load checks the table against the hash stored there.
            files[f"train-meta_{ts}"] = f"results/views/{ts}.json"
    return files


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


# --- diversity stage helpers ---
PROBE_FILE = "results/probe/probe.pt"
PROBES_DIR = (
    "probes"  # results/diversity/probes/<probe>/<train_set>.json: diversity.probes
)


def diversity_targets():
    """target -> (train set, probe name or None): <train_set> for diversity.probe, probes/<probe>/<train_set>
    for each of diversity.probes."""
    out = {t: (t, None) for t in TRAIN_SETS}
    out.update(
        {f"{PROBES_DIR}/{p}/{t}": (t, p) for p in DIV.probes for t in TRAIN_SETS}
    )
    return out


DIVERSITY_TARGETS = diversity_targets()


def diversity_inputs(wildcards):
    """A train set's view and diversity episodes, and the probe's checkpoint when the probe is one."""
    train_set, probe_name = DIVERSITY_TARGETS[wildcards.target]
    files = {
        "tsv": f"results/views/{train_set}.tsv",
        "meta": f"results/views/{train_set}.json",
        "episodes": diversity_episodes_file(train_set),
    }
    probe = DIV.for_probe(probe_name).probe
    if probe.kind == "checkpoint":
        name = probe.checkpoint
        if name not in CKPTS.index:
            raise ValueError(
                f"{CONFIG_SOURCE}: diversity.probe.checkpoint: {name!r} is not a checkpoint of "
                f"{S.checkpoint_sheet} (replicates of a row are <row>-r0, <row>-r1, ...)"
            )
        files["probe_checkpoint"] = checkpoint_file(name)
    elif probe.pretrained_here:
        files["probe_checkpoint"] = PROBE_FILE
    return files


# --- domain distances: T tasks of every domain of a benchmark, embedded like the coefficient's ---
DOMAINS = DomainSettings.from_config(config.get("domains"), f"{CONFIG_SOURCE}: domains")
# Benchmarks some train set selects its domains from (train_sets.*.select): their matrix is a
# final target, and those sets' views depend on it.
check_select_specs(S.train_sets, CONFIG_SOURCE)
DOMAIN_BENCHMARKS = sorted(
    {b for t in S.train_sets.values() if t["select"] for b in t["benchmarks"]}
)


def domain_matrix_file(benchmark):
    return f"results/diversity/{benchmark}-domains.tsv"


def domain_probe_input(wildcards):
    """The probe's file, as for the coefficient (diversity_inputs)."""
    probe = DIV.probe
    if probe.kind == "checkpoint":
        return {"probe_checkpoint": checkpoint_file(probe.checkpoint)}
    if probe.pretrained_here:
        return {"probe_checkpoint": PROBE_FILE}
    return {}


# --- report stage helpers ---
def report_metrics():
    """The metrics plotted against diversity; the calibrated loss only where the evaluation computes it."""
    return ["accuracy", "loss"] + (
        ["loss_calibrated"] if EVAL.calibrate_temperature else []
    )


def report_figures():
    """Every scatter plot in every format: results/figures/diversity_vs_<metric>.<png|pdf|svg>."""
    return [
        f"results/figures/diversity_vs_{m}.{fmt}"
        for m in report_metrics()
        for fmt in ("png", "pdf", "svg")
    ]


def report_checkpoints():
    """The checkpoints the summary joins, once per evaluation (the held-out one, and own-test when
    enabled), with their place in the design (level, replicate, role) and the paths of their
    evaluation and diversity JSON (docs/formats.md sections 5 and 6). Passed as a param, so a
    changed sheet redraws the report. Controls have no training set in the statistics (their
    train_set only gave them BatchNorm statistics)."""
    out = []
    for target, (evaluation, name) in EVAL_TARGETS.items():
        row = CKPTS.loc[name]
        control = row["role"] == "control"
        out.append(
            {
                "name": name,
                "evaluation": evaluation,
                "family": row["family"],
                "arch": row["arch"],
                "train_set": "" if control else row["train_set"],
                "level": None if control else train_set_level(row["train_set"]),
                "replicate": (
                    None
                    if row["replicate"] is None or _eval_pd.isna(row["replicate"])
                    else int(row["replicate"])
                ),
                "role": row["role"],
                "eval": f"results/eval/{target}.json",
                "diversity": (
                    None if control else f"results/diversity/{row['train_set']}.json"
                ),
            }
        )
    return out


def report_eval_files(wildcards):
    return [c["eval"] for c in report_checkpoints()]


def report_npz_files(wildcards):
    """The per-episode files of the held-out evaluation (the statistics' subject)."""
    return [
        c["eval"].replace(".json", ".npz")
        for c in report_checkpoints()
        if c["evaluation"] == EVAL.name
    ]


# report.published: relative to the working directory when it exists there, else to the workflow.
PUBLISHED_TABLE = (
    str(sheet_path(S.report.published, workflow.basedir))
    if S.report.published
    else None
)


def report_diversity_files(wildcards):
    """One diversity JSON per training set that some trained checkpoint was trained on."""
    return list(
        dict.fromkeys(c["diversity"] for c in report_checkpoints() if c["diversity"])
    )


# --- benchmarks stage helpers ---

# Benchmarks read from files as distributed (everything but the rendered glyphs).
FETCHED_BENCHMARKS = [
    b for b, spec in S.benchmarks.items() if spec["source"] != "glyphs"
]


def benchmark_file_entries(benchmark):
    """The benchmark's `files:` entries by name; a name used twice is a config error."""
    entries = {}
    for entry in S.benchmarks[benchmark]["files"]:
        if entry["name"] in entries:
            raise ValueError(
                f"{CONFIG_SOURCE}: benchmarks.{benchmark}.files: the name {entry['name']!r} is used "
                "twice; every file needs its own name"
            )
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
BENCHMARK_FILE_NAMES_RE = _alternatives(
    sorted({n for b in FETCHED_BENCHMARKS for n in benchmark_file_entries(b)})
)


# --- fetch stage helpers ---
# Checkpoints the workflow downloads or copies rather than makes.
FETCHED_CHECKPOINTS = [
    n for n in CKPTS.index if CKPTS.loc[n, "source"] not in MADE_HERE
]
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


if TRAINED_CHECKPOINTS and TRAIN_VIEW_INPUTS == "normalised":
    # Training normalises the view's [0, 1] pixels itself (divcoeff.training.common); a view that hands
    # out dataset-normalised images would be normalised twice.
    raise ValueError(
        f"{CONFIG_SOURCE}: diversity.probe.normalisation: dataset makes the train set views hand out "
        f"normalised images, which training would normalise again; sheet rows made here "
        f"({', '.join(TRAINED_CHECKPOINTS[:3])}) need a config with normalisation: imagenet"
    )


# --- evaluate stage helpers ---
import pandas as _eval_pd


# Every checkpoint on the one held-out episode file (results/eval/<name>.json) and, with own_test
# enabled, on its own train set's test episodes (results/eval/own-test/<name>.json).
def eval_targets():
    """target -> (evaluation label, checkpoint)."""
    out = {name: (EVAL.name, name) for name in CKPTS.index}
    if OWN.enabled:
        out.update({f"{OWN_TEST}/{name}": (OWN_TEST, name) for name in CKPTS.index})
    return out


EVAL_TARGETS = eval_targets()
EVAL_TARGETS_RE = _alternatives(EVAL_TARGETS)


def target_evaluation(target):
    """(label, checkpoint name, evaluation settings) of an evaluate target."""
    label, name = EVAL_TARGETS[target]
    settings = (
        EVAL if label == EVAL.name else own_test_settings(CKPTS.loc[name, "train_set"])
    )
    return label, name, settings


def evaluate_inputs(wildcards):
    """The checkpoint, the evaluation's view and its episodes (docs/formats.md sections 2-4)."""
    _, name, settings = target_evaluation(wildcards.target)
    return {
        "checkpoint": checkpoint_file(name),
        "episodes": eval_episodes_file(settings),
        "view_tsv": f"results/views/{settings.name}.tsv",
        "view_json": f"results/views/{settings.name}.json",
    }


def evaluate_params(wildcards):
    """The settings one evaluation of one checkpoint depends on (its family's only)."""
    _, name, settings = target_evaluation(wildcards.target)
    return settings.for_family(CKPTS.loc[name, "family"])


def evaluate_sheet_row(wildcards):
    """What the evaluation needs from the checkpoint's sheet row."""
    _, name, _ = target_evaluation(wildcards.target)
    row = CKPTS.loc[name]
    return {
        "name": name,
        "family": row["family"],
        "train_set": row["train_set"],
        "role": row["role"],
        "allow_pickle": bool(row["allow_pickle"]),
    }
