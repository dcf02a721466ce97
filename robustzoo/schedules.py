"""Learning-rate schedules as plain functions of training progress (stateless: resume needs nothing)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InvalidValueError


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


@dataclass(frozen=True)
class Cyclic:
    """One linear cycle 0 → 1 → 0 with its top at `peak` (fraction of the run), stepped per batch: the
    one-step fast-AT schedule (torch's `CyclicLR(0, max_lr)` in `locuslab/fast_adversarial`
    `CIFAR10/train_fgsm.py:85-88` and `pdejorge/N-FGSM` `train.py:177-184`)."""

    peak: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.peak < 1.0:
            raise InvalidValueError(f"peak={self.peak!r}; expected a fraction of the run in (0, 1)")

    def __call__(self, progress: float) -> float:
        if progress < self.peak:
            return progress / self.peak
        return max(0.0, (1.0 - progress) / (1.0 - self.peak))
