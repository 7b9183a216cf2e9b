"""The published evaluation protocol (``evaluation.protocol: published``), as the authors' code runs it.

Facts (REFERENCE section 7; ultimate-utils ``meta_learners/pretrain_convergence.py`` FitFinalLayer and
``maml_meta_learner.py``, diversity-for-predictive-success ``data_analysis/common.py``):

* The network is in ``train()`` mode for every checkpoint: BatchNorm normalises with the statistics
  of the batch at hand, dropout (stages 1-2) and DropBlock (stages 3-4) are active. Here that is
  ``model.train()`` with our BatchNorm layers forced to batch statistics (the running statistics,
  which train() mode would update but never use, are left untouched).
* PT: per task, the support set (N*K images) and the query set (N*Q images) go through
  ``model.features`` in two separate forward passes, so each set is normalised by its own
  statistics; the features are not L2-normalised (``is_norm=False``).
* MAML: per task, the whole network adapted on the support set (each inner step one forward of
  the support set), then one forward of the query set, all in train() mode.
* DropBlock's keep rate follows RFS's schedule, ``max(1 - rate / 40000 * n, 1 - rate)`` where n
  counts the block's forward passes since the model was built (a plain attribute, not in the
  state dict: 0 for a freshly loaded checkpoint). PT: FitFinalLayer forwards the model itself, so
  n is what a freshly loaded model evaluating this episode file in order would have reached (2
  forwards per episode). MAML: each task adapts a fresh ``MAML.clone()``, and learn2learn's
  ``clone_module`` copies the module's ``__dict__`` (L: ``learn2learn/utils/__init__.py`` line
  110), counter included, so every episode starts from the base model's counter and only the
  clone advances (inner steps + 1); the base model's counter is left as it was.

Randomness: one seeded stream per episode (and per method and calibration fold), from the master
seed and ``evaluation.dropout_seed``: the dropout masks of episode e do not depend on which other
episodes are evaluated with it, nor on chunk sizes. Streams differ between CPU and GPU (torch's
generators do), so results agree across devices in distribution, not bit for bit.

Why episodes are looped over, not batched: per-set batch statistics could be had by grouping
(as divcoeff.task2vec.trace does), but dropout masks drawn for a batch of episodes would tie each
episode's result to the batch it was in. A per-episode forward of 25 + 75 images is cheap next to
the logistic regressions, which stay batched over all episodes (divcoeff.fewshot.logreg).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from divcoeff.data.views import View
from divcoeff.device import cpu_input_layout, fast_layout
from divcoeff.fewshot.features import InputSpec, load_inputs
from divcoeff.maml import adapt_and_predict
from divcoeff.models.resnet12 import BasicBlock, bn_mode
from divcoeff.seeding import derive_seed

log = logging.getLogger(__name__)

# sklearn's log_loss clipped probabilities to [eps, 1 - eps] with eps=1e-15 (its default until 1.2,
# when the 2022/2023 results were made; later versions use the float type's machine epsilon).
LOG_LOSS_EPS = 1e-15
CHUNK_EPISODES = 64  # episodes whose images are loaded at once (bounds host memory, not results)


@contextlib.contextmanager
def train_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model.train()`` with BatchNorm on the current batch's statistics and nothing updated."""
    was = model.training
    model.train()
    try:
        with bn_mode(model, "batch"):
            yield model
    finally:
        model.train(was)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's global generators (dropout, DropBlock) seeded inside the block only."""
    # fork_rng takes CUDA device indices; dropout on a GPU draws from that device's generator.
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed % (2**63 - 1))
        yield


def set_forward_count(model: torch.nn.Module, n: int) -> None:
    """Set every block's forward counter (RFS's DropBlock schedule reads it)."""
    for m in model.modules():
        if isinstance(m, BasicBlock):
            m.num_batches_tracked = int(n)


def forward_counts(model: torch.nn.Module) -> dict[torch.nn.Module, int]:
    """Every block's forward counter, to restore with :func:`restore_forward_counts`."""
    return {m: int(m.num_batches_tracked) for m in model.modules() if isinstance(m, BasicBlock)}


def restore_forward_counts(counts: dict[torch.nn.Module, int]) -> None:
    for m, n in counts.items():
        m.num_batches_tracked = n


def episode_seed(master_seed: int, dropout_seed: int, key: Sequence, episode: int) -> int:
    return derive_seed(master_seed, dropout_seed, "published", *key, episode)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(s + size, n))


def _chunk_inputs(view: View, spec: InputSpec, *row_sets: np.ndarray) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The chunk's distinct images, once, and the positions of each row set among them."""
    rows = np.unique(np.concatenate([r.ravel() for r in row_sets]))
    images = load_inputs(view, rows, spec)
    return images, [torch.from_numpy(np.searchsorted(rows, r).astype(np.int64)) for r in row_sets]


@torch.no_grad()
def train_mode_features(model: torch.nn.Module, view: View, spec: InputSpec, support_rows: np.ndarray,
                        query_rows: np.ndarray, seed_of: Callable[[int], int], *, device: torch.device | str = "cpu",
                        progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Features as FitFinalLayer computes them: per episode, the support set and then the query set
    through ``model.features`` in train() mode, each its own batch; not normalised.

    `support_rows` (E, W, K), `query_rows` (E, m) view rows; `seed_of(e)` the episode's seed.
    Returns float32 (E, W, K, D) and (E, m, D) on `device`."""
    device = torch.device(device)
    fast_layout(model.to(device), device, batch_stats=True)  # train-mode BN: contiguous, accurate to rounding
    E, W, K = support_rows.shape
    sup, qry = [], []
    with train_mode(model), tqdm(total=E, desc="features (train mode)", unit="episode", disable=not progress) as bar:
        for sl in _chunks(E, CHUNK_EPISODES):
            images, (spos, qpos) = _chunk_inputs(view, spec, support_rows[sl], query_rows[sl])
            for i, e in enumerate(range(sl.start, sl.stop)):
                xs = _to(images[spos[i].reshape(-1)], device)
                xq = _to(images[qpos[i].reshape(-1)], device)
                with seeded(seed_of(e), device):
                    set_forward_count(model, 2 * e)  # as a fresh model evaluating the episodes in order
                    sup.append(model.features(xs).float())
                    qry.append(model.features(xq).float())
                bar.update(1)
    D = sup[0].shape[-1]
    return torch.stack(sup).view(E, W, K, D), torch.stack(qry)


@torch.no_grad()
def train_mode_maml_logits(model: torch.nn.Module, view: View, spec: InputSpec, support_rows: np.ndarray,
                           target_rows: np.ndarray, *, steps: int, inner_lr: float, first_order: bool,
                           seed_of: Callable[[int], int], device: torch.device | str = "cpu",
                           progress: bool = True, desc: str = "maml (train mode)") -> torch.Tensor:
    """Logits (E, m, ways) of each episode's target rows after adapting the whole network on its
    support rows (E, ways, shots) for `steps` SGD steps of `inner_lr`, in train() mode, one seeded
    stream per episode (learn2learn's ``MAML.clone()`` + ``adapt`` as ultimate-utils' fast_adapt
    calls them; divcoeff.maml computes the same function)."""
    device = torch.device(device)
    E, ways, shots = support_rows.shape
    if model.num_classes != ways:
        raise ValueError(f"MAML evaluation: the checkpoint's head has {model.num_classes} outputs but the "
                         f"episodes are {ways}-way; a MAML checkpoint is evaluated with its own N-way head")
    fast_layout(model.to(device), device, batch_stats=True)  # train-mode BN: contiguous, accurate to rounding
    labels = torch.arange(ways, device=device).repeat_interleave(shots).unsqueeze(0)
    out = []
    base_counts = forward_counts(model)  # what every clone starts from (learn2learn copies __dict__)
    with train_mode(model), tqdm(total=E, desc=desc, unit="episode", disable=not progress) as bar:
        for sl in _chunks(E, CHUNK_EPISODES):
            images, (spos, tpos) = _chunk_inputs(view, spec, support_rows[sl], target_rows[sl])
            for i, e in enumerate(range(sl.start, sl.stop)):
                sx = _to(images[spos[i].reshape(-1)], device).unsqueeze(0)
                tx = _to(images[tpos[i].reshape(-1)], device).unsqueeze(0)
                with seeded(seed_of(e), device):
                    restore_forward_counts(base_counts)
                    # Batch statistics of the support set while adapting, of the target set when predicting.
                    logits = adapt_and_predict(model, sx, labels, tx, steps=steps, inner_lr=inner_lr,
                                               first_order=first_order, bn_mode="batch", vectorize=False)
                out.append(logits[0].float().cpu())
                bar.update(1)
    restore_forward_counts(base_counts)  # the clones advanced, the base model did not
    return torch.stack(out)


def _to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return cpu_input_layout(x, batch_stats=True) if device.type == "cpu" else x


def log_loss(logits: torch.Tensor, labels: torch.Tensor, eps: float = LOG_LOSS_EPS) -> np.ndarray:
    """Per-episode ``sklearn.metrics.log_loss(labels, predict_proba)``: probabilities (softmax of the
    classifier's logits, as LogisticRegression.predict_proba gives for a multinomial model) clipped
    to [eps, 1 - eps], each row renormalised, mean -log p(true class). (E, m, W), (E, m) -> (E,)."""
    p = torch.softmax(logits.double(), -1).clamp(eps, 1 - eps)
    p = p / p.sum(-1, keepdim=True)
    nll = -torch.log(p.gather(-1, labels.unsqueeze(-1)).squeeze(-1))
    return nll.mean(-1).cpu().numpy()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per-episode ``accuracy_score`` of ``predict`` (the arg-max class, first on ties)."""
    return (logits.argmax(-1) == labels).double().mean(-1).cpu().numpy()


def query_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """MAML's reported loss: the adapted network's mean query cross-entropy (learn2learn's loss)."""
    ce = F.cross_entropy(logits.double().flatten(0, 1), labels.flatten(), reduction="none")
    return ce.view(labels.shape).mean(-1).cpu().numpy()
