# Shared by every stage: config and sheet validation, paths, and the list of final targets.
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # the divcoeff library, also inside conda envs

from divcoeff.config import load_sheet, validate_config

CONFIG_SOURCE = ", ".join(str(p) for p in workflow.configfiles) or "config"
# Our check names file and field; snakemake's validate then fills in the schema's defaults.
validate_config(config, Path(workflow.basedir, "config/schemas/config.schema.yaml"), CONFIG_SOURCE)
validate(config, "../config/schemas/config.schema.yaml")
def _in_workflow(path):
    """A relative path from the config: as given when it exists (run from the workflow folder), else under it."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else Path(workflow.basedir, p)


SHEET = load_sheet(
    _in_workflow(config["checkpoint_sheet"]), Path(workflow.basedir, "config/schemas/checkpoints.schema.yaml"), config
)

EVAL = config["evaluation"]
DIV = config["diversity"]
TRAIN_SETS = list(config["train_sets"])
VIEWS = TRAIN_SETS + [EVAL["name"]]
# Final targets; each stage's file adds its own.
ALL_TARGETS = []


wildcard_constraints:
    benchmark=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    view=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    name=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    train_set=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


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
    """The config entry a view is built from: a train set, or the evaluation set."""
    if view == EVAL["name"]:
        keys = ("benchmarks", "split", "mixture_over", "image_size")
        return {"kind": "eval", **{k: EVAL[k] for k in keys if k in EVAL}}
    return {"kind": "train", **config["train_sets"][view]}


def view_inputs(wildcards):
    """The indexed-dataset files of every benchmark a view draws from, named <benchmark>_<file>."""
    files = {}
    for b in view_spec(wildcards.view)["benchmarks"]:
        for kind, path in dataset_files(b).items():
            files[f"{b}_{kind}"] = path
    return files


def episodes_file(view, ways, shots, queries, n, seed):
    return f"results/episodes/{view}/{ways}way-{shots}shot-{queries}query-{n}x-seed{seed}.json"


def eval_episodes_file():
    e = EVAL
    return episodes_file(e["name"], e["ways"], e["shots"], e["queries"], e["episodes"], e["seed"])


def diversity_episodes_file(train_set):
    d = DIV
    return episodes_file(train_set, d["ways"], d["shots"], d["queries"], d["tasks"], d["seed"])


def checkpoint_file(name):
    """Trained checkpoints are results; downloaded ones are resources."""
    if SHEET.loc[name, "source"] == "train":
        return f"results/checkpoints/{name}.pt"
    return f"resources/checkpoints/{name}.pt"


# --- report stage helpers ---
def report_metrics():
    """The metrics plotted against diversity; the calibrated loss only where the evaluation computes it."""
    return ["accuracy", "loss"] + (["loss_calibrated"] if EVAL["calibrate_temperature"] else [])


def report_figures():
    """Every scatter plot in every format: results/figures/diversity_vs_<metric>.<png|pdf|svg>."""
    return [f"results/figures/diversity_vs_{m}.{fmt}" for m in report_metrics() for fmt in ("png", "pdf", "svg")]


def report_checkpoints():
    """The sheet rows the summary joins, each with the paths of its evaluation and diversity JSON
    (docs/formats.md sections 5 and 6). Passed as a param, so a changed sheet redraws the report."""
    return [
        {
            "name": name,
            "family": row["family"],
            "arch": row["arch"],
            "train_set": row["train_set"],
            "eval": f"results/eval/{name}.json",
            "diversity": f"results/diversity/{row['train_set']}.json",
        }
        for name, row in SHEET.iterrows()
    ]


def report_eval_files(wildcards):
    return [c["eval"] for c in report_checkpoints()]


def report_diversity_files(wildcards):
    """One diversity JSON per training set that some checkpoint was trained on."""
    return list(dict.fromkeys(c["diversity"] for c in report_checkpoints()))
