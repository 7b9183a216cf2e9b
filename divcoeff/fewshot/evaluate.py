"""Evaluate one checkpoint on one episode file (docs/formats.md section 6).

PT checkpoints: features of every distinct image once, L2-normalised; per episode a
multinomial logistic regression (the published protocol, solved for all episodes at once)
and a nearest-class-mean classifier. MAML checkpoints: the whole network adapted on each
episode's support set. Both: per-episode query accuracy and mean query cross-entropy, and a
temperature-calibrated loss (temperature fitted on support sets only).

Nothing here draws random numbers: given the episode file (seeded by the data stage) and the
checkpoint, the results are fixed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from divcoeff.data.episodes import Episodes
from divcoeff.data.views import View
from divcoeff.fewshot.calibration import calibrated_loss, fit_scale, holdout_folds, split_fold
from divcoeff.fewshot.features import InputSpec, compute_features, episode_positions, input_spec, load_inputs
from divcoeff.fewshot.logreg import fit_logreg
from divcoeff.fewshot.maml_eval import maml_logits
from divcoeff.fewshot.metrics import episode_metrics, summarize
from divcoeff.fewshot.proto import proto_logits
from divcoeff.io import atomic_path, atomic_write_json
from divcoeff.settings import EvaluateCompute, EvaluationSettings, compute_settings

log = logging.getLogger(__name__)

PT_METHODS = ("logreg", "proto")

NOTES = {
    "logreg": (
        "Multinomial logistic regression per episode on L2-normalised penultimate features, objective "
        "sum CE + 1/(2C)||W||^2 (C={C}, bias unpenalised; the published sklearn lbfgs C=1 protocol, solved "
        "exactly). 'loss' is that classifier's query cross-entropy: with C=1 on unit-norm features the "
        "weights stay small and the loss sits near ln(ways) even at high accuracy, so it reflects the "
        "regulariser and is NOT comparable with a MAML loss. 'loss_calibrated' rescales the logits by one "
        "temperature per checkpoint fitted on out-of-fold support predictions (no query label used); "
        "compare that one."),
    "proto": (
        "Nearest class mean on L2-normalised penultimate features, logits -||q - c||^2. 'loss' is bounded by "
        "the unit-norm geometry and sits near ln(ways); read 'loss_calibrated' (temperature fitted on "
        "out-of-fold support predictions, no query label used)."),
    "maml": (
        "Whole network adapted on each episode's support set ({steps} SGD steps, lr {lr}, "
        "{order}, BatchNorm on {bn} statistics); 'loss' is the adapted network's own query cross-entropy, the "
        "quantity MAML's meta-training minimises. 'loss_calibrated' rescales the logits by one temperature "
        "fitted on out-of-fold support predictions (a held-out shot per class, the network adapted on the "
        "others) of the first episodes (see 'calibration'); with BatchNorm on batch statistics those "
        "held-out predictions are normalised over a batch of only `ways` images."),
}


@dataclass
class MethodResult:
    accuracy: np.ndarray                 # (E,) float64
    loss: np.ndarray                     # (E,) float64
    loss_calibrated: np.ndarray          # (E,) float64, NaN when not computed
    notes: str
    calibration: dict | None = None      # temperature and how it was fitted


@dataclass
class EvalResult:
    family: str
    methods: dict[str, MethodResult]
    input: InputSpec
    device: str
    seconds: dict[str, float]


def evaluate_checkpoint(ckpt: Any, view: View, episodes: Episodes, settings: EvaluationSettings,
                        compute: EvaluateCompute | None = None, *, device: torch.device | str = "cpu",
                        name: str = "checkpoint", progress: bool = True) -> EvalResult:
    """Evaluate a loaded checkpoint (divcoeff.checkpoints.LoadedCheckpoint: model, family,
    preprocess) on `episodes` drawn from `view`. `compute` (batch and chunk sizes) changes only the
    speed; None: the schema's defaults."""
    device = torch.device(device)
    compute = compute or compute_settings().evaluate
    model = ckpt.model
    spec = input_spec(ckpt.preprocess, model.in_channels, view, resize=settings.resize_to_checkpoint, checkpoint=name)
    rows = episodes.rows()
    support_pos = episode_positions(rows, episodes.support)           # (E, W, K)
    query_pos = episode_positions(rows, episodes.query)               # (E, W, Q)
    E, W, Q = query_pos.shape
    query_y = torch.arange(W).repeat_interleave(Q).expand(E, -1).contiguous()
    log.info("%s (%s): %d episodes, %d-way %d-shot %d-query, %d distinct images, on %s", name, ckpt.family, E, W,
             episodes.shots, Q, len(rows), device)
    if ckpt.family == "pt":
        methods, seconds = _evaluate_pt(model, view, rows, spec, support_pos, query_pos.reshape(E, -1), query_y,
                                        settings, compute, device, progress)
    elif ckpt.family == "maml":
        methods, seconds = _evaluate_maml(model, view, rows, spec, support_pos, query_pos.reshape(E, -1), query_y,
                                          settings, compute, device, progress)
    else:
        raise ValueError(f"{name}: unknown family {ckpt.family!r} (expected pt or maml)")
    return EvalResult(ckpt.family, methods, spec, str(device), seconds)


# ------------------------------------------------------------------------------------------ PT

def _logreg(C: float) -> Callable:
    def fit_predict(support: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        E, W, K, D = support.shape
        y = torch.arange(W, device=support.device).repeat_interleave(K).expand(E, -1)
        return fit_logreg(support.reshape(E, W * K, D), y, W, C).logits(targets)
    return fit_predict


def _evaluate_pt(model, view, rows, spec, support_pos, query_pos, query_y, settings: EvaluationSettings,
                 compute: EvaluateCompute, device, progress):
    t0 = time.perf_counter()
    feats = compute_features(model, view, rows, spec, batch_size=compute.batch_size, device=device,
                             progress=progress)
    seconds = {"features": time.perf_counter() - t0}
    support = feats[support_pos.to(device)]                           # (E, W, K, D)
    query = feats[query_pos.to(device)]                               # (E, W*Q, D)
    methods = {}
    for method in settings.pt_methods:
        if method not in PT_METHODS:
            raise ValueError(f"evaluation.pt_methods: unknown method {method!r} (known: {', '.join(PT_METHODS)})")
        t0 = time.perf_counter()
        fit_predict = _logreg(settings.logreg_C) if method == "logreg" else proto_logits
        logits = fit_predict(support, query).cpu()
        acc, loss = episode_metrics(logits, query_y)
        cal, calib = _calibrate(lambda s, t: fit_predict(s, t).cpu(), support, logits, query_y, settings,
                                n_episodes=support.shape[0])
        methods[method] = MethodResult(acc, loss, cal, _notes(method, calib, C=settings.logreg_C), calib)
        seconds[method] = time.perf_counter() - t0
    return methods, seconds


def _calibrate(fit_predict: Callable, support, query_logits, query_y, settings: EvaluationSettings,
               n_episodes: int):
    """Out-of-fold support predictions of the first `n_episodes` -> one scale -> calibrated query losses."""
    E = query_logits.shape[0]
    folds = holdout_folds(support.shape[2], settings.calibration_folds) if settings.calibrate_temperature else []
    n = min(int(n_episodes), E)
    if not folds or n < 1:
        why = "off (calibrate_temperature: false)" if not settings.calibrate_temperature else \
            ("needs at least 2 shots" if support.shape[2] < 2 else "no calibration episodes")
        return np.full(E, np.nan), {"fitted": False, "why": why}
    logits, labels = [], []
    for j in folds:
        train, held = split_fold(support[:n], j)                      # (n, W, K-1, ...), (n, W, ...)
        logits.append(fit_predict(train, held))                       # (n, W, W)
        labels.append(torch.arange(held.shape[1]).expand(n, -1))
    scale = fit_scale(torch.cat(logits), torch.cat(labels))
    info = {"fitted": True, "temperature": 1.0 / scale, "folds": len(folds), "episodes": n,
            "points": n * len(folds) * support.shape[1]}
    return calibrated_loss(query_logits, query_y, scale).numpy(), info


# ---------------------------------------------------------------------------------------- MAML

def _evaluate_maml(model, view, rows, spec, support_pos, query_pos, query_y, settings: EvaluationSettings,
                   compute: EvaluateCompute, device, progress):
    t0 = time.perf_counter()
    images = load_inputs(view, rows, spec)
    seconds = {"inputs": time.perf_counter() - t0}
    t0 = time.perf_counter()
    chunk = compute.maml_chunk_size
    logits = maml_logits(model, images, support_pos, query_pos, settings.maml, chunk_size=chunk, device=device,
                         progress=progress)
    acc, loss = episode_metrics(logits, query_y)
    seconds["maml"] = time.perf_counter() - t0
    t0 = time.perf_counter()

    def fit_predict(train_pos, held_pos):
        return maml_logits(model, images, train_pos, held_pos, settings.maml, chunk_size=chunk, device=device,
                           progress=progress, desc="maml calibration")

    cal, calib = _calibrate(fit_predict, support_pos, logits, query_y, settings,
                            n_episodes=settings.maml.calibration_episodes)
    seconds["calibration"] = time.perf_counter() - t0
    m = settings.maml
    notes = _notes("maml", calib, steps=m.inner_steps, lr=m.inner_lr, bn=m.bn_mode,
                   order="first-order" if m.first_order else "second-order")
    return {"maml": MethodResult(acc, loss, cal, notes, calib)}, seconds


def _notes(method: str, calib: dict, **values) -> str:
    text = NOTES[method].format(**values)
    if not calib.get("fitted"):
        text += f" Here 'loss_calibrated' was not computed: {calib.get('why')}."
    return text


# -------------------------------------------------------------------------------------- output

def result_document(result: EvalResult, header: dict) -> dict:
    """The evaluation JSON (docs/formats.md section 6): `header` (checkpoint, train_set, episodes,
    n_episodes, ways, shots, queries, seed, ...) plus the method summaries."""
    methods = {}
    for name, m in result.methods.items():
        methods[name] = {"accuracy": summarize(m.accuracy), "loss": summarize(m.loss),
                         "loss_calibrated": summarize(m.loss_calibrated), "calibration": m.calibration,
                         "notes": m.notes}
    return {**header, "family": result.family, "methods": methods, "input": result.input.as_dict(),
            "device": result.device, "seconds": {k: round(v, 3) for k, v in result.seconds.items()}}


def write_results(json_path: str | Path, npz_path: str | Path, result: EvalResult, header: dict) -> dict:
    """Write the per-episode arrays (.npz), then the JSON (the completion mark); both atomically."""
    arrays = {}
    for name, m in result.methods.items():
        arrays[f"{name}_accuracy"] = np.asarray(m.accuracy, np.float64)
        arrays[f"{name}_loss"] = np.asarray(m.loss, np.float64)
        arrays[f"{name}_loss_calibrated"] = np.asarray(m.loss_calibrated, np.float64)
    with atomic_path(npz_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    doc = result_document(result, header)
    atomic_write_json(json_path, doc)
    return doc
