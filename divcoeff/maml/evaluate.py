"""MAML checkpoints: adapt the whole network on each episode's support set, predict its queries.

The inner loop is :func:`divcoeff.maml.inner.adapt_and_predict` (torch.func, batched over episodes:
vmapped on a GPU, looped on a CPU where vmap's grouped convolutions are slower). This module
feeds it chunks of episodes gathered from the images loaded once, moves each chunk to the
device, and collects the logits. Settings follow learn2learn's test-time behaviour by
default: SGD with the inner learning rate, first-order, BatchNorm on batch statistics (the
support batch while adapting, the query batch when predicting).

``first_order`` does not change evaluation results (the adapted weights are the same numbers;
second order only keeps the graph a meta-gradient would need), only the cost: keep it true.
"""
from __future__ import annotations

import logging

import torch
from tqdm import tqdm

from divcoeff.device import fast_layout
from divcoeff.maml.inner import adapt_and_predict
from divcoeff.settings import MamlEvalSettings

log = logging.getLogger(__name__)

CPU_CHUNK = 8  # episodes per call on a CPU: only bounds memory there (tasks are looped)


def _labels(E: int, ways: int, per_class: int, device: torch.device) -> torch.Tensor:
    """Episode-local labels of a (ways, per_class) block flattened class-major: 0,0,..,1,1,.."""
    return torch.arange(ways, device=device).repeat_interleave(per_class).expand(E, -1).contiguous()


def _gather(images: torch.Tensor, pos: torch.Tensor, device: torch.device, batch_stats: bool = False) -> torch.Tensor:
    """(E, ...) positions into `images` -> (E, n, C, H, W) on `device`."""
    E = pos.shape[0]
    x = images[pos.reshape(-1)].view(E, -1, *images.shape[1:])
    if device.type == "cpu" and not batch_stats:  # each episode's (n, C, H, W) slice channels-last, like the weights
        return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    if device.type == "cpu":
        return x.contiguous()
    return x.to(device, non_blocking=True)


def _measured_chunk(model, images, support_pos, target_pos, settings, device, vectorize) -> int:
    """On a GPU: adapt one episode, and fit as many as half the free memory holds."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    _run_chunk(model, images, support_pos[:1], target_pos[:1], settings, device, vectorize)
    torch.cuda.synchronize(device)
    per_episode = max(torch.cuda.max_memory_allocated(device) - base, 1)
    free, _ = torch.cuda.mem_get_info(device)
    chunk = int(max(1, min(len(support_pos), 0.5 * free // per_episode)))
    log.info("MAML: %.1f MB per episode on %s, %.1f GB free: %d episodes per chunk", per_episode / 2**20, device,
             free / 2**30, chunk)
    return chunk


def _run_chunk(model, images, support_pos, target_pos, settings: MamlEvalSettings, device,
               vectorize: bool | None) -> torch.Tensor:
    E, ways, shots = support_pos.shape
    batch_stats = settings.bn_mode == "batch"  # channels-last only where it is exact (fast_layout)
    sx = _gather(images, support_pos, device, batch_stats)
    sy = _labels(E, ways, shots, device)
    qx = _gather(images, target_pos, device, batch_stats)
    return adapt_and_predict(model, sx, sy, qx, steps=settings.inner_steps, inner_lr=settings.inner_lr,
                             first_order=settings.first_order, bn_mode=settings.bn_mode, vectorize=vectorize)


@torch.no_grad()
def maml_logits(model: torch.nn.Module, images: torch.Tensor, support_pos: torch.Tensor, target_pos: torch.Tensor,
                settings: MamlEvalSettings, *, chunk_size: int = 0, vectorize: bool | None = None,
                device: torch.device | str = "cpu", progress: bool = True, desc: str = "maml") -> torch.Tensor:
    """Logits (E, m, ways) of each episode's target images after adapting on its support set.

    `images` (U, C, H, W): the preprocessed images, each once (CPU); `support_pos` (E, ways, shots)
    and `target_pos` (E, m): positions into `images`. Support labels are the class index w.
    `chunk_size` episodes are adapted at once (0: CPU_CHUNK on a CPU, measured on a GPU);
    `vectorize` vmaps over them (None: divcoeff.maml.inner's default, on CUDA only).
    """
    device = torch.device(device)
    ways = support_pos.shape[1]
    if model.num_classes != ways:
        raise ValueError(f"MAML evaluation: the checkpoint's head has {model.num_classes} outputs but the "
                         f"episodes are {ways}-way; a MAML checkpoint is evaluated with its own N-way head")
    fast_layout(model.eval().to(device), device, batch_stats=settings.bn_mode == "batch")
    E = support_pos.shape[0]
    chunk = chunk_size
    if not chunk:
        chunk = _measured_chunk(model, images, support_pos, target_pos, settings, device, vectorize) \
            if device.type == "cuda" else CPU_CHUNK
    out = []
    with tqdm(total=E, desc=desc, unit="episode", disable=not progress) as bar:
        for s in range(0, E, chunk):
            logits = _run_chunk(model, images, support_pos[s:s + chunk], target_pos[s:s + chunk], settings, device,
                                vectorize)
            out.append(logits.float().cpu())
            bar.update(logits.shape[0])
    return torch.cat(out)
