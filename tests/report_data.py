"""Hand-made result files for the report tests (docs/formats.md sections 5 and 6).

Values are chosen, not drawn, so tests can assert the table and the plots against them. Four
training sets with rising diversity; a PT (logreg + proto) and a MAML checkpoint on each.
The second half (DESIGN_*) is the replicated design: three levels with two training-set draws
each, 3 PT and 2 MAML seeds per training set, an untrained PT control, and per-episode arrays
(seeded, so tests compute what they expect from the arrays themselves).
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


# --- the replicated design: levels, draws, seeds, a control, per-episode arrays ----------------
# train set -> (level, coefficient, bootstrap CI half-width, noise floor). Two draws per level;
# the noise floor differs a little between training sets (one probe, other tasks).
DESIGN_SETS = {
    "glyphs-L1-d0": ("1", 0.080, 0.006, 0.030),
    "glyphs-L1-d1": ("1", 0.100, 0.007, 0.032),
    "glyphs-L2-d0": ("2", 0.130, 0.008, 0.030),
    "glyphs-L2-d1": ("2", 0.120, 0.006, 0.034),
    "glyphs-L4-d0": ("4", 0.170, 0.009, 0.030),
    "glyphs-L4-d1": ("4", 0.190, 0.010, 0.031),
}
DESIGN_SEEDS = {"pt": 3, "maml": 2}
DESIGN_EPISODES = 40
DESIGN_QUERIES = 75                      # 5-way 15-query: accuracies are multiples of 1/75
DESIGN_CONTROL = "pt-untrained"
DESIGN_EPISODE_FILE = "results/episodes/glyphs-heldout/5way-5shot-15query-40x-seed21.json"


def design_checkpoints() -> list[dict]:
    """The summarize rule's list without paths: PT x 3 and MAML x 2 seeds per training set, one PT control."""
    rows = []
    for family, n_seeds in DESIGN_SEEDS.items():
        for ts, (level, *_rest) in DESIGN_SETS.items():
            for seed in range(n_seeds):
                rows.append({"name": f"{family}-{ts}-s{seed}", "family": family, "arch": "resnet12", "train_set": ts,
                             "level": level, "replicate": seed, "role": "trained"})
    rows.append({"name": DESIGN_CONTROL, "family": "pt", "arch": "resnet12", "train_set": "", "level": None,
                 "replicate": None, "role": "control"})
    return rows


def _name_seed(name: str) -> int:
    import zlib

    return zlib.crc32(name.encode())


def design_episode_arrays(ck: dict) -> dict:
    """Per-episode accuracy / loss / calibrated loss of one checkpoint (float64, DESIGN_EPISODES long).

    Accuracy = a level trend + a training-set effect + a seed effect + a shared per-episode
    difficulty (the same for every checkpoint: the episodes are shared) + noise, rounded to
    whole queries. The control sits near chance (0.2 for 5-way)."""
    import numpy as np

    episode = np.random.default_rng(99).normal(0.0, 0.08, DESIGN_EPISODES)   # shared difficulty
    rng = np.random.default_rng(_name_seed(ck["name"]))
    if ck["role"] == "control":
        mean = 0.22
    else:
        coef = DESIGN_SETS[ck["train_set"]][1]
        set_effect = np.random.default_rng(_name_seed(ck["train_set"])).normal(0.0, 0.015)
        mean = (0.40 if ck["family"] == "pt" else 0.38) + 1.5 * coef + set_effect + rng.normal(0.0, 0.01)
    acc = np.clip(np.round((mean + episode + rng.normal(0.0, 0.04, DESIGN_EPISODES)) * DESIGN_QUERIES), 0,
                  DESIGN_QUERIES) / DESIGN_QUERIES
    loss = 1.7 - 1.2 * acc + rng.normal(0.0, 0.02, DESIGN_EPISODES)
    return {"accuracy": acc, "loss": loss, "loss_calibrated": loss - 0.25 * acc}


def _summarize(values) -> dict:
    import numpy as np
    from scipy import stats as sps

    mean = float(np.mean(values))
    half = float(sps.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
    return {"mean": mean, "ci95": half, "lo": mean - half, "hi": mean + half}


def design_eval_doc(ck: dict, arrays: dict) -> dict:
    methods = {}
    for method in (["logreg", "proto"] if ck["family"] == "pt" else ["maml"]):
        vals = arrays[method]
        methods[method] = {m: _summarize(vals[m]) for m in ("accuracy", "loss", "loss_calibrated")}
    trained = ck["role"] == "trained"
    training = ({"final_loss": 0.5 + 0.01 * ck["replicate"], "final_accuracy": 0.8 - 0.01 * ck["replicate"],
                 "steps": 400} if trained else None)
    return {"checkpoint": ck["name"], "family": ck["family"], "train_set": ck["train_set"] or None,
            "episodes": DESIGN_EPISODE_FILE, "n_episodes": DESIGN_EPISODES, "ways": 5, "shots": 5, "queries": 15,
            "seed": 21, "methods": methods, "training": training}


def design_method_arrays(ck: dict) -> dict:
    """method -> metric -> per-episode array; proto is logreg shifted down by 2 queries."""
    import numpy as np

    base = design_episode_arrays(ck)
    if ck["family"] != "pt":
        return {"maml": base}
    proto = {"accuracy": np.clip(base["accuracy"] - 2 / DESIGN_QUERIES, 0.0, 1.0), "loss": base["loss"] + 0.05,
             "loss_calibrated": base["loss_calibrated"] + 0.05}
    return {"logreg": base, "proto": proto}


def design_diversity_doc(ts: str) -> dict:
    _level, c, h, floor = DESIGN_SETS[ts]
    return {"train_set": ts, "method": "faithful",
           "probe": {"kind": "torchvision", "arch": "resnet18", "weights": "random", "image_size": 32},
           "tasks": 24, "seed": 31, "coefficient": c, "ci_pairs_t": [c - 1e-5, c + 1e-5],
           "ci_bootstrap": [c - h, c + h], "vendi": 10 * c, "embedding_dim": 64, "noise_floor": floor,
           "episodes": f"results/episodes/{ts}/5way-5shot-15query-24x-seed31.json", "seconds": 1.0}


def write_design_results(root: Path, checkpoints: list[dict] | None = None) -> list[dict]:
    """Write results/eval/<name>.json + .npz and results/diversity/<train_set>.json under `root` for the
    replicated design; returns the checkpoint dicts with `eval` and `diversity` paths (the rule's params)."""
    import numpy as np

    rows = [dict(ck) for ck in (checkpoints if checkpoints is not None else design_checkpoints())]
    for ck in rows:
        ck["eval"] = str(root / "results" / "eval" / f"{ck['name']}.json")
        ck["diversity"] = (str(root / "results" / "diversity" / f"{ck['train_set']}.json")
                           if ck["role"] == "trained" else None)
        arrays = design_method_arrays(ck)
        Path(ck["eval"]).parent.mkdir(parents=True, exist_ok=True)
        np.savez(Path(ck["eval"]).with_suffix(".npz"),
                 **{f"{m}_{k}": v for m, metrics in arrays.items() for k, v in metrics.items()})
        Path(ck["eval"]).write_text(json.dumps(design_eval_doc(ck, arrays)))
        if ck["diversity"]:
            Path(ck["diversity"]).parent.mkdir(parents=True, exist_ok=True)
            Path(ck["diversity"]).write_text(json.dumps(design_diversity_doc(ck["train_set"])))
    return rows


def design_npz_paths(rows: list[dict]) -> dict:
    return {ck["name"]: str(Path(ck["eval"]).with_suffix(".npz")) for ck in rows}
