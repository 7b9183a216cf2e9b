"""MAML's inner loop, functional (torch.func) and batched over tasks.

One call adapts a model to T tasks at once: the parameters are a dict of tensors, the
inner loop is ``torch.func.grad`` of the support loss, and ``torch.func.vmap`` runs it over
the leading task dimension of the support/query tensors (on a GPU; a CPU loops over the
tasks, see "Vectorising" below). The model itself is never copied or modified (no deepcopy
per task, no ``learn2learn.clone_module``).

Shapes: ``support_x`` (T, n, C, H, W), ``support_y`` (T, n) int64 with labels 0..ways-1,
``query_x`` (T, m, C, H, W); adapted parameters carry a leading T dim; query logits are
(T, m, ways).

The head: MAML checkpoints end in a ``ways``-way head ``cls`` (5-way in the published ones
and ours) that is meta-learned with the body; at test time the whole network, head included,
is adapted from those meta-learned values on each episode's support set, and the episode's
local labels 0..ways-1 are the head's outputs (as in learn2learn). All parameters are adapted.

BatchNorm (``bn_mode``; our :class:`divcoeff.models.resnet12.BatchNorm2d` layers):
- ``"batch"``: normalise with the statistics of the batch at hand - the support set during
  adaptation, the query set when predicting (learn2learn keeps BN in train mode at test).
  Running statistics are neither used nor updated.
- ``"running"``: eval-mode BN with the model's stored running statistics.
- ``None``: BN follows ``model.training`` (train mode would update running stats in place,
  which vmap refuses; use it only with models without BatchNorm).
Dropout/DropBlock follow ``model.training``; call ``model.eval()`` for evaluation.

Order: ``first_order=True`` is FOMAML (the inner gradients are treated as constants, no
graph through them); ``first_order=False`` keeps the graph of the inner gradients
(create_graph), so a backward through the query loss gives the second-order meta-gradient.
Evaluation runs under ``torch.no_grad()`` (torch.func.grad still differentiates inside it).

Vectorising (``vectorize``): on a GPU, ``vmap`` runs the T tasks as one batched computation.
On a CPU it only adds overhead (per-task weights become grouped convolutions, about 40% slower
for a ResNet-12 here), so by default (``None``) tasks are vmapped on CUDA and looped over on
the CPU. Both paths compute the same function, derivatives included (tests/test_maml.py checks it):
for second-order MAML with batch-statistics BN the vmapped path computes BN from elementary
ops, because torch's vmap rule for the fused batch-norm kernel gets the second derivative wrong.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from divcoeff.models.resnet12 import bn_mode as _bn_mode

Params = dict[str, torch.Tensor]


def split_state(model: nn.Module, detach: bool = False) -> tuple[Params, Params]:
    """(parameters, buffers) of `model` as name -> tensor dicts (parameters keep requires_grad unless detach)."""
    params = {k: (v.detach() if detach else v) for k, v in model.named_parameters()}
    buffers = {k: v for k, v in model.named_buffers()}
    return params, buffers


def _use_vmap(vectorize: bool | None, x: torch.Tensor) -> bool:
    return x.is_cuda if vectorize is None else bool(vectorize)


def _decompose_bn(vmapped: bool, first_order: bool, bn_mode: str | None) -> bool:
    """Batch-statistics BN from elementary ops where vmap's fused rule has wrong second derivatives."""
    return vmapped and not first_order and bn_mode == "batch"


def _index(arg, t: int):
    """Task t of a batched argument (a tensor or a dict of tensors with a leading T dim)."""
    if isinstance(arg, dict):
        return {k: v[t] for k, v in arg.items()}
    return arg[t]


def _stack(outs: list):
    if isinstance(outs[0], dict):
        return {k: torch.stack([o[k] for o in outs]) for k in outs[0]}
    return torch.stack(outs)


def _map_tasks(fn: Callable, args: tuple, in_dims: tuple, vectorize: bool) -> object:
    """fn over the leading task dim of the args whose in_dim is 0: vmapped, or a plain loop."""
    if vectorize:
        return vmap(fn, in_dims=in_dims, randomness="different")(*args)
    T = next(a for a, d in zip(args, in_dims) if d == 0 and isinstance(a, torch.Tensor)).shape[0]
    return _stack([fn(*(a if d is None else _index(a, t) for a, d in zip(args, in_dims))) for t in range(T)])


def _check(support_x: torch.Tensor, support_y: torch.Tensor) -> None:
    if support_y.dim() != 2 or support_x.shape[:2] != support_y.shape:
        raise ValueError(f"maml: support_x must be (T, n, ...) and support_y (T, n); "
                         f"got {tuple(support_x.shape)} and {tuple(support_y.shape)}")


def _inner_loop(model: nn.Module, buffers: Params, steps: int, inner_lr: float, first_order: bool,
                loss_fn: Callable = F.cross_entropy) -> Callable:
    """The per-task function p, sx, sy -> adapted p (to be vmapped)."""

    def support_loss(p: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, (p, buffers), (x,)), y)

    dloss = grad(support_loss)

    def inner(p: Params, x: torch.Tensor, y: torch.Tensor) -> Params:
        for _ in range(steps):
            g = dloss(p, x, y)
            if first_order:
                g = {k: v.detach() for k, v in g.items()}
            p = {k: p[k] - inner_lr * g[k] for k in p}
        return p

    return inner


def adapt(model: nn.Module, params: Params, buffers: Params | None, support_x: torch.Tensor,
          support_y: torch.Tensor, *, steps: int, inner_lr: float, first_order: bool = True,
          bn_mode: str | None = "batch", vectorize: bool | None = None) -> Params:
    """Adapt `params` to each of T tasks by `steps` SGD steps of lr `inner_lr` on its support set.

    Returns the adapted parameters, each with a leading T dimension. Differentiable w.r.t.
    `params` (first- or second-order, see the module docstring).
    """
    _check(support_x, support_y)
    T = support_x.shape[0]
    buffers = {} if buffers is None else buffers
    if steps <= 0:
        return {k: v.unsqueeze(0).expand(T, *v.shape) for k, v in params.items()}
    inner = _inner_loop(model, buffers, int(steps), float(inner_lr), bool(first_order))
    vmapped = _use_vmap(vectorize, support_x)
    with _bn_mode(model, bn_mode, _decompose_bn(vmapped, first_order, bn_mode)):
        return _map_tasks(inner, (params, support_x, support_y), (None, 0, 0), vmapped)


def predict(model: nn.Module, params_t: Params, buffers: Params | None, query_x: torch.Tensor, *,
            bn_mode: str | None = "batch", vectorize: bool | None = None) -> torch.Tensor:
    """Logits (T, m, ways) of each task's query images under that task's parameters (leading T dim)."""
    buffers = {} if buffers is None else buffers

    def fwd(p: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, buffers), (x,))

    with _bn_mode(model, bn_mode):
        return _map_tasks(fwd, (params_t, query_x), (0, 0), _use_vmap(vectorize, query_x))


def meta_forward(model: nn.Module, params: Params, buffers: Params | None, support_x: torch.Tensor,
                 support_y: torch.Tensor, query_x: torch.Tensor, *, steps: int, inner_lr: float,
                 first_order: bool = True, bn_mode: str | None = "batch",
                 vectorize: bool | None = None) -> torch.Tensor:
    """Adapt on the support sets and return the query logits (T, m, ways), in one (vmapped) pass.

    Differentiable w.r.t. `params`: the MAML training step is
    ``F.cross_entropy(meta_forward(...).flatten(0, 1), query_y.flatten()).backward()``.
    """
    _check(support_x, support_y)
    if query_x.shape[0] != support_x.shape[0]:
        raise ValueError(f"maml: {support_x.shape[0]} support sets but {query_x.shape[0]} query sets")
    buffers = {} if buffers is None else buffers
    inner = _inner_loop(model, buffers, max(int(steps), 0), float(inner_lr), bool(first_order))

    def task(p: Params, sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (inner(p, sx, sy), buffers), (qx,))

    vmapped = _use_vmap(vectorize, support_x)
    with _bn_mode(model, bn_mode, _decompose_bn(vmapped, first_order, bn_mode)):
        return _map_tasks(task, (params, support_x, support_y, query_x), (None, 0, 0, 0), vmapped)


def adapt_and_predict(model: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                      *, steps: int, inner_lr: float, first_order: bool = True, bn_mode: str | None = "batch",
                      params: Params | None = None, buffers: Params | None = None,
                      chunk_size: int | None = None, vectorize: bool | None = None) -> torch.Tensor:
    """Query logits (T, m, ways) after adapting `model` (or `params`) on each task's support set.

    For evaluation: wrap in ``torch.no_grad()`` and put the model in eval mode. `chunk_size`
    tasks are adapted at a time (bounds memory; None = all T at once). Inputs must already be
    on the model's device.
    """
    if params is None or buffers is None:
        p0, b0 = split_state(model)
        params = p0 if params is None else params
        buffers = b0 if buffers is None else buffers
    T = support_x.shape[0]
    step = T if not chunk_size or chunk_size <= 0 else int(chunk_size)
    outs = []
    for s in range(0, T, step):
        sl = slice(s, s + step)
        outs.append(meta_forward(model, params, buffers, support_x[sl], support_y[sl], query_x[sl], steps=steps,
                                 inner_lr=inner_lr, first_order=first_order, bn_mode=bn_mode,
                                 vectorize=vectorize))
    return torch.cat(outs, 0)
