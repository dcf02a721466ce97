"""`Fixed`: the same budget for every sample and step: classic PGD-K (Madry et al.; Rice et al.)."""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..errors import InvalidValueError
from ..strategy import Strategy, check_eps
from .base import AttackPolicy, register_policy


@register_policy
class Fixed(AttackPolicy):
    """PGD with one eps/step/steps for all samples; the default is PGD-10, 8/255, 2/255.

    One-step fast AT is this policy with `steps=1`: FGSM-RS (Wong et al. 2020) is
    `Fixed(step_size=1.25 * eps, steps=1)` (uniform start in the ball, step, projection back);
    N-FGSM (de Jorge et al. 2022) is `Fixed(step_size=eps, steps=1, start_scale=2, project=False)` (noise
    from U[−2ε, 2ε], step ε, no projection: ‖δ‖∞ can reach 3ε). See `Strategy`.
    """

    def __init__(self, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 10, *,
                 start_scale: float = 1.0, project: bool = True):
        self.eps = check_eps(eps)
        self.step_size = check_eps(step_size, "step_size")
        if int(steps) != steps or steps < 0:
            raise InvalidValueError(f"steps={steps!r}; expected a non-negative integer")
        if not 0.0 <= start_scale <= 1.0 / self.eps:
            raise InvalidValueError(f"start_scale={start_scale!r}; expected 0 <= start_scale·eps <= 1 (the random "
                                    f"start's radius in multiples of eps; N-FGSM: 2)")
        self.steps, self.start_scale, self.project = int(steps), float(start_scale), bool(project)

    def strategy(self, model: nn.Module, x: Tensor, y: Tensor) -> Strategy:
        return Strategy.uniform(len(x), self.eps, self.step_size, self.steps, x.device,
                                start_scale=self.start_scale, project=self.project)

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"eps": self.eps, "step_size": self.step_size, "steps": self.steps}
        if (self.start_scale, self.project) != (1.0, True):  # configs of PGD runs stay as they were
            out.update(start_scale=self.start_scale, project=self.project)
        return out
