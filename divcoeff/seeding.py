"""Seeds derived from the config: one master seed, named sub-streams for every stage.

Hashing (rather than adding offsets) keeps streams independent: the seed of train set
"a" in the diversity stage never equals the seed of train set "b" in training.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported only where a torch.Generator is made: the report env has no torch
    import torch


def derive_seed(master: int, *keys: object) -> int:
    """A 63-bit seed from the master seed and any names/numbers, stable across runs and machines."""
    text = "\x1f".join([str(int(master))] + [str(k) for k in keys])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def numpy_rng(master: int, *keys: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(master, *keys))


def torch_generator(master: int, *keys: object, device: str | torch.device = "cpu") -> torch.Generator:
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(master, *keys))
    return g
