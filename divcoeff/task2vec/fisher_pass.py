"""One forward/backward pass of the Monte-Carlo Fisher: each task's batch-gradient of its own loss.

A pass holds the batches of G tasks (G = 1 for the loop engine), one *group* of rows per task.
Three things make it cheaper than the published ``loss.backward()`` on 64 images, with the same
numbers up to float32 rounding:

1. **Each image once, with its multiplicity.** The sampler draws 64 of a task's 100 images with
   replacement: ~47 distinct ones. Copies of one image in one batch have the same activations
   (train-mode BatchNorm sees the whole batch, but a copy is the same function of it), so the
   batch is run on the distinct images, BatchNorm statistics are taken with each image weighted
   by its multiplicity (:class:`_GroupBatchNorm`), and the gradient w.r.t. an image's logits is
   the sum over its copies (the caller's job). ~26% fewer images per pass.
2. **Only the gradients the embedding needs, per group.** Per layer the pass exposes one leaf
   per group (conv: the weight repeated G times; BatchNorm: its weight repeated G times);
   ``torch.autograd.grad`` w.r.t. those leaves gives every task's own weight gradient, and
   nothing else is computed (no BN bias, no head, no gradient w.r.t. the images).
3. **Weight gradients that fit the layer's shape on CPU.** oneDNN's weight-gradient kernel is
   slow where the output is spatially tiny (measured, 1 thread, ~47 images: 512->512 3x3 on
   1x1 maps 9.1 ms vs 2.4 ms as one im2col GEMM, 256->256 on 2x2 4.4 vs 3.1 ms, 512->512 on
   3x3 41 vs 23 ms; on 4x4 maps oneDNN wins, 128->128 1.8 vs 3.8 ms); up to 3x3 outputs the
   gradient is formed as (output gradient) x (unfolded input)^T in one GEMM. Kernel taps that
   only ever see zero padding (a 3x3 convolution on a 1x1 map uses its centre only) are
   cropped away: their weight gradient is exactly zero and they add exact zeros to the output;
   a convolution whose kept kernel covers its whole unpadded input is a matrix product.

What stays as published: train-mode BatchNorm with the statistics of each task's batch
(biased variance, eps from the module), the same per-layer weights, float32.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from divcoeff.task2vec.trace import Layer

# Output positions (Ho * Wo) up to which a CPU weight gradient is one im2col GEMM rather than
# oneDNN's kernel (numbers in the module docstring: GEMM up to 3x3 outputs, oneDNN from 4x4).
GEMM_MAX_POSITIONS = 9


@dataclass(frozen=True)
class RowGroups:
    """The rows of one pass: G contiguous groups (one task's batch each), every row one distinct
    image with its multiplicity in the batch."""

    bounds: tuple[int, ...]          # G + 1 row offsets
    group: torch.Tensor              # (n,) group of each row
    share: torch.Tensor              # (n,) multiplicity / batch size: sums to 1 in each group
    member: torch.Tensor             # (G, n) 1 where row i is in group g

    @classmethod
    def from_counts(cls, counts: list[torch.Tensor], device, dtype=torch.float32) -> "RowGroups":
        """`counts[g]`: multiplicities of group g's rows (their sum is that group's batch size)."""
        sizes = [len(c) for c in counts]
        bounds = [0]
        for s in sizes:
            bounds.append(bounds[-1] + s)
        group = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(sizes)).to(device)
        share = torch.cat([c.double() / c.sum() for c in counts]).to(device=device, dtype=dtype)
        member = F.one_hot(group, len(counts)).T.to(dtype)
        return cls(tuple(bounds), group, share, member)

    @property
    def n_groups(self) -> int:
        return len(self.bounds) - 1

    def slices(self):
        return [slice(a, b) for a, b in zip(self.bounds[:-1], self.bounds[1:])]

    def per_row(self, per_group: torch.Tensor) -> torch.Tensor:
        """(G, ...) -> (n, ...): each row gets its group's value."""
        return per_group[0].expand(self.group.shape[0], *per_group.shape[1:]) if self.n_groups == 1 \
            else per_group[self.group]


class _GroupBatchNorm(torch.autograd.Function):
    """Train-mode BatchNorm2d per group, rows weighted by multiplicity; d loss / d weight per group.

    Each row stands for `share * B` identical images of a batch of B: the group's mean and biased
    variance are the share-weighted ones, exactly those of the batch with its copies. The gradient
    w.r.t. a row is the sum over its copies, which is what the backward below gives when the
    incoming gradient is already summed over copies (xhat = (x - mean) * invstd, w = share / (H W),
    sums over the group's rows and positions):
    dx = invstd * (dxhat - w * sum(dxhat) - w * xhat * sum(dxhat * xhat)),  dxhat = dy * weight.
    Only the centred input is kept. Forward and backward each make four passes over the
    activations, torch's fused kernels two: measured, with the copies it saves, still a gain
    (module docstring), but BatchNorm is where most of the rest would be."""

    @staticmethod
    def forward(ctx, x, weight, bias, weight_per_group, eps, rows: RowGroups):
        hw = x.shape[2] * x.shape[3]
        w_row = rows.member * (rows.share / hw)                                   # (G, n)
        mean = w_row @ x.sum((2, 3))                                              # (G, C)
        xc = x - rows.per_row(mean)[:, :, None, None]
        var = w_row @ torch.linalg.vecdot(xc.flatten(2), xc.flatten(2))          # biased, two-pass
        invstd = torch.rsqrt(var + eps)
        ctx.save_for_backward(xc, weight, invstd)
        ctx.rows = rows
        scale = rows.per_row(invstd * weight)
        return torch.addcmul(bias[None, :, None, None], xc, scale[:, :, None, None])

    @staticmethod
    def backward(ctx, gy):
        xc, weight, invstd = ctx.saved_tensors
        rows: RowGroups = ctx.rows
        inv = rows.per_row(invstd)                                                # (n, C)
        per_row_dw = torch.linalg.vecdot(gy.flatten(2), xc.flatten(2)) * inv      # sum_hw dy * xhat
        dw_group = rows.member @ per_row_dw                                       # (G, C)
        dx = None
        if ctx.needs_input_grad[0]:
            hw = xc.shape[2] * xc.shape[3]
            sum_dxhat = (rows.member @ gy.sum((2, 3))) * weight                   # (G, C)
            sum_dxhat_xhat = dw_group * weight
            w = (rows.share / hw)[:, None]
            c0 = -inv * w * rows.per_row(sum_dxhat)
            c1 = -inv * inv * w * rows.per_row(sum_dxhat_xhat)                   # xhat = xc * inv
            dx = torch.addcmul(c0[:, :, None, None], gy, (inv * weight)[:, :, None, None])
            dx.addcmul_(xc, c1[:, :, None, None])
        return dx, None, None, dw_group, None, None


@dataclass(frozen=True)
class ConvShape:
    """A convolution as it is run on a given input size (kernel taps that only see padding cropped)."""

    rows: tuple[int, int]            # kernel taps kept, [r0, r1)
    cols: tuple[int, int]
    padding: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    dense: bool = False              # the kept kernel covers the whole (unpadded) input: a matrix product


def _kept_taps(size: int, k: int, stride: int, pad: int, dilation: int) -> tuple[int, int, int]:
    """Taps [t0, t1) of one spatial axis that touch the input, and the padding left; all taps when
    cropping would not give an ordinary convolution (same stride, symmetric padding, same output)."""
    everything = (0, k, pad)
    out = (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    used = [t for t in range(k) if any(0 <= o * stride + t * dilation - pad < size for o in range(out))]
    if not used or dilation != 1 or used != list(range(used[0], used[-1] + 1)):
        return everything
    t0, t1 = used[0], used[-1] + 1
    new_pad = pad - t0  # output o still reads input o * stride - pad + t for kept tap t
    if new_pad < 0 or (size + 2 * new_pad - (t1 - t0)) // stride + 1 != out:
        return everything
    return t0, t1, new_pad


def padded_explicitly(m: nn.Conv2d) -> bool:
    """Padding that F.conv2d's own (symmetric zero) padding cannot do: 'same' / 'valid' strings,
    reflect / replicate / circular modes. Such inputs are padded first (F.pad), as nn.Conv2d does."""
    return isinstance(m.padding, str) or m.padding_mode != "zeros"


def conv_shape(m: nn.Conv2d, height: int, width: int) -> ConvShape:
    """How convolution `m` is run on (height, width) inputs (already padded if padded_explicitly)."""
    padding = (0, 0) if padded_explicitly(m) else tuple(m.padding)
    r = _kept_taps(height, m.kernel_size[0], m.stride[0], padding[0], m.dilation[0])
    c = _kept_taps(width, m.kernel_size[1], m.stride[1], padding[1], m.dilation[1])
    dense = (r[2], c[2]) == (0, 0) and (r[1] - r[0], c[1] - c[0]) == (height, width) and m.dilation == (1, 1)
    return ConvShape((r[0], r[1]), (c[0], c[1]), (r[2], c[2]), tuple(m.stride), tuple(m.dilation), dense)


def group_weight_grads(x: torch.Tensor, gy: torch.Tensor, weight: torch.Tensor, shape: ConvShape,
                       rows: RowGroups) -> torch.Tensor:
    """(G, *weight.shape): each group's gradient of the convolution weight."""
    positions = gy.shape[2] * gy.shape[3]
    use_gemm = x.device.type == "cpu" and positions <= GEMM_MAX_POSITIONS
    out = []
    for sl in rows.slices():
        xs, gs = x[sl], gy[sl]
        if shape.dense:
            g = gs.flatten(1).T @ xs.flatten(1)
        elif use_gemm:
            cols = F.unfold(xs, weight.shape[2:], shape.dilation, shape.padding, shape.stride)  # (m, CKK, L)
            g = gs.flatten(2).transpose(0, 1).reshape(gs.shape[1], -1) @ \
                cols.transpose(1, 2).reshape(-1, cols.shape[1])
        else:
            g = torch.ops.aten.convolution_backward(gs, xs, weight, None, shape.stride, shape.padding,
                                                    shape.dilation, False, [0, 0], 1, (False, True, False))[1]
        out.append(g.view(weight.shape))
    return out[0].unsqueeze(0) if len(out) == 1 else torch.stack(out)


class _GroupConv(torch.autograd.Function):
    """conv2d whose backward gives the input gradient and each group's weight gradient (as the
    gradient of `weight_per_group`, the weight repeated G times)."""

    @staticmethod
    def forward(ctx, x, weight, weight_per_group, shape: ConvShape, rows: RowGroups):
        ctx.save_for_backward(x, weight)
        ctx.shape, ctx.rows = shape, rows
        if shape.dense:
            return (x.flatten(1) @ weight.flatten(1).T)[:, :, None, None]
        return F.conv2d(x, weight, None, shape.stride, shape.padding, shape.dilation)

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        shape: ConvShape = ctx.shape
        gx = None
        if ctx.needs_input_grad[0]:
            if shape.dense:
                gx = (gy.flatten(1) @ weight.flatten(1)).view(x.shape)
            else:
                gx = torch.ops.aten.convolution_backward(gy, x, weight, None, shape.stride, shape.padding,
                                                         shape.dilation, False, [0, 0], 1, (True, False, False))[0]
        return gx, None, group_weight_grads(x, gy, weight, shape, ctx.rows), None, None


class _MaxPoolChannelsLast(torch.autograd.Function):
    """max_pool2d whose forward runs on a channels-last copy (torch's NCHW CPU forward kernel is
    ~10x slower: 5.1 vs 0.44 ms for 47 x 64 x 16 x 16, 36 vs 3.1 ms at 42 x 42, 1 thread) and whose
    backward is the NCHW kernel (faster than the channels-last one on an NCHW gradient). Indices
    are positions within each channel's map, the same in either memory format, so this is
    max_pool2d exactly (ties aside: any maximum may be chosen)."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode):
        y, idx = F.max_pool2d(x.contiguous(memory_format=torch.channels_last), kernel_size, stride, padding,
                              dilation, ceil_mode=ceil_mode, return_indices=True)
        idx = idx.contiguous()
        ctx.save_for_backward(x, idx)
        ctx.args = kernel_size, stride, padding, dilation, ceil_mode
        return y.contiguous()

    @staticmethod
    def backward(ctx, gy):
        x, idx = ctx.saved_tensors
        k, s, p, d, ceil = ctx.args
        pair = torch.nn.modules.utils._pair
        gx = torch.ops.aten.max_pool2d_with_indices_backward(gy.contiguous(), x, pair(k), pair(s), pair(p), pair(d),
                                                            ceil, idx)
        return gx, None, None, None, None, None


def _channels_last_max_pool(m: nn.MaxPool2d):
    def forward(x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or m.return_indices:
            return type(m).forward(m, x)
        return _MaxPoolChannelsLast.apply(x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)

    return forward


class FisherPass(contextlib.AbstractContextManager):
    """Within the block, the body's Conv2d / BatchNorm2d layers run as above for `rows` (and its
    MaxPool2d layers channels-last on CPU).

    After the forward pass, ``leaves()`` are the tensors to differentiate w.r.t. (layout order), and
    ``per_filter_sq(grads)`` turns their gradients into (G, C_l) per-filter means of squares."""

    def __init__(self, body: nn.Module, layers: list[Layer], rows: RowGroups, cache: dict | None = None):
        self.body, self.layers, self.rows = body, layers, rows
        self.cache = {} if cache is None else cache  # per input size: conv shapes, cropped weights
        self._leaves: dict[str, torch.Tensor] = {}
        self._patched: list[nn.Module] = []

    def __enter__(self) -> "FisherPass":
        for layer in self.layers:
            layer.module.forward = (self._conv_forward if layer.kind == "conv" else self._bn_forward)(layer)
            self._patched.append(layer.module)
        for m in self.body.modules():
            if isinstance(m, nn.MaxPool2d):
                m.forward = _channels_last_max_pool(m)
                self._patched.append(m)
        return self

    def __exit__(self, *exc) -> None:
        for m in self._patched:
            del m.forward  # the instance attribute shadowed the class method
        self._patched = []

    def _leaf(self, layer: Layer, weight: torch.Tensor) -> torch.Tensor:
        if layer.name in self._leaves:
            raise RuntimeError(f"probe layer {layer.name} ran twice in one forward pass: not supported")
        leaf = weight.detach().expand(self.rows.n_groups, *weight.shape).requires_grad_()
        self._leaves[layer.name] = leaf
        return leaf

    def _conv_forward(self, layer: Layer):
        m: nn.Conv2d = layer.module

        def forward(x: torch.Tensor) -> torch.Tensor:
            if padded_explicitly(m):
                mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
                x = F.pad(x, m._reversed_padding_repeated_twice, mode=mode)
            key = (layer.name, x.shape[2], x.shape[3], m.weight._version)
            if key not in self.cache:
                shape = conv_shape(m, x.shape[2], x.shape[3])
                w = m.weight.detach()[:, :, shape.rows[0]:shape.rows[1], shape.cols[0]:shape.cols[1]]
                self.cache[key] = shape, w.contiguous()
            shape, w = self.cache[key]
            y = _GroupConv.apply(x, w, self._leaf(layer, w), shape, self.rows)
            return y if m.bias is None else y + m.bias.detach()[None, :, None, None]

        return forward

    def _bn_forward(self, layer: Layer):
        m: nn.BatchNorm2d = layer.module

        def forward(x: torch.Tensor) -> torch.Tensor:
            w = m.weight.detach()
            return _GroupBatchNorm.apply(x, w, m.bias.detach(), self._leaf(layer, w), m.eps, self.rows)

        return forward

    def leaves(self) -> list[torch.Tensor]:
        missing = [layer.name for layer in self.layers if layer.name not in self._leaves]
        if missing:
            raise RuntimeError(f"probe layers not run in the forward pass: {', '.join(missing)}")
        return [self._leaves[layer.name] for layer in self.layers]

    def per_filter_sq(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per group and output channel: mean of the squared weight gradient over the layer's full
        filter (cropped taps have gradient 0 and count in the mean)."""
        out = []
        for layer, g in zip(self.layers, grads):
            g = g.reshape(*g.shape[:2], -1)
            out.append(torch.linalg.vecdot(g, g) / layer.fan)
        return out
