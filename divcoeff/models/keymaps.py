"""State-dict key names of other ResNet-12 implementations, mapped onto ours (RFS names).

Our names (divcoeff.models.resnet12, identical to the published RFS checkpoints)::

    layer{i}.0.conv{1,2,3}.weight, layer{i}.0.bn{1,2,3}.*, layer{i}.0.downsample.{0,1}.*, cls.{weight,bias}

learn2learn ``learn2learn.vision.models.ResNet12`` (same BasicBlock layout, MetaOptNet code):

* 0.2.x: the backbone is a ``ResNet12Backbone`` at ``features``, the head a Linear at
  ``classifier``::

      features.layer{i}.0.<rest>   ->  layer{i}.0.<rest>
      classifier.{weight,bias}     ->  cls.{weight,bias}

* 0.1.x: the stages are attributes ``layer{i}`` *and* entries of a ``features`` Sequential,
  so every backbone tensor is saved twice::

      layer{i}.0.<rest>            ->  layer{i}.0.<rest>      (kept)
      features.{i-1}.0.<rest>      ->  layer{i}.0.<rest>      (the same tensor again; dropped
                                                              when equal to the layer{i} copy)
      classifier.{weight,bias}     ->  cls.{weight,bias}

* ``learn2learn.algorithms.MAML`` wraps the model as ``module``, ``nn.DataParallel`` too:
  leading ``module.`` prefixes are removed first.

The original RFS code (WangYueFt/rfs) names its head ``classifier`` as well; it maps the
same way. learn2learn's fixed ``AvgPool2d(5)`` equals our adaptive pool on 84x84 inputs
(5x5 final maps); with ``hidden_size`` other than the last width (avg_pool=False, 16k-dim
embeddings) the head does not fit and loading fails on its shape.
"""
from __future__ import annotations

import re
from typing import Mapping

import torch

_L2L_NEW = re.compile(r"^features\.layer([1-4])\.(.+)$")
_L2L_OLD = re.compile(r"^features\.([0-3])\.(.+)$")
_HEAD = re.compile(r"^classifier\.(weight|bias)$")
_OURS = re.compile(r"^(layer[1-4]\.|cls\.)")


def strip_prefixes(state: Mapping[str, torch.Tensor], prefixes: tuple[str, ...] = ("module.",)) -> dict:
    """Remove leading wrapper prefixes (``module.`` of learn2learn MAML / DataParallel), repeatedly."""
    out = {}
    for k, v in state.items():
        changed = True
        while changed:
            changed = False
            for p in prefixes:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v
    return out


def detect_naming(state: Mapping[str, torch.Tensor]) -> str:
    """'rfs' (our names), 'l2l' (learn2learn 0.2: features.layerN), 'l2l_old' (features.N duplicates) or 'unknown'."""
    keys = list(state)
    if any(_L2L_NEW.match(k) for k in keys):
        return "l2l"
    if any(_L2L_OLD.match(k) for k in keys):
        return "l2l_old"
    if any(k.startswith("layer1.") for k in keys):
        return "rfs"
    return "unknown"


def map_l2l_key(key: str) -> str | None:
    """Our name for one learn2learn key; None for a 0.1.x duplicate (``features.N.*``) to drop."""
    m = _L2L_NEW.match(key)
    if m:
        return f"layer{m.group(1)}.{m.group(2)}"
    if _L2L_OLD.match(key):
        return None
    m = _HEAD.match(key)
    if m:
        return f"cls.{m.group(1)}"
    return key


def to_rfs_names(state: Mapping[str, torch.Tensor]) -> tuple[dict, str]:
    """Return (state dict with our key names, the naming detected). Unknown keys pass through unchanged
    (the strict load then reports them)."""
    state = strip_prefixes(state)
    naming = detect_naming(state)
    out: dict[str, torch.Tensor] = {}
    if naming == "l2l_old":
        for k, v in state.items():
            m = _L2L_OLD.match(k)
            if m:
                ours = f"layer{int(m.group(1)) + 1}.{m.group(2)}"
                if ours in state:
                    if state[ours].shape != v.shape or not torch.equal(state[ours], v):
                        raise ValueError(f"learn2learn 0.1 state dict: {k} differs from its duplicate {ours}")
                    continue
                out[ours] = v
            else:
                out[map_l2l_key(k) or k] = v
        return out, naming
    for k, v in state.items():
        new = map_l2l_key(k)
        if new is not None:
            out[new] = v
    return out, naming
