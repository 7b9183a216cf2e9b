"""Task2Vec embeddings of many tasks on one probe: the entry point of the package.

A task is N-way with n images (all of an episode's support and query images) and
episode-local labels 0..N-1. Per task, the published steps (REFERENCE.md section 1):
a fresh head, trained on the frozen body's features; then the diagonal Fisher of the body's
Conv2d/BatchNorm2d weights; then one value per filter / BN channel.

What is not done here, unlike the published code: no deep copy of the probe per task (the body
is shared and never updated; heads are tensors), features computed once per task, the head
step of `task_batch` tasks in one tensor program, and the Fisher passes batched across tasks
where that is faster (see fisher_faithful / fisher_exact).

Every task starts from the same head, as in the published code (one probe, deep-copied per
task): its init stream depends on the run's seed only, so two tasks with the same images differ
only by what is random within the method. The rest of a task's randomness (head sampler,
Fisher sampler, labels) comes from its own generators, derived from the run's seed and the
task's id (its index in the episode file); a task's embedding is therefore the same whatever
other tasks share its batch.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from divcoeff.task2vec.probes import Probe
from divcoeff.seeding import torch_generator
from divcoeff.settings import DiversityCompute, DiversitySettings
from divcoeff.task2vec import fisher_exact, fisher_faithful
from divcoeff.task2vec.head import init_heads
from divcoeff.task2vec.trace import embedding_layout

log = logging.getLogger(__name__)

# diversity.method -> the Fisher of a batch of tasks (schema enum = these keys; tests/test_task2vec.py).
# A method: (probe, layers, preprocessed images (T, n, C, H, W), labels, head init w0, b0, generators by
# stream name, DiversitySettings, DiversityCompute) -> per-layer (T, C_l) Fisher values.
METHODS = {"exact": fisher_exact.embed, "faithful": fisher_faithful.embed}
STREAMS = ("head_init", "head_sampler", "fisher_sampler", "labels")


def task_streams(seed: int, task_id: int, device: torch.device | str = "cpu", replica: int = 0
                 ) -> dict[str, torch.Generator]:
    """A task's random streams (CPU generators: draws are identical on every device).

    The head init is shared by all tasks (a fresh copy of one probe per task, as published); a
    per-task head init measured as a noise floor of ~0.085 on distances of ~0.095 between glyph
    tasks, which hid the differences between scripts."""
    # `replica` k > 0 redraws a task's own randomness (sampler, labels) with the probe and the shared
    # head init held fixed: the measurement's noise floor (divcoeff.task2vec.coefficient).
    key = (int(task_id),) if not replica else (int(task_id), "replica", int(replica))
    streams = {name: torch_generator(seed, "task2vec", *key, name) for name in STREAMS if name != "head_init"}
    return {"head_init": torch_generator(seed, "task2vec", "head_init"), **streams}


def embed_batch(probe: Probe, images: torch.Tensor, labels: torch.Tensor, task_ids: Sequence[int], seed: int,
                settings: DiversitySettings, compute: DiversityCompute, device: torch.device | str = "cpu",
                replica: int = 0) -> torch.Tensor:
    """Embeddings (T, D) of T tasks given as [0, 1] images (T, n, C, H, W) and labels (T, n)."""
    if settings.method not in METHODS:
        raise ValueError(f"diversity.method: expected one of {', '.join(METHODS)}, got {settings.method!r}")
    device = torch.device(device)
    layers = embedding_layout(probe.body)
    T, n = images.shape[:2]
    ways = int(labels.max()) + 1
    x = probe.preprocess(images.to(device).flatten(0, 1)).view(T, n, *images.shape[2:])
    labels = labels.to(torch.int64)
    streams = [task_streams(seed, t, replica=replica) for t in task_ids]
    gens = {name: [s[name] for s in streams] for name in STREAMS}
    w0, b0 = (h.to(x.dtype) for h in init_heads(probe.feature_dim, ways, gens["head_init"], device))
    per_layer = METHODS[settings.method](probe, layers, x, labels, w0, b0, gens, settings, compute)
    return torch.cat(per_layer, 1).detach()


def embed_tasks(probe: Probe, load_tasks: Callable[[Sequence[int]], tuple[torch.Tensor, torch.Tensor]],
                task_ids: Sequence[int], seed: int, settings: DiversitySettings, compute: DiversityCompute,
                device: torch.device | str = "cpu", progress: bool = True, replica: int = 0) -> np.ndarray:
    """float32 (T, D) embeddings; `load_tasks(ids)` gives ([0, 1] images (k, n, C, H, W), labels (k, n)).
    `replica` > 0 embeds the same tasks with their own random draws redrawn (see task_streams)."""
    task_ids = list(task_ids)
    out = []
    n_batches = math.ceil(len(task_ids) / compute.task_batch)
    bar = tqdm(total=len(task_ids), desc=f"Task2Vec ({settings.method})", unit="task", disable=not progress)
    for i in range(n_batches):
        ids = task_ids[i * compute.task_batch:(i + 1) * compute.task_batch]
        images, labels = load_tasks(ids)
        out.append(embed_batch(probe, images, labels, ids, seed, settings, compute, device, replica).cpu())
        bar.update(len(ids))
    bar.close()
    emb = torch.cat(out).numpy().astype(np.float32)
    if not np.isfinite(emb).all():
        raise FloatingPointError("Task2Vec: non-finite values in the embeddings (a diverged head or probe?)")
    return emb
