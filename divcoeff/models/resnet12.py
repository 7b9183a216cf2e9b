"""The RFS-style ResNet-12 used by the published checkpoints (REFERENCE.md section 2).

Four stages, each one BasicBlock: three 3x3 convs (bias=False) with BatchNorm and
LeakyReLU(0.1), a 1x1 conv + BN shortcut (``downsample``), the residual sum, LeakyReLU, a
2x2 max-pool; dropout (stages 1-2) or DropBlock (stages 3-4) after the pool when
``drop_rate > 0``; an adaptive average pool to ``widths[-1]`` features; a linear head ``cls``.

State-dict keys are exactly the published ones::

    layer{1..4}.0.conv{1,2,3}.weight
    layer{i}.0.bn{1,2,3}.{weight,bias,running_mean,running_var,num_batches_tracked}
    layer{i}.0.downsample.0.weight            (1x1 conv)
    layer{i}.0.downsample.1.{weight,bias,running_mean,running_var,num_batches_tracked}
    cls.weight, cls.bias                      (absent when num_classes is 0)

``model.features(x)`` -> (n, widths[-1]); ``model(x)`` -> logits (n, num_classes), or the
features when the model has no head (num_classes 0/None).

The average pool is adaptive (any input size; 84x84 gives the 5x5 map the published
AvgPool2d(5) pooled, so outputs are identical there).

BatchNorm layers are :class:`BatchNorm2d`, a subclass of ``nn.BatchNorm2d`` (same keys)
whose statistics can be forced with :func:`bn_mode` - "batch": the statistics of the batch
at hand, running statistics neither used nor updated (learn2learn's MAML at test time);
"running": the stored running statistics (eval-mode BN) whatever ``model.training`` says.
Without it (mode None) BN follows ``model.training`` as usual.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WIDTHS = (64, 160, 320, 640)
BN_MODES = ("batch", "running")


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose statistics can be forced to "batch" or "running" (see bn_mode)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stats_mode: str | None = None
        self.decomposed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stats_mode is None:
            return super().forward(x)
        if self.stats_mode == "batch":
            if self.decomposed:
                # The same function in elementary ops. torch.func.vmap's rule for the fused kernel
                # gives wrong second derivatives (second-order MAML, ~0.5% off here, float64 too);
                # these ops get them right, at about 1.7x the cost, so they are used only there.
                mean = x.mean((0, 2, 3), keepdim=True)
                var = x.var((0, 2, 3), unbiased=False, keepdim=True)
                y = (x - mean) * torch.rsqrt(var + self.eps)
                return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
            # running_mean/var None: normalise with the batch's statistics, update nothing.
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        if self.stats_mode == "running":
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        raise ValueError(f"BatchNorm stats_mode: expected None, 'batch' or 'running', got {self.stats_mode!r}")


@contextlib.contextmanager
def bn_mode(model: nn.Module, mode: str | None, decomposed: bool = False) -> Iterator[nn.Module]:
    """Force every :class:`BatchNorm2d` of `model` to "batch" or "running" statistics inside the block.

    Plain ``nn.BatchNorm2d`` layers (other models) are refused for a forced mode, since
    they would silently update their running statistics. `decomposed` computes "batch" BN
    from elementary ops (needed for second derivatives under vmap; see BatchNorm2d.forward).
    """
    if mode is not None and mode not in BN_MODES:
        raise ValueError(f"bn_mode: expected one of {BN_MODES} or None, got {mode!r}")
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if mode is not None:
        plain = [type(m).__name__ for m in bns if not isinstance(m, BatchNorm2d)]
        if plain:
            raise TypeError(f"bn_mode {mode!r} needs divcoeff.models.resnet12.BatchNorm2d layers; "
                            f"the model has {plain[0]}")
    old = [(getattr(m, "stats_mode", None), getattr(m, "decomposed", False)) for m in bns]
    try:
        for m in bns:
            if isinstance(m, BatchNorm2d):
                m.stats_mode, m.decomposed = mode, bool(decomposed)
        yield model
    finally:
        for m, (o, d) in zip(bns, old):
            if isinstance(m, BatchNorm2d):
                m.stats_mode, m.decomposed = o, d


class DropBlock(nn.Module):
    """DropBlock (Ghiasi et al. 2018) as in RFS / learn2learn: drop block_size^2 squares, rescale.

    Uses the global torch RNG (training seeds it inside a forked RNG state); identity in eval mode.
    """

    def __init__(self, block_size: int):
        super().__init__()
        self.block_size = int(block_size)

    def forward(self, x: torch.Tensor, gamma: float) -> torch.Tensor:
        if not self.training or gamma <= 0:
            return x
        n, c, h, w = x.shape
        bs = min(self.block_size, h, w)
        seeds = torch.bernoulli(torch.full((n, c, h - bs + 1, w - bs + 1), float(gamma), device=x.device, dtype=x.dtype))
        # A seed at (i, j) drops the block [i, i+bs) x [j, j+bs): the same mask as RFS's offsets.
        covered = _block_cover(seeds, bs, h, w)
        block_mask = 1.0 - covered
        count = block_mask.numel()
        ones = block_mask.sum().clamp_min(1.0)
        return block_mask * x * (count / ones)


def _block_cover(seeds: torch.Tensor, bs: int, h: int, w: int) -> torch.Tensor:
    """(n, c, h, w) map: 1 where some seed (i, j) of the (h-bs+1, w-bs+1) seed map covers [i, i+bs) x [j, j+bs)."""
    padded = F.pad(seeds, (bs - 1, bs - 1, bs - 1, bs - 1))
    return F.max_pool2d(padded, kernel_size=bs, stride=1)[:, :, :h, :w]


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv-bn-lrelu x2, conv-bn, + shortcut, lrelu, max-pool 2x2, dropout/DropBlock (RFS)."""

    def __init__(self, inplanes: int, planes: int, drop_rate: float = 0.0, drop_block: bool = False,
                 block_size: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = _conv3x3(planes, planes)
        self.bn3 = BatchNorm2d(planes)
        self.relu = nn.LeakyReLU(0.1)
        self.maxpool = nn.MaxPool2d(2)
        self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, kernel_size=1, stride=1, bias=False),
                                        BatchNorm2d(planes))
        self.drop_rate = float(drop_rate)
        self.drop_block = bool(drop_block)
        self.block_size = int(block_size)
        self.DropBlock = DropBlock(block_size)
        # Plain attribute as in RFS (not a buffer: it is not in the published state dicts).
        self.num_batches_tracked = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = self.maxpool(self.relu(out + self.downsample(x)))
        if self.drop_rate > 0 and self.training:
            self.num_batches_tracked += 1
            if self.drop_block:
                feat = out.size(2)
                keep_rate = max(1.0 - self.drop_rate / (20 * 2000) * self.num_batches_tracked, 1.0 - self.drop_rate)
                bs = min(self.block_size, feat)
                gamma = (1 - keep_rate) / bs ** 2 * feat ** 2 / (feat - bs + 1) ** 2
                out = self.DropBlock(out, gamma=gamma)
            else:
                out = F.dropout(out, p=self.drop_rate, training=True)
        return out


class ResNet12(nn.Module):
    """RFS ResNet-12 with configurable widths, input channels and head size (see module docstring)."""

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS, in_channels: int = 3, num_classes: int | None = 0,
                 drop_rate: float = 0.0, dropblock_size: int = 5, avg_pool: bool = True):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"ResNet12 widths: expected 4 positive integers, got {widths}")
        if not avg_pool:
            raise ValueError("ResNet12: avg_pool=False (flattened 5x5 maps, Lee et al.) is not supported; "
                             "the published RFS checkpoints use avg_pool=True")
        self.widths = widths
        self.in_channels = int(in_channels)
        self.drop_rate = float(drop_rate)
        self.dropblock_size = int(dropblock_size)
        cin = self.in_channels
        for i, w in enumerate(widths, start=1):
            block = BasicBlock(cin, w, drop_rate=drop_rate, drop_block=i >= 3, block_size=dropblock_size if i >= 3 else 1)
            self.add_module(f"layer{i}", nn.Sequential(block))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.cls: nn.Linear | None = None
        self.reset_head(num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    @property
    def feature_dim(self) -> int:
        return self.widths[-1]

    @property
    def num_classes(self) -> int:
        return 0 if self.cls is None else self.cls.out_features

    @property
    def hps(self) -> dict:
        """Constructor arguments, as stored under ``model_hps`` in our checkpoints."""
        return {"widths": list(self.widths), "in_channels": self.in_channels, "num_classes": self.num_classes,
                "drop_rate": self.drop_rate, "dropblock_size": self.dropblock_size, "avg_pool": True}

    @classmethod
    def from_hps(cls, hps: dict) -> "ResNet12":
        known = ("widths", "in_channels", "num_classes", "drop_rate", "dropblock_size", "avg_pool")
        return cls(**{k: hps[k] for k in known if k in hps and hps[k] is not None})

    def reset_head(self, num_classes: int | None) -> None:
        """Replace the head by a fresh ``Linear(widths[-1], num_classes)``; 0/None removes it."""
        self.cls = nn.Linear(self.widths[-1], int(num_classes)) if num_classes else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.size(1) != self.in_channels:
            raise ValueError(f"ResNet12: expected input (n, {self.in_channels}, H, W), got {tuple(x.shape)}")
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return f if self.cls is None else self.cls(f)
