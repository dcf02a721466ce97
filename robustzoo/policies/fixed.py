"""`Fixed`: the same budget for every sample and step: classic PGD-K (Madry et al.; Rice et al.)."""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..errors import InvalidValueError
from ..strategy import Strategy, check_eps
from .base import AttackPolicy, register_policy


@register_policy
class Fixed(AttackPolicy):
    """PGD with one eps/step/steps for all samples; the default is PGD-10, 8/255, 2/255."""

    def __init__(self, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 10):
        self.eps = check_eps(eps)
        self.step_size = check_eps(step_size, "step_size")
        if int(steps) != steps or steps < 0:
            raise InvalidValueError(f"steps={steps!r}; expected a non-negative integer")
        self.steps = int(steps)

    def strategy(self, model: nn.Module, x: Tensor, y: Tensor) -> Strategy:
        return Strategy.uniform(len(x), self.eps, self.step_size, self.steps, x.device)

    def config(self) -> dict[str, Any]:
        return {"eps": self.eps, "step_size": self.step_size, "steps": self.steps}
