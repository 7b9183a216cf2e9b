"""Replicates trained together: which checkpoints one training job makes.

A sheet row made here stands for replicates ``<row>-r0``, ``<row>-r1``, ... (divcoeff.config.expand_sheet).
The training stage runs one job per group of ``training.replicate_group`` = G consecutive replicate
indices of a row, ``<row>-g<j>`` holding replicates jG .. jG+G-1: a job's start-up (interpreter,
torch, the view) is paid once per group instead of once per checkpoint. Each replicate is still
trained by itself with its own seed, exactly as a job of its own would train it, so G changes no
checkpoint; raising a row's replicates adds jobs for the new groups only (a partly filled last
group is rerun with its new members, its old ones retrained to the same bits on a CPU).

Why one after another and not one batched computation (``torch.func.vmap`` over stacked
parameters, i.e. grouped convolutions): on a CPU these small ResNet-12s are bound by the
convolutions' arithmetic, and grouped convolutions are slower than the same convolutions run one
network at a time (bench/train.py measures both).
"""
from __future__ import annotations

from typing import Iterable, Mapping


def group_name(row: str, replicate: int, size: int) -> str:
    return f"{row}-g{int(replicate) // int(size)}"


def replicate_groups(checkpoints: Iterable[Mapping], size: int) -> dict[str, list[str]]:
    """Group name -> the checkpoint names it trains, in replicate order, for checkpoints given as
    mappings with ``name``, ``row`` and ``replicate`` (rows of the expanded sheet)."""
    if int(size) < 1:
        raise ValueError(f"training.replicate_group must be at least 1, got {size}")
    groups: dict[str, list[tuple[int, str]]] = {}
    for ck in checkpoints:
        groups.setdefault(group_name(ck["row"], ck["replicate"], size), []).append((int(ck["replicate"]), ck["name"]))
    return {g: [n for _, n in sorted(members)] for g, members in groups.items()}
