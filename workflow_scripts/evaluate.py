"""Rule evaluate: one checkpoint on one evaluation's episodes -> results/eval/[own-test/]<name>.json + .npz.

snakemake.params.row: the checkpoint's sheet row; .evaluation: the evaluation settings of its family;
.label: the evaluation's name in the summary (the held-out view's name, or own-test); .master_seed.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.checkpoints import final_training_metrics, load_checkpoint
from divcoeff.data.episodes import load_episodes
from divcoeff.data.views import View
from divcoeff.device import pick_device, set_threads
from divcoeff.fewshot import evaluate_checkpoint, write_results
from divcoeff.logs import log_to
from divcoeff.settings import EvaluateCompute, EvaluationSettings

with log_to(snakemake.log[0]) as log:
    row = snakemake.params.row
    settings = EvaluationSettings.from_config(snakemake.params.evaluation)
    compute = EvaluateCompute.from_job(snakemake.resources, snakemake.threads)
    set_threads(compute.threads)
    device = pick_device(compute.device)
    view = View.load(snakemake.input.view_tsv)
    episodes = load_episodes(snakemake.input.episodes, view)
    ckpt = load_checkpoint(snakemake.input.checkpoint, family=row["family"], allow_pickle=row["allow_pickle"])
    result = evaluate_checkpoint(ckpt, view, episodes, settings, compute, device=device, name=row["name"],
                                 master_seed=snakemake.params.master_seed)
    control = row["role"] == "control"
    header = {
        "checkpoint": row["name"],
        "evaluation": snakemake.params.label,
        "role": row["role"],
        # A control has no training set in the statistics; its BatchNorm statistics came from one.
        "train_set": "" if control else row["train_set"],
        **({"bn_statistics_from": row["train_set"]} if control else {}),
        "training": final_training_metrics(ckpt.meta),
        "checkpoint_file": snakemake.input.checkpoint,
        "episodes": snakemake.input.episodes,
        "view": view.name,
        "view_sha256": view.sha256,
        # Data the held-out view shares with this checkpoint's training set (evaluation.allow_overlap).
        "overlap": view.meta.get("overlap", {}).get(row["train_set"]),
        "n_episodes": episodes.n_episodes,
        "ways": episodes.ways,
        "shots": episodes.shots,
        "queries": episodes.queries,
        "seed": episodes.meta.get("seed"),
        "settings": dict(snakemake.params.evaluation),
        "code_version": snakemake.params.code,
    }
    doc = write_results(snakemake.output.json, snakemake.output.npz, result, header)
    for method, m in doc["methods"].items():
        cal = m["loss_calibrated"]["mean"] if m["loss_calibrated"] else float("nan")
        log.info("%s %s (%s): accuracy %.4f +- %.4f, loss %.4f, calibrated loss %.4f", row["name"], method,
                 snakemake.params.label,
                 m["accuracy"]["mean"], m["accuracy"]["ci95"], m["loss"]["mean"], cal)
