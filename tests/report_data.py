"""Hand-made result files for the report tests (docs/formats.md sections 5 and 6).

Values are chosen, not drawn, so tests can assert the table and the plots against them. Four
training sets with rising diversity; a PT (logreg + proto) and a MAML checkpoint on each.
"""
from __future__ import annotations

import json
from pathlib import Path

TRAIN_SETS = {  # train set -> (coefficient, bootstrap CI half-width)
    "glyphs-1s-d0": (0.10, 0.010),
    "glyphs-1s-d1": (0.12, 0.012),
    "glyphs-2s-d0": (0.15, 0.008),
    "glyphs-all": (0.21, 0.015),
}
# checkpoint -> (family, train set, accuracy of its primary method); accuracy rises with diversity
# for PT, not monotonically for MAML.
CHECKPOINTS = {
    "pt-glyphs-1s-d0": ("pt", "glyphs-1s-d0", 0.50),
    "pt-glyphs-1s-d1": ("pt", "glyphs-1s-d1", 0.55),
    "pt-glyphs-2s-d0": ("pt", "glyphs-2s-d0", 0.58),
    "pt-glyphs-all": ("pt", "glyphs-all", 0.70),
    "maml-glyphs-1s-d0": ("maml", "glyphs-1s-d0", 0.52),
    "maml-glyphs-1s-d1": ("maml", "glyphs-1s-d1", 0.49),
    "maml-glyphs-2s-d0": ("maml", "glyphs-2s-d0", 0.60),
    "maml-glyphs-all": ("maml", "glyphs-all", 0.66),
}
PROTO_OFFSET = -0.03          # proto accuracy = logreg accuracy + this
EPISODES = "results/episodes/glyphs-heldout/5way-5shot-15query-300x-seed21.json"


def metric_entry(mean: float, half: float) -> dict:
    return {"mean": mean, "ci95": half, "lo": mean - half, "hi": mean + half}


def method_entry(acc: float, calibrated: bool = True) -> dict:
    loss = 2.0 - 2.0 * acc    # lower loss for higher accuracy
    entry = {"accuracy": metric_entry(acc, 0.02), "loss": metric_entry(loss, 0.05), "notes": "hand-made"}
    if calibrated:
        entry["loss_calibrated"] = metric_entry(loss - 0.1, 0.04)
    return entry


def diversity_doc(train_set: str) -> dict:
    c, h = TRAIN_SETS[train_set]
    return {"train_set": train_set, "method": "exact",
            "probe": {"kind": "torchvision", "arch": "resnet18", "weights": "random", "image_size": 32,
                      "checkpoint": None},
            "tasks": 24, "seed": 31, "coefficient": c, "ci_pairs_t": [c - 1e-5, c + 1e-5],
            "ci_bootstrap": [c - h, c + h], "vendi": 10 * c, "embedding_dim": 64,
            "episodes": f"results/episodes/{train_set}/5way-5shot-15query-24x-seed31.json", "seconds": 1.0}


def eval_doc(name: str, calibrated: bool = True) -> dict:
    family, train_set, acc = CHECKPOINTS[name]
    if family == "pt":
        methods = {"logreg": method_entry(acc, calibrated), "proto": method_entry(acc + PROTO_OFFSET, calibrated)}
    else:
        methods = {"maml": method_entry(acc, calibrated)}
    return {"checkpoint": name, "family": family, "train_set": train_set, "episodes": EPISODES,
            "n_episodes": 300, "ways": 5, "shots": 5, "queries": 15, "methods": methods}


def sheet_rows(names=None) -> list[dict]:
    names = list(CHECKPOINTS) if names is None else names
    return [{"name": n, "family": CHECKPOINTS[n][0], "arch": "resnet12", "train_set": CHECKPOINTS[n][1]}
            for n in names]


def write_results(root: Path, names=None, calibrated: bool = True) -> list[dict]:
    """Write results/eval/<name>.json and results/diversity/<train_set>.json under `root`;
    returns the sheet rows with the paths, in the form rules/common.smk's report_checkpoints() gives."""
    rows = sheet_rows(names)
    for row in rows:
        row["eval"] = str(root / "results" / "eval" / f"{row['name']}.json")
        row["diversity"] = str(root / "results" / "diversity" / f"{row['train_set']}.json")
        for path, doc in ((row["eval"], eval_doc(row["name"], calibrated)), (row["diversity"], diversity_doc(row["train_set"]))):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(doc))
    return rows
