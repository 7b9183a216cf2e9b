"""Probe networks for Task2Vec (REFERENCE.md section 1).

A probe is a feature extractor ("body") whose Conv2d and BatchNorm2d weights define the
embedding layout, plus the preprocessing its inputs need. The classification head is *not*
part of the probe: Task2Vec gives every task a fresh head, which divcoeff.task2vec keeps as
plain (batched) tensors, so the body is never deep-copied per task.

Three kinds:
- torchvision ResNet-18/34 with ImageNet weights (torchvision's weights API,
  ``IMAGENET1K_V1``; downloaded once into torch's hub cache, which needs network access);
- the same architectures, randomly initialised from a seeded generator (torchvision's own
  init scheme, drawn without touching the global RNG);
- the backbone of a checkpoint from the sheet (divcoeff.checkpoints.load_checkpoint), its
  own head dropped.

The published probe replaces ``fc`` by ``Linear(512, N)`` and runs in train mode. The body
here has ``fc = Identity`` and stays in eval mode: divcoeff.task2vec forces the BatchNorm
layers to batch statistics itself (so dropout in checkpoint backbones stays off), which for
torchvision ResNets is exactly train mode.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from divcoeff.checkpoints import load_checkpoint
from divcoeff.settings import ProbeSettings

log = logging.getLogger(__name__)

PROBE_FORMAT = "divcoeff-probe/1"  # a probe pretrained by the workflow (divcoeff.training.probe)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_ARCHS = ("resnet18", "resnet34")


class ProbeError(RuntimeError):
    """A probe that cannot be built (unknown arch, weights out of reach, a bad checkpoint)."""


@dataclass
class Probe:
    """A frozen feature extractor plus what Task2Vec needs to know about it."""

    body: nn.Module                   # images (n, C, H, W), preprocessed -> features (n, feature_dim)
    feature_dim: int
    image_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: dict[str, Any] = field(default_factory=dict)  # written to the diversity JSON

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> normalised model inputs."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std

    def to(self, device: torch.device | str) -> "Probe":
        self.body.to(device)
        return self


def _prepare_body(body: nn.Module) -> nn.Module:
    """Eval mode, no parameter updates, and no in-place activations.

    Task2Vec's fast paths read each layer's input after the backward pass and take gradients
    with respect to layer outputs; an in-place ReLU would overwrite those tensors.
    """
    body.eval()
    for m in body.modules():
        if hasattr(m, "inplace") and isinstance(m.inplace, bool):
            m.inplace = False
    for p in body.parameters():
        p.requires_grad_(True)  # gradients are taken w.r.t. activations/weights, never stepped
    return body


def torchvision_constructor(arch: str):
    if arch not in TORCHVISION_ARCHS:
        raise ProbeError(f"diversity.probe.arch: expected one of {', '.join(TORCHVISION_ARCHS)}, got {arch!r}")
    import torchvision.models as tvm

    weights_enum = {"resnet18": tvm.ResNet18_Weights, "resnet34": tvm.ResNet34_Weights}[arch]
    return getattr(tvm, arch), weights_enum


def seeded_reinit_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """torchvision's ResNet init (kaiming-normal fan_out convs, BN 1/0), drawn from `generator`."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.weight.shape[1] ** 0.5
                m.weight.uniform_(-bound, bound, generator=generator)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=generator)
    return model


def torchvision_probe(arch: str = "resnet18", weights: str = "random", image_size: int = 84,
                      seed: int | None = None) -> Probe:
    """A torchvision ResNet-18/34 body (``fc`` removed).

    weights="imagenet" loads ``IMAGENET1K_V1`` through torchvision's weights API (cached in
    torch's hub folder after the first download); weights="random" draws torchvision's init
    from a generator seeded with `seed`.
    """
    build, weights_enum = torchvision_constructor(arch)
    if weights == "imagenet":
        w = weights_enum.IMAGENET1K_V1
        model = build(weights=None)
        try:
            state = w.get_state_dict(progress=False, check_hash=True)
        except Exception as e:  # URLError, HTTPError, hash mismatch, ...
            hub = torch.hub.get_dir()
            raise ProbeError(
                f"could not get the ImageNet weights of {arch} ({w.url}): {type(e).__name__}: {e}. "
                f"Download the file once into {hub}/checkpoints/ on a machine with network access, "
                f"or set diversity.probe.weights: random") from None
        model.load_state_dict(state)
        desc_weights = f"IMAGENET1K_V1 ({w.url.rsplit('/', 1)[-1]})"
    elif weights == "pool":
        raise ProbeError("diversity.probe.weights: pool - the probe is pretrained by rule train_probe; "
                         "build it with pool_probe(path)")
    elif weights == "random":
        if seed is None:
            raise ProbeError("a random-init probe needs a seed (diversity.seed)")
        model = build(weights=None)
        g = torch.Generator().manual_seed(int(seed))
        seeded_reinit_(model, g)
        desc_weights = "random"
    else:
        raise ProbeError(f"diversity.probe.weights: expected imagenet or random, got {weights!r}")
    feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    desc = {"kind": "torchvision", "arch": arch, "weights": desc_weights, "image_size": image_size,
            "feature_dim": feature_dim}
    if weights == "random":
        desc["init_seed"] = int(seed)
    return Probe(_prepare_body(model), feature_dim, image_size, 3, IMAGENET_MEAN, IMAGENET_STD, desc)


def pool_probe(path: str, arch: str, image_size: int) -> Probe:
    """The probe the workflow pretrained on its probe pool (rule train_probe), read with
    ``torch.load(weights_only=True)``; its architecture and input size must be the config's."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ProbeError(f"{path}: probe file not found (made by rule train_probe)") from None
    except Exception as e:  # noqa: BLE001 - any unpickler failure is the file's fault
        raise ProbeError(f"{path}: not a readable probe file ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != PROBE_FORMAT:
        raise ProbeError(f"{path}: not a {PROBE_FORMAT} file (made by rule train_probe)")
    if payload["arch"] != arch or int(payload["image_size"]) != int(image_size):
        raise ProbeError(f"{path}: a {payload['arch']} probe for {payload['image_size']}px inputs, but the config "
                         f"asks for {arch} at {image_size}px (diversity.probe); rerun rule train_probe")
    build, _ = torchvision_constructor(arch)
    model = build(weights=None)
    model.fc = nn.Identity()
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise ProbeError(f"{path}: the weights do not fit torchvision's {arch}: {e}") from None
    bad = [k for k, v in payload["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ProbeError(f"{path}: non-finite values in {bad[0]!r}: the probe's training diverged")
    meta = payload.get("meta", {})
    desc = {"kind": "torchvision", "arch": arch, "weights": "pool", "image_size": int(image_size),
            "feature_dim": 512, "path": str(path),
            "pool": meta.get("view"), "pool_classes": meta.get("classes"), "final": meta.get("final")}
    return Probe(_prepare_body(model), 512, int(image_size), 3, tuple(payload["mean"]), tuple(payload["std"]), desc)


class _CheckpointBody(nn.Module):
    """A checkpoint's backbone: ``model.features`` (its own head is unused and not in the layout)."""

    def __init__(self, model: nn.Module, head_names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.head_names = head_names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)


def checkpoint_probe(path: str, name: str, fallback_image_size: int = 84, family: str | None = None,
                     allow_pickle: bool = False) -> Probe:
    """The backbone of a checkpoint file (our format or a published one), with its preprocessing.

    Inputs take the checkpoint's own size and normalisation when it records them (our format
    does), else `fallback_image_size` and no normalisation."""
    try:
        loaded = load_checkpoint(path, family=family, allow_pickle=allow_pickle)
    except FileNotFoundError:
        raise ProbeError(f"diversity.probe.checkpoint {name!r}: file {path} not found") from None
    model = loaded.model
    # The head (cls / classifier) is replaced per task; dropping it keeps it out of the layout.
    head_names = tuple(n for n in ("cls", "classifier", "fc") if isinstance(getattr(model, n, None), nn.Module))
    for n in head_names:
        setattr(model, n, nn.Identity())
    pre = dict(loaded.preprocess or {})
    size = pre.get("image_size") or fallback_image_size
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    channels = int(pre.get("channels", 3))
    mean = tuple(pre.get("mean", (0.0,) * channels))
    std = tuple(pre.get("std", (1.0,) * channels))
    body = _CheckpointBody(model, head_names)
    with torch.no_grad():
        feature_dim = int(body.eval()(torch.zeros(2, channels, size, size)).shape[1])
    desc = {"kind": "checkpoint", "checkpoint": name, "path": str(path), "family": loaded.family,
            "image_size": size, "feature_dim": feature_dim}
    return Probe(_prepare_body(body), feature_dim, size, channels, mean, std, desc)


def build_probe(spec: ProbeSettings, seed: int, checkpoint_path: str | None = None) -> Probe:
    """The probe of the config's ``diversity.probe`` section (`checkpoint_path`: the sheet
    checkpoint of a checkpoint probe, or the file of a pool-pretrained one). With
    ``normalisation: dataset`` the probe normalises nothing itself: it takes the images as the view
    hands them out, normalised per benchmark (the published probe got the checkpoints' tensors)."""
    probe = _build_probe(spec, seed, checkpoint_path)
    if spec.normalisation == "dataset":
        probe.mean, probe.std = (0.0,) * probe.channels, (1.0,) * probe.channels
        probe.description["normalisation"] = "dataset"
    return probe


def _build_probe(spec: ProbeSettings, seed: int, checkpoint_path: str | None = None) -> Probe:
    if spec.kind == "torchvision" and spec.weights == "pool":
        if not checkpoint_path:
            raise ProbeError("diversity.probe.weights: pool needs the probe file of rule train_probe")
        return pool_probe(checkpoint_path, spec.arch, spec.image_size)
    if spec.kind == "torchvision":
        return torchvision_probe(spec.arch, spec.weights, spec.image_size, seed=seed)
    if spec.kind == "checkpoint":
        if not spec.checkpoint or not checkpoint_path:
            raise ProbeError("diversity.probe.kind: checkpoint needs diversity.probe.checkpoint, "
                             "a name from the checkpoint sheet")
        return checkpoint_probe(checkpoint_path, spec.checkpoint, spec.image_size)
    raise ProbeError(f"diversity.probe.kind: expected torchvision or checkpoint, got {spec.kind!r}")
