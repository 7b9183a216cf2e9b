"""What an evaluation protocol is: how a checkpoint's PT features and adapted MAML logits are
computed, and how logits are scored. The loops over methods are shared (divcoeff.fewshot.evaluate);
a protocol only answers these questions (see docs/extending.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

from divcoeff.data.episodes import Episodes
from divcoeff.data.views import View
from divcoeff.fewshot.features import InputSpec
from divcoeff.settings import EvaluateCompute, EvaluationSettings

# logits(train, targets, steps, key, desc) -> (E, m, ways): adapt on each episode's `train` set
# (ways, shots), predict its `targets`; key names the random stream where the protocol draws one.
MamlLogits = Callable[[Any, Any, int, tuple, str], torch.Tensor]


@dataclass(frozen=True)
class Job:
    """One checkpoint on one episode file, as every protocol receives it."""

    model: torch.nn.Module
    view: View
    spec: InputSpec
    episodes: Episodes
    query_y: torch.Tensor                 # (E, W*Q) query labels
    settings: EvaluationSettings
    compute: EvaluateCompute
    device: torch.device
    progress: bool
    master_seed: int


@dataclass(frozen=True)
class Protocol:
    """An ``evaluation.protocol``: one module builds one (divcoeff.fewshot.protocols.PROTOCOLS)."""

    normalisation: str                    # the images' normalisation: checkpoint (its own) | dataset
    notes: Mapping[str, str]              # logreg / proto / maml -> what the numbers mean (str.format)
    # Job -> (support (E, W, K, D), query (E, W*Q, D), seconds): the features the PT classifiers see
    pt_features: Callable[[Job], tuple[torch.Tensor, torch.Tensor, dict]]
    # Job -> (support (E, W, K) of what `logits` takes, query (E, W*Q) of the same, logits, seconds)
    maml: Callable[[Job], tuple[Any, Any, MamlLogits, dict]]
    # (logreg | proto | maml, logits (E, m, W), labels (E, m)) -> per-episode (accuracy, loss)
    scores: Callable[[str, torch.Tensor, torch.Tensor], tuple[np.ndarray, np.ndarray]]
