"""Per-episode metrics and their summary: mean with a 95% t-interval over episodes.

The published protocol (REFERENCE.md section 4) reports mean +- t(0.975, n-1) * std / sqrt(n)
over episodes; we use the sample standard deviation (ddof=1), the textbook t-interval that
``scipy.stats.t.interval(0.95, n-1, loc=mean, scale=scipy.stats.sem(x))`` also gives.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats as sps


def episode_metrics(logits: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Query accuracy and mean query cross-entropy (nats) of each episode.

    logits (E, m, ways), labels (E, m) int64 -> two float64 arrays of length E.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"episode_metrics: expected logits (E, m, ways) and labels (E, m), "
                         f"got {tuple(logits.shape)} and {tuple(labels.shape)}")
    logits = logits.double()
    acc = (logits.argmax(-1) == labels).double().mean(-1)
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape).mean(-1)
    return acc.cpu().numpy(), ce.cpu().numpy()


def summarize(values, level: float = 0.95) -> dict | None:
    """{"mean", "ci95", "lo", "hi", "std", "n"} of the per-episode values (t-interval half width ci95).

    Non-finite values (an episode whose metric could not be computed) are an error rather than
    silently dropped; an all-NaN array (a metric that was not computed) gives None (JSON null).
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size and np.isnan(x).all():
        return None
    if not np.isfinite(x).all():
        raise ValueError(f"summarize: {int((~np.isfinite(x)).sum())} of {x.size} values are not finite")
    n = int(x.size)
    if n == 0:
        raise ValueError("summarize: no values")
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "ci95": None, "lo": None, "hi": None, "std": None, "n": n}
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n))
    return {"mean": mean, "ci95": half, "lo": mean - half, "hi": mean + half, "std": std, "n": n}
