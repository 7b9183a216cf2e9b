"""``evaluation.protocol: published``: what the authors' code does (divcoeff.fewshot.published):
train() mode with dropout on, seeded per episode, support and query sets each their own batch, no
L2 normalisation, the dataset's input normalisation, the PT logistic regression's loss as sklearn's
log_loss."""
from __future__ import annotations

import time

import numpy as np

from divcoeff.fewshot import published as pub
from divcoeff.fewshot.protocols.base import Job, Protocol

NOTES = {
    "logreg": (
        "Published protocol (REFERENCE section 7, ultimate-utils FitFinalLayer): the network in train() mode "
        "(support and query sets each normalised by their own batch statistics in two forward passes; dropout and "
        "DropBlock on, seeded per episode), features NOT L2-normalised, the dataset's input normalisation; "
        "multinomial logistic regression, objective sum CE + 1/(2C)||W||^2 (C={C}; sklearn's lbfgs C=1 problem, "
        "solved to its optimum); 'loss' is sklearn's log_loss of the query labels under predict_proba. "
        "'loss_calibrated': the logits rescaled by one temperature fitted on out-of-fold support predictions."),
    "proto": (
        "Nearest class mean on the published protocol's train-mode, unnormalised features (see logreg); "
        "logits -||q - c||^2, 'loss' their query cross-entropy; read 'loss_calibrated'."),
    "maml": (
        "Published protocol (REFERENCE section 7, ultimate-utils maml_meta_learner fast_adapt): the whole network in "
        "train() mode (BatchNorm on the batch at hand, dropout and DropBlock on, seeded per episode) adapted on "
        "the support set ({steps} SGD steps, lr {lr}), then the query set in one forward pass; the dataset's input "
        "normalisation. 'loss' is the query cross-entropy. 'loss_calibrated' rescales the logits by one "
        "temperature fitted on out-of-fold support predictions of the first episodes (see 'calibration')."),
}


def seeds(job: Job, *key):
    """seed_of(e): the dropout stream of episode e for one key (method, calibration fold)."""
    return lambda e: pub.episode_seed(job.master_seed, job.settings.dropout_seed, key, e)


def pt_features(job: Job):
    t0 = time.perf_counter()
    E = job.episodes.n_episodes
    support, query = pub.train_mode_features(job.model, job.view, job.spec, job.episodes.support,
                                             job.episodes.query.reshape(E, -1), seeds(job, "pt-features"),
                                             device=job.device, progress=job.progress)
    return support, query, {"features": time.perf_counter() - t0}


def maml(job: Job):
    """View rows; each episode adapted in train() mode on its own seeded stream."""
    E = job.episodes.n_episodes
    m = job.settings.maml

    def logits(train_rows, target_rows, steps, key, desc):
        return pub.train_mode_maml_logits(job.model, job.view, job.spec, np.asarray(train_rows),
                                          np.asarray(target_rows), steps=steps, inner_lr=m.inner_lr,
                                          first_order=m.first_order, seed_of=seeds(job, *key), device=job.device,
                                          progress=job.progress, desc=desc)
    return job.episodes.support, job.episodes.query.reshape(E, -1), logits, {}


def scores(method, logits, labels):
    # logreg: sklearn's log_loss of predict_proba (the published loss); proto and MAML: the cross-entropy.
    loss = pub.log_loss(logits, labels) if method == "logreg" else pub.query_cross_entropy(logits, labels)
    return pub.accuracy(logits, labels), loss


PROTOCOL = Protocol(normalisation="dataset", notes=NOTES, pt_features=pt_features, maml=maml, scores=scores)
