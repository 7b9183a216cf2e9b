"""Evaluate one checkpoint on one episode file (docs/formats.md section 6), under one protocol.

The protocol (``evaluation.protocol``, divcoeff.fewshot.protocols) says how the features and the
adapted logits are computed and scored: ``clean`` (the default; eval mode, L2-normalised features,
nothing random) or ``published`` (what the authors' code does). The loops are the same for all:
PT checkpoints get each of ``evaluation.pt_methods`` (a multinomial logistic regression, solved
for all episodes at once, and a nearest-class-mean classifier) on the protocol's features; MAML
checkpoints are adapted at each of ``evaluation.maml.inner_steps`` (methods ``maml``, or
``maml<k>`` for a list). Per episode: query accuracy and query loss, and a temperature-calibrated
loss (temperature fitted on support sets only).
"""
from __future__ import annotations

import dataclasses
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
from divcoeff.fewshot.features import InputSpec, input_spec
from divcoeff.fewshot.logreg import fit_logreg
from divcoeff.fewshot.metrics import summarize
from divcoeff.fewshot.pixels import augmentation_for, wrapped_benchmarks
from divcoeff.fewshot.proto import proto_logits
from divcoeff.fewshot.protocols import PROTOCOLS, Job, Protocol
from divcoeff.io import atomic_path, atomic_write_json
from divcoeff.settings import EvaluateCompute, EvaluationSettings, compute_settings

log = logging.getLogger(__name__)


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
    protocol: str = "clean"


def evaluate_checkpoint(ckpt: Any, view: View, episodes: Episodes, settings: EvaluationSettings,
                        compute: EvaluateCompute | None = None, *, device: torch.device | str = "cpu",
                        name: str = "checkpoint", progress: bool = True, master_seed: int = 0) -> EvalResult:
    """Evaluate a loaded checkpoint (divcoeff.checkpoints.LoadedCheckpoint: model, family,
    preprocess) on `episodes` drawn from `view`. `compute` (batch and chunk sizes) changes only the
    speed; None: the schema's defaults. `master_seed` seeds the random draws of a protocol that has
    some (the published one's dropout)."""
    device = torch.device(device)
    compute = compute or compute_settings().evaluate
    model = ckpt.model
    protocol = PROTOCOLS[settings.protocol]
    spec = input_spec(ckpt.preprocess, model.in_channels, view, resize=settings.resize_to_checkpoint, checkpoint=name,
                      normalisation=protocol.normalisation)
    spec = _with_training_pixels(spec, ckpt, view, settings, name)
    E, W, Q = episodes.query.shape
    query_y = torch.arange(W).repeat_interleave(Q).expand(E, -1).contiguous()
    log.info("%s (%s, %s protocol): %d episodes, %d-way %d-shot %d-query, on %s", name, ckpt.family, settings.protocol,
             E, W, episodes.shots, Q, device)
    if ckpt.family not in ("pt", "maml"):
        raise ValueError(f"{name}: unknown family {ckpt.family!r} (expected pt or maml)")
    job = Job(model, view, spec, episodes, query_y, settings, compute, device, progress, master_seed)
    run = _evaluate_pt if ckpt.family == "pt" else _evaluate_maml
    methods, seconds = run(protocol, job)
    return EvalResult(ckpt.family, methods, spec, str(device), seconds, settings.protocol)


def _with_training_pixels(spec: InputSpec, ckpt: Any, view: View, settings: EvaluationSettings,
                          name: str) -> InputSpec:
    """MiniImageNet pixels as the checkpoint was trained on them (divcoeff.fewshot.pixels)."""
    augmentation, where = augmentation_for(name, getattr(ckpt, "meta", None), settings.data_augmentation)
    wrapped = wrapped_benchmarks(view, augmentation)
    if augmentation is not None or wrapped:
        log.info("%s: data_augmentation %r (%s): %s", name, augmentation, where,
                 f"pixels of {', '.join(wrapped)} wrapped to (256 - p) mod 256" if wrapped else "pixels as stored")
    return dataclasses.replace(spec, wrapped=wrapped) if wrapped else spec


# ------------------------------------------------------------------------------------------ PT

def _logreg(C: float) -> Callable:
    def fit_predict(support: torch.Tensor, targets: torch.Tensor, **_) -> torch.Tensor:
        E, W, K, D = support.shape
        y = torch.arange(W, device=support.device).repeat_interleave(K).expand(E, -1)
        return fit_logreg(support.reshape(E, W * K, D), y, W, C).logits(targets)
    return fit_predict


def _proto(support: torch.Tensor, targets: torch.Tensor, **_) -> torch.Tensor:
    return proto_logits(support, targets)


# evaluation.pt_methods -> fit_predict(support (E, W, K, D), targets (E, N, D)) -> logits (E, N, W),
# built from the settings (the schema's enum = these keys).
PT_METHODS: dict[str, Callable[[EvaluationSettings], Callable]] = {
    "logreg": lambda settings: _logreg(settings.logreg_C),
    "proto": lambda settings: _proto,
}


def _pt_classifier(method: str, settings: EvaluationSettings) -> Callable:
    """fit_predict(support (E, W, K, D), targets (E, N, D)) -> logits (E, N, W) for one PT method."""
    if method not in PT_METHODS:
        raise ValueError(f"evaluation.pt_methods: unknown method {method!r} (known: {', '.join(PT_METHODS)})")
    return PT_METHODS[method](settings)


def _evaluate_pt(protocol: Protocol, job: Job):
    """Each PT method on the protocol's features, the temperature fitted on all episodes' supports."""
    support, query, seconds = protocol.pt_features(job)
    settings = job.settings
    methods = {}
    for method in settings.pt_methods:
        t0 = time.perf_counter()
        fit_predict = _pt_classifier(method, settings)
        logits = fit_predict(support, query).cpu()
        acc, loss = protocol.scores(method, logits, job.query_y)
        cal, calib = _calibrate(lambda s, t, **_: fit_predict(s, t).cpu(), support, logits, job.query_y, settings,
                                n_episodes=support.shape[0])
        methods[method] = MethodResult(acc, loss, cal, _notes(protocol.notes[method], calib, C=settings.logreg_C),
                                       calib)
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
        logits.append(fit_predict(train, held, fold=j))               # (n, W, W)
        labels.append(torch.arange(held.shape[1]).expand(n, -1))
    scale = fit_scale(torch.cat(logits), torch.cat(labels))
    info = {"fitted": True, "temperature": 1.0 / scale, "folds": len(folds), "episodes": n,
            "points": n * len(folds) * support.shape[1]}
    return calibrated_loss(query_logits, query_y, scale).numpy(), info


# ---------------------------------------------------------------------------------------- MAML

def _evaluate_maml(protocol: Protocol, job: Job):
    """Each inner step count, adapted as the protocol says; the temperature from the first episodes."""
    support, query, maml_logits, seconds = protocol.maml(job)
    m = job.settings.maml
    methods = {}
    for method, steps in m.methods().items():
        t0 = time.perf_counter()
        logits = maml_logits(support, query, steps, (method,), method)
        acc, loss = protocol.scores("maml", logits, job.query_y)
        seconds[method] = time.perf_counter() - t0
        t0 = time.perf_counter()

        def fit_predict(train, held, fold=0, steps=steps, method=method):
            return maml_logits(train, held, steps, (method, "calibration-fold", fold), f"{method} calibration")

        cal, calib = _calibrate(fit_predict, support, logits, job.query_y, job.settings,
                                n_episodes=m.calibration_episodes)
        seconds[f"{method}_calibration"] = time.perf_counter() - t0
        notes = _notes(protocol.notes["maml"], calib, steps=steps, lr=m.inner_lr, bn=m.bn_mode,
                       order="first-order" if m.first_order else "second-order")
        methods[method] = MethodResult(acc, loss, cal, notes, calib)
    return methods, seconds


def _notes(template: str, calib: dict, **values) -> str:
    text = template.format(**values)
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
    return {**header, "family": result.family, "protocol": result.protocol, "methods": methods,
            "input": result.input.as_dict(), "device": result.device,
            "seconds": {k: round(v, 3) for k, v in result.seconds.items()}}


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
