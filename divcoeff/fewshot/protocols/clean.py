"""``evaluation.protocol: clean`` (the default). PT: features of every distinct image once, in eval
mode, L2-normalised. MAML: the whole network adapted on each episode's support set (BatchNorm as
``evaluation.maml.bn_mode`` says, no dropout). Nothing draws random numbers: given the episode file
and the checkpoint, the results are fixed."""
from __future__ import annotations

import dataclasses
import time

from divcoeff.fewshot.features import compute_features, episode_positions, load_inputs
from divcoeff.fewshot.metrics import episode_metrics
from divcoeff.fewshot.protocols.base import Job, Protocol
from divcoeff.maml.evaluate import maml_logits

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


def positions(job: Job):
    """(the episodes' distinct view rows, sorted; support (E, W, K) and query (E, W*Q) positions among them)."""
    E = job.episodes.n_episodes
    rows = job.episodes.rows()
    return rows, episode_positions(rows, job.episodes.support), episode_positions(rows, job.episodes.query).reshape(E, -1)


def pt_features(job: Job):
    rows, support_pos, query_pos = positions(job)
    t0 = time.perf_counter()
    feats = compute_features(job.model, job.view, rows, job.spec, batch_size=job.compute.batch_size,
                             device=job.device, progress=job.progress)
    seconds = {"features": time.perf_counter() - t0}
    return feats[support_pos.to(job.device)], feats[query_pos.to(job.device)], seconds


def maml(job: Job):
    """Positions into the images, loaded once; the adaptation of divcoeff.maml.evaluate."""
    rows, support_pos, query_pos = positions(job)
    t0 = time.perf_counter()
    images = load_inputs(job.view, rows, job.spec)
    seconds = {"inputs": time.perf_counter() - t0}

    def logits(train_pos, target_pos, steps, key, desc):
        m = dataclasses.replace(job.settings.maml, inner_steps=steps)
        return maml_logits(job.model, images, train_pos, target_pos, m, chunk_size=job.compute.maml_chunk_size,
                           device=job.device, progress=job.progress, desc=desc)
    return support_pos, query_pos, logits, seconds


def scores(method, logits, labels):
    return episode_metrics(logits, labels)


PROTOCOL = Protocol(normalisation="checkpoint", notes=NOTES, pt_features=pt_features, maml=maml, scores=scores)
