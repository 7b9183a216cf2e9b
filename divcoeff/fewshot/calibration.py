"""Temperature calibration fitted on support sets only, so PT and MAML losses can be compared.

Why: a C=1 logistic regression on unit-norm features has small weights, so its query
cross-entropy stays near ln(ways) even at high accuracy (REFERENCE.md section 4); that loss
measures the regulariser as much as the backbone. Rescaling the logits by 1/T with T chosen
on held-out data removes the arbitrary scale and leaves what the features support.

How (no query label is ever used):

* Out-of-fold support predictions: fold j holds out shot j of every class; the classifier is
  fitted (or the network adapted) on the other shots and predicts the held-out ones. With
  ``folds`` = shots every support image is predicted once. 1-shot episodes have no fold
  (a class would lose its only example) and get no calibrated loss.
* One temperature per checkpoint and method, fitted on the out-of-fold predictions of all
  episodes pooled: a few dozen points per episode would leave it undetermined whenever
  they are all classified right (the fitted scale would run off to infinity).
* ``loss_calibrated`` is then the query cross-entropy of logits / T.

The out-of-fold models see one shot fewer than the final one, so T is, if anything, a
little too high (a conservative, slightly under-confident calibration).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The fitted inverse temperature is kept within these bounds (a perfectly separated
# calibration set would otherwise drive it to infinity).
SCALE_BOUNDS = (1e-3, 1e4)


def holdout_folds(shots: int, folds: int) -> list[int]:
    """The shot held out by each fold: 0..min(folds, shots)-1; none for 1-shot episodes."""
    if shots < 2 or folds < 1:
        return []
    return list(range(min(int(folds), shots)))


def split_fold(support: torch.Tensor, fold: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(E, ways, shots, ...) -> (train (E, ways, shots-1, ...), held out (E, ways, ...)) for one fold."""
    shots = support.shape[2]
    keep = [s for s in range(shots) if s != fold]
    return support[:, :, keep], support[:, :, fold]


def fit_scale(logits: torch.Tensor, labels: torch.Tensor, iters: int = 100) -> float:
    """The inverse temperature s minimising sum_i CE(s * logits_i, labels_i), within SCALE_BOUNDS.

    The objective is convex in s, so its derivative sum_i (E_softmax[z_i] - z_i,y_i) is
    increasing; bisection on its sign in log-space finds the minimiser to ~1e-12 relative.
    """
    z = logits.double().reshape(-1, logits.shape[-1])
    y = labels.reshape(-1)
    if z.shape[0] == 0:
        raise ValueError("fit_scale: no calibration points")
    z_true = z.gather(1, y.view(-1, 1)).squeeze(1)

    def slope(s: float) -> float:
        p = torch.softmax(s * z, -1)
        return float(((p * z).sum(-1) - z_true).sum())

    lo, hi = (math.log(b) for b in SCALE_BOUNDS)
    if slope(math.exp(lo)) >= 0:
        return math.exp(lo)
    if slope(math.exp(hi)) <= 0:
        return math.exp(hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if slope(math.exp(mid)) > 0:
            hi = mid
        else:
            lo = mid
    return math.exp(0.5 * (lo + hi))


def calibrated_loss(query_logits: torch.Tensor, query_labels: torch.Tensor, scale: float) -> torch.Tensor:
    """Per-episode mean query cross-entropy of scale * logits: (E, m, ways), (E, m) -> (E,) float64."""
    z = query_logits.double() * scale
    ce = F.cross_entropy(z.flatten(0, 1), query_labels.flatten(), reduction="none")
    return ce.view(query_labels.shape).mean(-1)
