"""The `training:` section of the config as a checked object.

What is held fixed across training sets and families: architecture (``widths``, ``drop_rate``,
``dropblock_size``), optimiser (Adam ``lr``, ``weight_decay``), ``steps`` and
``images_per_step``. PT draws ``images_per_step`` images per step; MAML draws ``meta_batch``
tasks of ``ways * (shots + queries)`` images, which must add up to the same number (checked
here, so a config cannot silently give one family more data than the other).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

BN_MODES = ("batch", "running")


@dataclass(frozen=True)
class MamlSettings:
    ways: int = 5
    shots: int = 5
    queries: int = 15
    meta_batch: int = 1
    inner_steps: int = 5
    inner_lr: float = 0.1
    first_order: bool = True
    bn_mode: str = "batch"

    @property
    def images_per_task(self) -> int:
        return self.ways * (self.shots + self.queries)


@dataclass(frozen=True)
class TrainSettings:
    widths: tuple[int, ...] = (64, 160, 320, 640)
    drop_rate: float = 0.0
    dropblock_size: int = 5
    steps: int = 300
    images_per_step: int = 100
    lr: float = 1.0e-3
    weight_decay: float = 5.0e-4
    seed: int = 41
    arch: str = "resnet12"
    maml: MamlSettings = field(default_factory=MamlSettings)

    @classmethod
    def from_config(cls, training: Mapping[str, Any], where: str = "config training") -> "TrainSettings":
        """Build from the config's `training:` mapping (schema defaults already filled in)."""
        t = dict(training)
        unknown_maml = set(t.get("maml", {})) - set(MamlSettings.__dataclass_fields__)
        unknown = set(t) - set(cls.__dataclass_fields__)
        if unknown or unknown_maml:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown | {f'maml.{k}' for k in unknown_maml})}")
        maml = MamlSettings(**t.pop("maml", {}))
        if "widths" in t:
            t["widths"] = tuple(int(w) for w in t["widths"])
        settings = cls(maml=maml, **t)
        settings.check(where)
        return settings

    def check(self, where: str = "config training") -> None:
        if self.arch != "resnet12":
            raise ValueError(f"{where}.arch: only 'resnet12' can be trained, got {self.arch!r}")
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise ValueError(f"{where}.widths: expected 4 positive integers, got {list(self.widths)}")
        if self.steps < 1 or self.images_per_step < 1:
            raise ValueError(f"{where}: steps and images_per_step must be positive")
        if self.maml.bn_mode not in BN_MODES:
            raise ValueError(f"{where}.maml.bn_mode: expected one of {BN_MODES}, got {self.maml.bn_mode!r}")
        per_step = self.maml.meta_batch * self.maml.images_per_task
        if per_step != self.images_per_step:
            m = self.maml
            raise ValueError(
                f"{where}: images_per_step is {self.images_per_step} but MAML draws maml.meta_batch * maml.ways * "
                f"(maml.shots + maml.queries) = {m.meta_batch} * {m.ways} * ({m.shots} + {m.queries}) = {per_step} "
                "images per step; make them equal so that PT and MAML see the same number of images")

    @property
    def model_kwargs(self) -> dict:
        return {"widths": self.widths, "drop_rate": self.drop_rate, "dropblock_size": self.dropblock_size}

    def as_dict(self) -> dict:
        """Plain dict (lists, not tuples) for checkpoint metadata and hashing."""
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d
