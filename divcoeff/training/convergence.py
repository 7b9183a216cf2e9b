"""One stopping rule for every checkpoint we train: PT and MAML, every training set.

The rule (``training.convergence``, the step cap is ``training.steps``): every ``check_every``
steps, once at least ``min_steps`` steps are done, compare the mean training loss of the last
``window`` steps with the mean of the ``window`` steps before them. Training stops by the
criterion when that drop is smaller than ``min_improvement`` times the mean loss of the first
``window`` steps (the run's own starting scale: ln 40 for a 40-way PT head, ln 5 for a 5-way
MAML one), so "no longer learning" means the same fraction of the loss each family started
from. A run that reaches ``steps`` without meeting it stops by the cap, and says so.

The scale is the first window's, not the current loss: a PT loss near 0 still halves every
few windows, which a relative test would call progress forever.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

CRITERION, CAP = "criterion", "cap"


@dataclass
class StopRule:
    """Feed it one loss per step (:meth:`update`); it answers None (go on), ``"criterion"`` or ``"cap"``."""

    cap: int
    window: int
    check_every: int
    min_improvement: float
    min_steps: int
    enabled: bool = True
    losses: list[float] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings) -> "StopRule":
        c = settings.convergence
        return cls(cap=settings.steps, window=c.window, check_every=c.check_every,
                   min_improvement=c.min_improvement, min_steps=c.min_steps, enabled=c.enabled)

    def update(self, loss: float) -> str | None:
        self.losses.append(float(loss))
        n = len(self.losses)
        if self.enabled and self.converged(self.losses):
            return CRITERION
        return CAP if n >= self.cap else None

    def converged(self, losses: Sequence[float]) -> bool:
        """Whether the rule stops after the last of `losses` (a check step past the minimum)."""
        n, w = len(losses), self.window
        if n < max(self.min_steps, 2 * w) or n % self.check_every:
            return False
        scale = sum(losses[:w]) / w
        before = sum(losses[n - 2 * w:n - w]) / w
        last = sum(losses[n - w:]) / w
        return before - last < self.min_improvement * scale

    def first_stop(self, losses: Sequence[float]) -> tuple[int, str]:
        """(steps, reason) the rule would stop at on a whole loss curve (for measuring curves)."""
        for n in range(1, min(len(losses), self.cap) + 1):
            if self.enabled and self.converged(losses[:n]):
                return n, CRITERION
        return min(len(losses), self.cap), CAP
