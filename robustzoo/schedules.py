"""Learning-rate schedules as plain functions of training progress (stateless: resume needs nothing)."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Piecewise:
    """LR factor `gamma ** k` after the k-th milestone; milestones are fractions of the run (Rice: 0.5, 0.75)."""

    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1

    def __call__(self, progress: float) -> float:
        return self.gamma ** sum(progress >= m for m in self.milestones)


@dataclass(frozen=True)
class Cosine:
    """Linear warmup over `warmup` (fraction of the run), then cosine decay to `floor`."""

    warmup: float = 0.0
    floor: float = 0.0

    def __call__(self, progress: float) -> float:
        if progress < self.warmup:
            return progress / self.warmup
        t = (progress - self.warmup) / max(1.0 - self.warmup, 1e-12)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


@dataclass(frozen=True)
class Constant:
    def __call__(self, progress: float) -> float:
        return 1.0
