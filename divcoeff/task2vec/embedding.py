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
from dataclasses import dataclass, fields
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from divcoeff.task2vec.probes import Probe
from divcoeff.seeding import torch_generator
from divcoeff.settings import DiversityCompute, DiversitySettings, compute_settings
from divcoeff.task2vec.fisher_exact import ExactFisherSettings, exact_fisher
from divcoeff.task2vec.fisher_faithful import cache_features, fisher_montecarlo
from divcoeff.task2vec.head import init_heads, train_heads
from divcoeff.task2vec.trace import embedding_layout

log = logging.getLogger(__name__)

METHODS = ("exact", "faithful")
STREAMS = ("head_init", "head_sampler", "fisher_sampler", "labels")


@dataclass(frozen=True)
class Task2VecSettings:
    """What the Task2Vec code reads, flat: the `diversity:` result settings and the
    `compute.diversity` ones (:meth:`from_settings`). No defaults here: they are the schema's
    (:meth:`from_flat` builds one from a few keys for tests and benches)."""

    method: str
    # published head step (both methods) and Monte-Carlo Fisher (faithful)
    head_epochs: int
    epoch_images: int
    batch_size: int
    lr: float
    weight_decay: float
    fisher_epochs: int
    engine: str                   # faithful Fisher: loop | batched | auto (per device)
    # exact Fisher
    exact_head_epochs: int
    label_draws: int
    chunk_size: int               # samples per per-sample-gradient block (memory bound)
    # both
    task_batch: int               # tasks per forward pass

    # flat name -> (config section, key)
    _WHERE = {"method": ("diversity", "method"), "head_epochs": ("faithful", "head_epochs"),
              "epoch_images": ("faithful", "epoch_images"), "batch_size": ("faithful", "batch_size"),
              "lr": ("faithful", "lr"), "weight_decay": ("faithful", "weight_decay"),
              "fisher_epochs": ("faithful", "fisher_epochs"), "engine": ("compute", "engine"),
              "exact_head_epochs": ("exact", "head_epochs"), "label_draws": ("exact", "label_draws"),
              "chunk_size": ("compute", "exact_chunk_size"), "task_batch": ("compute", "task_batch")}

    @classmethod
    def from_settings(cls, settings: DiversitySettings, compute: DiversityCompute) -> "Task2VecSettings":
        """The library's flat view of the `diversity:` result settings and the `compute.diversity` ones."""
        f, e = settings.faithful, settings.exact
        return cls(method=settings.method, head_epochs=f.head_epochs, epoch_images=f.epoch_images,
                   batch_size=f.batch_size, lr=f.lr, weight_decay=f.weight_decay, fisher_epochs=f.fisher_epochs,
                   engine=compute.engine, exact_head_epochs=e.head_epochs, label_draws=e.label_draws,
                   chunk_size=compute.exact_chunk_size, task_batch=compute.task_batch)

    @classmethod
    def from_flat(cls, **values) -> "Task2VecSettings":
        """From flat names (``method="exact", label_draws=0, ...``), the rest the schema's defaults."""
        unknown = set(values) - set(cls._WHERE)
        if unknown:
            raise TypeError(f"Task2VecSettings.from_flat: unknown key(s) {sorted(unknown)}")
        div: dict = {"faithful": {}, "exact": {}}
        compute: dict = {}
        for name, value in values.items():
            section, key = cls._WHERE[name]
            target = div if section == "diversity" else compute if section == "compute" else div[section]
            target[key] = value
        return cls.from_settings(DiversitySettings.from_config(div),
                                 compute_settings({"diversity": compute}).diversity)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def task_streams(seed: int, task_id: int, device: torch.device | str = "cpu", replica: int = 0
                 ) -> dict[str, torch.Generator]:
    """A task's random streams (CPU generators: draws are identical on every device).

    The head init is shared by all tasks (a fresh copy of one probe per task, as published); a
    per-task head init measured as a noise floor of ~0.085 on distances of ~0.095 between glyph
    tasks, which hid the differences between scripts."""
    # `replica` k > 0 redraws a task's own randomness (sampler, labels) with the probe and the shared
    # head init held fixed: the measurement's noise floor (divcoeff.diversity).
    key = (int(task_id),) if not replica else (int(task_id), "replica", int(replica))
    streams = {name: torch_generator(seed, "task2vec", *key, name) for name in STREAMS if name != "head_init"}
    return {"head_init": torch_generator(seed, "task2vec", "head_init"), **streams}


# CPU inputs up to this size (px) run the faithful Fisher batched across tasks (see faithful_engine).
CPU_BATCHED_MAX_SIZE = 32


def faithful_engine(setting: str, device: torch.device, image_size: int) -> str:
    """Which faithful Fisher engine to use: the setting, or for ``auto`` the one measured faster.

    CPU, measured with bench/task2vec.py (1 thread, real glyph tasks, random ResNet-18, alternating
    rounds, CPU seconds per task): at 32 px with 8 tasks per pass ``batched`` 4.24 vs ``loop``
    4.91 s/task (40 batches per task; 19.5 vs 20.6 with 2 tasks and the full 156) - one pass of
    ~380 distinct images keeps oneDNN's kernels busier than ~47 at a time on spatially tiny maps;
    at 84 px with 4 tasks ``loop`` 7.96 vs ``batched`` 8.94 s/task (10 batches) - the maps are big
    enough already, and one task's activations stay in cache. CUDA: ``batched``, not measured
    here (no GPU in reach); bench/gpu.sh times both engines at 32 and 84 px."""
    if setting in ("loop", "batched"):
        return setting
    if setting != "auto":
        raise ValueError(f"diversity.faithful.engine: expected auto, loop or batched, got {setting!r}")
    if device.type == "cpu" and image_size > CPU_BATCHED_MAX_SIZE:
        return "loop"
    return "batched"


def embed_batch(probe: Probe, images: torch.Tensor, labels: torch.Tensor, task_ids: Sequence[int], seed: int,
                settings: Task2VecSettings, device: torch.device | str = "cpu", replica: int = 0) -> torch.Tensor:
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
    if settings.method == "exact":
        per_layer = exact_fisher(probe, layers, x, labels, w0, b0, gens["head_sampler"], gens["labels"],
                                 ExactFisherSettings.of(settings))
    else:
        feats = cache_features(probe, layers, x, settings.batch_size)
        w, b = train_heads(feats, labels, w0, b0, gens["head_sampler"], settings.head_epochs,
                           settings.epoch_images, settings.batch_size, settings.lr, settings.weight_decay)
        engine = faithful_engine(settings.engine, device, images.shape[-1])
        per_layer = fisher_montecarlo(probe, layers, x, labels.to(device), w, b, gens["fisher_sampler"],
                                      gens["labels"], settings.fisher_epochs, settings.epoch_images,
                                      settings.batch_size, tasks_per_pass=1 if engine == "loop" else T)
    return torch.cat(per_layer, 1).detach()


def embed_tasks(probe: Probe, load_tasks: Callable[[Sequence[int]], tuple[torch.Tensor, torch.Tensor]],
                task_ids: Sequence[int], seed: int, settings: Task2VecSettings,
                device: torch.device | str = "cpu", progress: bool = True, replica: int = 0) -> np.ndarray:
    """float32 (T, D) embeddings; `load_tasks(ids)` gives ([0, 1] images (k, n, C, H, W), labels (k, n)).
    `replica` > 0 embeds the same tasks with their own random draws redrawn (see task_streams)."""
    task_ids = list(task_ids)
    out = []
    n_batches = math.ceil(len(task_ids) / settings.task_batch)
    bar = tqdm(total=len(task_ids), desc=f"Task2Vec ({settings.method})", unit="task", disable=not progress)
    for i in range(n_batches):
        ids = task_ids[i * settings.task_batch:(i + 1) * settings.task_batch]
        images, labels = load_tasks(ids)
        out.append(embed_batch(probe, images, labels, ids, seed, settings, device, replica).cpu())
        bar.update(len(ids))
    bar.close()
    emb = torch.cat(out).numpy().astype(np.float32)
    if not np.isfinite(emb).all():
        raise FloatingPointError("Task2Vec: non-finite values in the embeddings (a diverged head or probe?)")
    return emb
