"""The probe's layers as Task2Vec sees them, and a forward pass that exposes what the Fisher needs.

Layout: every Conv2d and BatchNorm2d of the body in ``named_modules`` order (downsample
branches included; the head is not part of the body), one value per output channel:
the published ``extract_embedding`` order. ResNet-18: 9,600 values, ResNet-34: 17,024.

BatchNorm: the published probe runs in train mode, so every BatchNorm layer normalises with
the statistics of the batch at hand. :class:`Trace` forces that on the body (whatever its
``training`` flag), optionally

- per *group* of consecutive samples (several tasks' batches in one forward pass, each
  normalised with its own statistics, exactly as if run alone), and
- with the statistics *detached* (constants), which makes the samples of a batch independent
  so that per-sample gradients are defined (the exact Fisher);

and, with ``capture=True``, records for the per-sample / per-group weight gradients:

- Conv2d: the layer's input (detached) and its output (whose gradient is asked for);
- BatchNorm2d: a zero tensor ``dw`` of shape (n, C) added to the BN weight per sample, so
  that d loss / d dw[i, c] is sample i's gradient of the BN weight c.
Running statistics are neither used nor updated (the published probe is copied per task, so
they never influence its result).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Layer:
    name: str
    module: nn.Module
    kind: str            # "conv" | "bn"
    channels: int        # values contributed to the embedding
    fan: int             # values averaged into one (in_ch * kh * kw for convs, 1 for BN)


def embedding_layout(body: nn.Module) -> list[Layer]:
    layers = []
    for name, m in body.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.groups != 1:
                raise ValueError(f"probe layer {name}: grouped convolutions are not supported (groups={m.groups})")
            layers.append(Layer(name, m, "conv", m.out_channels, m.weight[0].numel()))
        elif isinstance(m, nn.BatchNorm2d):
            if m.weight is None:
                raise ValueError(f"probe layer {name}: BatchNorm2d without affine weight has no Fisher to embed")
            layers.append(Layer(name, m, "bn", m.num_features, 1))
    if not layers:
        raise ValueError("probe body has no Conv2d/BatchNorm2d layers to embed")
    return layers


def embedding_dim(body: nn.Module) -> int:
    return sum(layer.channels for layer in embedding_layout(body))


@dataclass
class Captured:
    conv_in: dict[str, torch.Tensor] = field(default_factory=dict)
    conv_out: dict[str, torch.Tensor] = field(default_factory=dict)
    conv_version: dict[str, int] = field(default_factory=dict)
    bn_dw: dict[str, torch.Tensor] = field(default_factory=dict)


class Trace(contextlib.AbstractContextManager):
    """Within the block, the body's BatchNorm layers use batch statistics per group of
    `group_size` consecutive samples (None: the whole batch), detached if `detach_stats`."""

    def __init__(self, body: nn.Module, layers: list[Layer], group_size: int | None = None,
                 detach_stats: bool = False, capture: bool = False):
        self.body, self.layers = body, layers
        self.group_size, self.detach_stats, self.capture = group_size, detach_stats, capture
        self.captured = Captured()
        self._handles: list = []
        self._patched: list[nn.Module] = []

    def __enter__(self) -> "Trace":
        for layer in self.layers:
            m = layer.module
            if layer.kind == "bn":
                m.forward = self._bn_forward(layer)  # instance attribute shadows the class method
                self._patched.append(m)
            elif self.capture:
                self._handles.append(m.register_forward_hook(self._conv_hook(layer.name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        for m in self._patched:
            del m.forward
        self._handles, self._patched = [], []

    def grad_inputs(self) -> list[torch.Tensor]:
        """The tensors to differentiate the loss with respect to, in layout order."""
        c = self.captured
        return [c.conv_out[l.name] if l.kind == "conv" else c.bn_dw[l.name] for l in self.layers]

    def check_unmodified(self) -> None:
        for name, out in self.captured.conv_out.items():
            if out._version != self.captured.conv_version[name]:
                raise RuntimeError(f"probe layer {name}: its output was modified in place after the forward pass; "
                                   "per-sample gradients would be wrong (disable in-place ops in the probe)")

    def _conv_hook(self, name: str):
        def hook(module, inputs, output):
            self.captured.conv_in[name] = inputs[0].detach()
            self.captured.conv_out[name] = output
            self.captured.conv_version[name] = output._version
        return hook

    def _bn_forward(self, layer: Layer):
        m, trace = layer.module, self

        def forward(x: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]
            g = trace.group_size or n
            if n % g:
                raise ValueError(f"probe layer {layer.name}: batch of {n} is not a whole number of groups of {g}")
            if not trace.capture and g == n and not trace.detach_stats:
                # One group, plain train-mode BN: the native kernel (no running-stat update).
                return F.batch_norm(x, None, None, m.weight, m.bias, True, 0.0, m.eps)
            xg = x.view(n // g, g, *x.shape[1:])
            with torch.set_grad_enabled(torch.is_grad_enabled() and not trace.detach_stats):
                var, mean = torch.var_mean(xg, dim=(1, 3, 4), correction=0, keepdim=True)
                inv = torch.rsqrt(var + m.eps)
            xhat = ((xg - mean) * inv).view_as(x)
            if trace.capture:
                dw = torch.zeros(n, x.shape[1], device=x.device, dtype=x.dtype, requires_grad=True)
                trace.captured.bn_dw[layer.name] = dw
                w = (m.weight + dw)[:, :, None, None]
            else:
                w = m.weight[None, :, None, None]
            return xhat * w + m.bias[None, :, None, None]

        return forward


def per_filter_sq_grads(trace: Trace, grads: list[torch.Tensor], group: int, chunk: int,
                        cache: dict | None = None, draws: int = 1) -> list[torch.Tensor]:
    """Squared weight gradients, averaged per output channel, for groups of `group` samples.

    grads: the gradients of the loss w.r.t. ``trace.grad_inputs()``. group=1 gives per-sample
    values (n, C_l); group=g gives the squared gradient of each group's summed loss (n/g, C_l).
    Convolutions use whichever is cheaper: the explicit gradient (G A^T, squared) or its Gram
    form sum_ss' G_s K_ss' G_s' with K = A A^T; the Gram matrices are kept in `cache` across
    `draws` label draws on the same forward pass.
    """
    out = []
    for layer, g in zip(trace.layers, grads):
        if layer.kind == "bn":
            per_sample = g.detach()  # (n, C): d loss / d weight, per sample
            if group > 1:
                per_sample = per_sample.view(-1, group, per_sample.shape[1]).sum(1)
            out.append(per_sample.pow(2))
            continue
        m: nn.Conv2d = layer.module
        a = trace.captured.conv_in[layer.name]
        g = g.detach()
        n, o = g.shape[0], g.shape[1]
        s = g.shape[2] * g.shape[3]
        ckk = layer.fan
        rows = group * s  # positions summed into one gradient
        use_gram = rows * rows * (ckk / draws + o) < o * ckk * rows
        step = max(group, (chunk // group) * group)
        res = []
        for c0 in range(0, n, step):
            c1 = min(n, c0 + step)
            k = (c1 - c0) // group
            gc = g[c0:c1].flatten(2)                                         # (m, O, S)
            gc = gc.view(k, group, o, s).permute(0, 2, 1, 3).reshape(k, o, rows)
            key = (layer.name, c0)
            if use_gram and cache is not None and key in cache:
                kern = cache[key]
            else:
                au = F.unfold(a[c0:c1], m.kernel_size, m.dilation, m.padding, m.stride)  # (m, CKK, S)
                au = au.view(k, group, ckk, s).permute(0, 2, 1, 3).reshape(k, ckk, rows)
                if use_gram:
                    kern = torch.bmm(au.transpose(1, 2), au)                  # (k, rows, rows)
                    if cache is not None:
                        cache[key] = kern
            if use_gram:
                res.append((torch.bmm(gc, kern) * gc).sum(-1))
            else:
                res.append(torch.bmm(gc, au.transpose(1, 2)).pow_(2).sum(-1))
        out.append(torch.cat(res) / ckk)
    return out
