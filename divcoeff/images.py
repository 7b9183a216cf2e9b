"""Image conversions shared by the data views and the checkpoint loader (below both in the layers:
it imports nothing of divcoeff)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def convert_images(x: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Resize (antialiased bilinear) and convert grey<->RGB; x is (n, C, H, W) in [0, 1]."""
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    if x.shape[1] == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise ValueError(f"cannot convert images with {x.shape[1]} channels to {channels}")
