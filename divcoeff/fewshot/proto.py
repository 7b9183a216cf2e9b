"""Nearest class mean (prototype) classifier on L2-normalised features, for many episodes at once.

Logits are negative squared Euclidean distances to the class means of the support features
(the ProtoNet form), so a softmax over them gives a loss. On unit-norm features distances lie
in [0, 4]: like the C=1 logistic regression, this loss is squeezed towards ln(ways) and is
read through its temperature-calibrated version (divcoeff.fewshot.calibration).
"""
from __future__ import annotations

import torch


def prototypes(support: torch.Tensor) -> torch.Tensor:
    """(E, ways, shots, D) support features -> (E, ways, D) class means."""
    if support.dim() != 4:
        raise ValueError(f"prototypes: expected (E, ways, shots, D), got {tuple(support.shape)}")
    return support.mean(2)


def proto_logits(support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """(E, ways, shots, D) support and (E, m, D) query features -> (E, m, ways) logits -||q - c_w||^2."""
    c = prototypes(support).double()
    q = query.double()
    # Expanded form of the squared distance: one batched matmul instead of an (E, m, ways, D) tensor.
    d2 = (q * q).sum(-1, keepdim=True) - 2 * q @ c.transpose(1, 2) + (c * c).sum(-1).unsqueeze(1)
    return -d2.clamp_min(0.0)
