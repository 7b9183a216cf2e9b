"""What another config would cost on this CPU, estimated from a finished run's benchmark files.

Reads the Snakemake benchmark files of a finished run of one config (by default the embedded
study, `make run`), takes each rule's mean seconds per job, scales it by the work a job of the
other config does (training: steps x width^2; evaluation: episodes (+ MAML calibration
adaptations) x width^2; diversity: tasks; the domain matrix: tasks a script; the probe: steps x batch), and multiplies by the
number of jobs the other config plans. Widths enter squared because the ResNet-12's
convolutions dominate and their cost grows with in x out channels; everything else (job start,
data loading) is scaled along with it, so small jobs are overestimated. It is an estimate for
planning, not a measurement.

    .venv/bin/python bench/estimate_full.py                                  # glyphs-full vs the embedded run
    .venv/bin/python bench/estimate_full.py --run . --base config/config.yaml --target config/glyphs-full/config.yaml
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from divcoeff.config import expand_sheet, load_sheet, sheet_path, validate_config  # noqa: E402
from divcoeff.settings import SCHEMA_PATH, workflow_settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def load(config_path: Path):
    config = yaml.safe_load(config_path.read_text())
    validate_config(config, SCHEMA_PATH, str(config_path))
    settings = workflow_settings(config, str(config_path))
    sheet = load_sheet(sheet_path(settings.checkpoint_sheet, REPO), REPO / "config/schemas/checkpoints.schema.yaml",
                       config)
    return settings, expand_sheet(sheet, settings.training.replicates.as_dict())


def benchmarked_jobs(run: Path):
    """(kind, wall seconds, checkpoints made) of every benchmarked job of a finished run: kind is
    train-pt, train-maml, train-control, eval-pt, ..., diversity, probe or data; a training group's
    job (training.replicate_group) made the checkpoints in its folder, any other job counts 1."""
    for path in sorted((run / "benchmarks").glob("*/*.tsv")):
        stage, name = path.parent.name, path.stem
        family = "maml" if name.startswith("maml") else "control" if name.startswith("untrained") else "pt"
        kind = {"train": f"train-{family}", "eval": f"eval-{family}"}.get(stage)
        if stage == "diversity":
            kind = {"train_probe": "probe"}.get(name, "domains" if name.startswith("domain_distances") else "diversity")
        elif stage == "data":
            kind = "data"
        seconds = float(path.read_text().splitlines()[1].split("\t")[0])
        group = run / "results/checkpoints/groups" / name
        made = max(1, len(list(group.glob("*.pt")))) if stage == "train" and group.is_dir() else 1
        yield kind or stage, seconds, made


def job_seconds(run: Path) -> dict[str, list[float]]:
    """Seconds per checkpoint of every benchmarked job, by kind (see benchmarked_jobs).
    Training is scaled by the step cap: runs that stop earlier by training.convergence make it an
    overestimate."""
    kinds: dict[str, list[float]] = {}
    for kind, seconds, made in benchmarked_jobs(run):
        kinds.setdefault(kind, []).append(seconds / made)
    return kinds


def work(settings, kind: str) -> float:
    """Relative work of one job of `kind` under `settings` (same units for both configs)."""
    t, e, d = settings.training, settings.evaluation, settings.diversity
    width2 = (t.widths[-1] / 96.0) ** 2
    if kind.startswith("train-"):
        return (t.steps if kind != "train-control" else 1) * width2
    if kind == "eval-maml":
        return (e.episodes + e.maml.calibration_episodes * e.calibration_folds) * width2
    if kind.startswith("eval-"):
        return e.episodes * width2
    if kind == "diversity":
        return d.tasks + d.noise_floor_tasks
    if kind == "domains":  # the domain matrix: domains.tasks tasks of every script
        return settings.domains.tasks
    if kind == "probe":
        return d.probe.pool.steps * d.probe.pool.batch_size
    return 1.0


def jobs(settings, checkpoints, kind: str) -> int:
    families = {"pt": "pt", "maml": "maml", "control": "control"}
    if kind.startswith(("train-", "eval-")):
        fam = families[kind.split("-", 1)[1]]
        if fam == "control":
            return int((checkpoints["role"] == "control").sum())
        return int(((checkpoints["family"] == fam) & (checkpoints["role"] == "trained")).sum())
    if kind == "diversity":
        return len(settings.train_sets)
    return 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=".", help="folder of the finished run (holds benchmarks/)")
    ap.add_argument("--base", default="config/config.yaml", help="the config of that run")
    ap.add_argument("--target", default="config/glyphs-full/config.yaml", help="the config to estimate")
    args = ap.parse_args()
    measured = job_seconds(Path(args.run))
    if not measured:
        sys.exit(f"no benchmark files under {Path(args.run) / 'benchmarks'}: run the base config first")
    base, base_ckpts = load(Path(args.base))
    target, target_ckpts = load(Path(args.target))
    total = 0.0
    print(f"{'kind':15s} {'measured s/job':>15s} {'jobs':>6s} {'est. s/job':>11s} {'est. CPU h':>11s}")
    for kind, secs in sorted(measured.items()):
        per_job = statistics.mean(secs) * work(target, kind) / work(base, kind)
        n = jobs(target, target_ckpts, kind)
        total += per_job * n
        print(f"{kind:15s} {statistics.mean(secs):15.1f} {n:6d} {per_job:11.1f} {per_job * n / 3600:11.2f}")
    print(f"total: {total / 3600:.1f} CPU-hours on one core of this machine for {args.target} "
          f"({len(target_ckpts)} checkpoints, {len(target.train_sets)} training sets)")


if __name__ == "__main__":
    main()
