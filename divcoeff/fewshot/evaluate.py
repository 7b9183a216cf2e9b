"""Evaluate one checkpoint on one episode file (docs/formats.md section 6), under one of two protocols.

``clean`` (the default): PT checkpoints: features of every distinct image once, in eval mode,
L2-normalised; per episode a multinomial logistic regression (solved for all episodes at once)
and a nearest-class-mean classifier. MAML checkpoints: the whole network adapted on each
episode's support set (BatchNorm as ``evaluation.maml.bn_mode`` says, no dropout). Nothing draws
random numbers: given the episode file and the checkpoint, the results are fixed.

``published``: what the authors' code does (divcoeff.fewshot.published): train() mode with
dropout on, seeded per episode, support and query sets each their own batch, no L2
normalisation, the dataset's input normalisation, the PT loss as sklearn's log_loss.

Both: per-episode query accuracy and query loss, a temperature-calibrated loss (temperature
fitted on support sets only), and MAML at each of ``evaluation.maml.inner_steps`` (methods
``maml``, or ``maml<k>`` for a list).
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
from divcoeff.fewshot.features import InputSpec, compute_features, episode_positions, input_spec, load_inputs
from divcoeff.fewshot.logreg import fit_logreg
from divcoeff.fewshot import published as pub
from divcoeff.fewshot.maml_eval import maml_logits
from divcoeff.fewshot.metrics import episode_metrics, summarize
from divcoeff.fewshot.pixels import augmentation_for, wrapped_benchmarks
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
    "published_logreg": (
        "Published protocol (REFERENCE section 7, ultimate-utils FitFinalLayer): the network in train() mode "
        "(support and query sets each normalised by their own batch statistics in two forward passes; dropout and "
        "DropBlock on, seeded per episode), features NOT L2-normalised, the dataset's input normalisation; "
        "multinomial logistic regression, objective sum CE + 1/(2C)||W||^2 (C={C}; sklearn's lbfgs C=1 problem, "
        "solved to its optimum); 'loss' is sklearn's log_loss of the query labels under predict_proba. "
        "'loss_calibrated': the logits rescaled by one temperature fitted on out-of-fold support predictions."),
    "published_proto": (
        "Nearest class mean on the published protocol's train-mode, unnormalised features (see logreg); "
        "logits -||q - c||^2, 'loss' their query cross-entropy; read 'loss_calibrated'."),
    "published_maml": (
        "Published protocol (REFERENCE section 7, ultimate-utils maml_meta_learner fast_adapt): the whole network in "
        "train() mode (BatchNorm on the batch at hand, dropout and DropBlock on, seeded per episode) adapted on "
        "the support set ({steps} SGD steps, lr {lr}), then the query set in one forward pass; the dataset's input "
        "normalisation. 'loss' is the query cross-entropy. 'loss_calibrated' rescales the logits by one "
        "temperature fitted on out-of-fold support predictions of the first episodes (see 'calibration')."),
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
    protocol: str = "clean"


def evaluate_checkpoint(ckpt: Any, view: View, episodes: Episodes, settings: EvaluationSettings,
                        compute: EvaluateCompute | None = None, *, device: torch.device | str = "cpu",
                        name: str = "checkpoint", progress: bool = True, master_seed: int = 0) -> EvalResult:
    """Evaluate a loaded checkpoint (divcoeff.checkpoints.LoadedCheckpoint: model, family,
    preprocess) on `episodes` drawn from `view`. `compute` (batch and chunk sizes) changes only the
    speed; None: the schema's defaults. `master_seed` seeds the published protocol's dropout."""
    device = torch.device(device)
    compute = compute or compute_settings().evaluate
    model = ckpt.model
    spec = input_spec(ckpt.preprocess, model.in_channels, view, resize=settings.resize_to_checkpoint, checkpoint=name,
                      normalisation="dataset" if settings.published else "checkpoint")
    spec = _with_training_pixels(spec, ckpt, view, settings, name)
    E, W, Q = episodes.query.shape
    query_y = torch.arange(W).repeat_interleave(Q).expand(E, -1).contiguous()
    log.info("%s (%s, %s protocol): %d episodes, %d-way %d-shot %d-query, on %s", name, ckpt.family, settings.protocol,
             E, W, episodes.shots, Q, device)
    if ckpt.family not in ("pt", "maml"):
        raise ValueError(f"{name}: unknown family {ckpt.family!r} (expected pt or maml)")
    if settings.published:
        seed_of = _published_seeds(master_seed, settings)
        run = _published_pt if ckpt.family == "pt" else _published_maml
        methods, seconds = run(model, view, spec, episodes, query_y, settings, seed_of, device, progress)
    else:
        rows = episodes.rows()
        support_pos = episode_positions(rows, episodes.support)           # (E, W, K)
        query_pos = episode_positions(rows, episodes.query).reshape(E, -1)
        run = _evaluate_pt if ckpt.family == "pt" else _evaluate_maml
        methods, seconds = run(model, view, rows, spec, support_pos, query_pos, query_y, settings, compute, device,
                               progress)
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
        t0 = time.perf_counter()
        fit_predict = _pt_classifier(method, settings)
        logits = fit_predict(support, query).cpu()
        acc, loss = episode_metrics(logits, query_y)
        cal, calib = _calibrate(lambda s, t, **_: fit_predict(s, t).cpu(), support, logits, query_y, settings,
                                n_episodes=support.shape[0])
        methods[method] = MethodResult(acc, loss, cal, _notes(method, calib, C=settings.logreg_C), calib)
        seconds[method] = time.perf_counter() - t0
    return methods, seconds


def _proto(support: torch.Tensor, targets: torch.Tensor, **_) -> torch.Tensor:
    return proto_logits(support, targets)


def _pt_classifier(method: str, settings: EvaluationSettings) -> Callable:
    """fit_predict(support (E, W, K, D), targets (E, N, D)) -> logits (E, N, W) for one PT method."""
    if method not in PT_METHODS:
        raise ValueError(f"evaluation.pt_methods: unknown method {method!r} (known: {', '.join(PT_METHODS)})")
    return _logreg(settings.logreg_C) if method == "logreg" else _proto


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

def _evaluate_maml(model, view, rows, spec, support_pos, query_pos, query_y, settings: EvaluationSettings,
                   compute: EvaluateCompute, device, progress):
    t0 = time.perf_counter()
    images = load_inputs(view, rows, spec)
    seconds = {"inputs": time.perf_counter() - t0}
    chunk = compute.maml_chunk_size
    methods = {}
    for method, steps in settings.maml.methods().items():
        m = dataclasses.replace(settings.maml, inner_steps=steps)
        t0 = time.perf_counter()
        logits = maml_logits(model, images, support_pos, query_pos, m, chunk_size=chunk, device=device,
                             progress=progress, desc=method)
        acc, loss = episode_metrics(logits, query_y)
        seconds[method] = time.perf_counter() - t0
        t0 = time.perf_counter()

        def fit_predict(train_pos, held_pos, m=m, **_):
            return maml_logits(model, images, train_pos, held_pos, m, chunk_size=chunk, device=device,
                               progress=progress, desc=f"{method} calibration")

        cal, calib = _calibrate(fit_predict, support_pos, logits, query_y, settings,
                                n_episodes=settings.maml.calibration_episodes)
        seconds[f"{method}_calibration"] = time.perf_counter() - t0
        notes = _notes("maml", calib, steps=steps, lr=m.inner_lr, bn=m.bn_mode,
                       order="first-order" if m.first_order else "second-order")
        methods[method] = MethodResult(acc, loss, cal, notes, calib)
    return methods, seconds


# ----------------------------------------------------------------------------------- published

def _published_seeds(master_seed: int, settings: EvaluationSettings) -> Callable:
    """seed_of(key)(e): the dropout stream of episode e for one method (and calibration fold)."""
    def for_key(*key):
        return lambda e: pub.episode_seed(master_seed, settings.dropout_seed, key, e)
    return for_key


def _published_pt(model, view, spec, episodes: Episodes, query_y, settings: EvaluationSettings, seed_of, device,
                  progress):
    t0 = time.perf_counter()
    E, W, _ = episodes.support.shape
    support, query = pub.train_mode_features(model, view, spec, episodes.support, episodes.query.reshape(E, -1),
                                             seed_of("pt-features"), device=device, progress=progress)
    seconds = {"features": time.perf_counter() - t0}
    methods = {}
    for method in settings.pt_methods:
        t0 = time.perf_counter()
        fit_predict = _pt_classifier(method, settings)
        logits = fit_predict(support, query).cpu()
        acc = pub.accuracy(logits, query_y)
        # logreg: sklearn's log_loss of predict_proba (the published loss); proto: its cross-entropy.
        loss = pub.log_loss(logits, query_y) if method == "logreg" else pub.query_cross_entropy(logits, query_y)
        cal, calib = _calibrate(lambda s, t, **_: fit_predict(s, t).cpu(), support, logits, query_y, settings,
                                n_episodes=E)
        methods[method] = MethodResult(acc, loss, cal, _notes(f"published_{method}", calib, C=settings.logreg_C),
                                       calib)
        seconds[method] = time.perf_counter() - t0
    return methods, seconds


def _published_maml(model, view, spec, episodes: Episodes, query_y, settings: EvaluationSettings, seed_of, device,
                    progress):
    E = episodes.n_episodes
    support_rows, query_rows = episodes.support, episodes.query.reshape(E, -1)
    m = settings.maml
    methods, seconds = {}, {}
    for method, steps in m.methods().items():
        t0 = time.perf_counter()

        def run(train_rows, target_rows, key, desc, steps=steps):
            return pub.train_mode_maml_logits(model, view, spec, np.asarray(train_rows), np.asarray(target_rows),
                                              steps=steps, inner_lr=m.inner_lr, first_order=m.first_order,
                                              seed_of=seed_of(*key), device=device, progress=progress, desc=desc)

        logits = run(support_rows, query_rows, (method,), method)
        acc = pub.accuracy(logits, query_y)
        loss = pub.query_cross_entropy(logits, query_y)
        seconds[method] = time.perf_counter() - t0
        t0 = time.perf_counter()

        def fit_predict(train_rows, held_rows, fold=0, run=run, method=method):
            return run(train_rows, held_rows, (method, "calibration-fold", fold), f"{method} calibration")

        cal, calib = _calibrate(fit_predict, support_rows, logits, query_y, settings,
                                n_episodes=m.calibration_episodes)
        seconds[f"{method}_calibration"] = time.perf_counter() - t0
        methods[method] = MethodResult(acc, loss, cal, _notes("published_maml", calib, steps=steps, lr=m.inner_lr),
                                       calib)
    return methods, seconds


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
