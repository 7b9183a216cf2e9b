"""Which device and how many threads a job gets.

Snakemake never sets CUDA_VISIBLE_DEVICES itself; SLURM does for `--gres=gpu` jobs. So a job
uses CUDA only when the config allows it and torch sees a device, and otherwise runs on CPU
with as many threads as the job was given.
"""
from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def pick_device(setting: str = "auto") -> torch.device:
    """`auto`: CUDA when a GPU is visible to this job, else CPU. `cuda` without a GPU is an error."""
    if setting not in ("auto", "cpu", "cuda"):
        raise ValueError(f"config 'device': expected auto, cpu or cuda, got {setting!r}")
    if setting == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if setting == "cuda":
        raise RuntimeError(
            "config 'device: cuda' but no GPU is visible to this job "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
            "use device: auto to fall back to CPU")
    return torch.device("cpu")


def set_threads(n: int | None) -> None:
    """Use the job's CPUs (Snakemake `threads`), not every core of the node."""
    if n and n > 0:
        torch.set_num_threads(int(n))


def fast_layout(model: torch.nn.Module, device: torch.device, *, batch_stats: bool = False) -> torch.nn.Module:
    """Channels-last weights on a CPU (oneDNN's convolutions run ~20% faster on them for these
    small ResNet-12s) where that is exact to float rounding: BatchNorm on running statistics.
    With batch statistics (`batch_stats`: train-mode BN, the published protocol, MAML's default)
    torch's CPU kernel for channels-last float32 is less accurate (docs/published-study.md), so the
    model is kept contiguous (NCHW). Converts `model` in place."""
    if device.type == "cpu":
        model.to(memory_format=torch.contiguous_format if batch_stats else torch.channels_last)
    return model


def cpu_input_layout(x: torch.Tensor, *, batch_stats: bool = False) -> torch.Tensor:
    """A CPU batch in the layout :func:`fast_layout` gives the weights."""
    return x.contiguous(memory_format=torch.contiguous_format if batch_stats else torch.channels_last)
