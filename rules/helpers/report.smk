# Report stage helpers (rules/report.smk): the checkpoints, files and figures of the report.
import pandas as _pd


def train_set_level(train_set):
    """The diversity level of a training set: its `level`, else its `domains` (k or all)."""
    spec = S.train_sets[train_set]
    if spec["level"] is not None:
        return str(spec["level"])
    domains = spec["domains"]
    return str(len(domains)) if isinstance(domains, list) else str(domains)


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
                    if row["replicate"] is None or _pd.isna(row["replicate"])
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
    str(sheet_path(S.report.published, WORKFLOW_DIR)) if S.report.published else None
)


def report_diversity_files(wildcards):
    """One diversity JSON per training set that some trained checkpoint was trained on."""
    return list(
        dict.fromkeys(c["diversity"] for c in report_checkpoints() if c["diversity"])
    )
