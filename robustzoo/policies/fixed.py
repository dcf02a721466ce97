"""`Fixed`: the same budget for every sample and step: classic PGD-K (Madry et al.; Rice et al.)."""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..errors import InvalidValueError
from ..strategy import Strategy, check_budget, check_norm
from .base import AttackPolicy, register_policy


@register_policy
class Fixed(AttackPolicy):
    """PGD with one eps/step/steps for all samples; the default is PGD-10, 8/255, 2/255.

    One-step fast AT is this policy with `steps=1`: FGSM-RS (Wong et al. 2020) is
    `Fixed(step_size=1.25 * eps, steps=1)` (uniform start in the ball, step, projection back);
    N-FGSM (de Jorge et al. 2022) is `Fixed(step_size=eps, steps=1, start_scale=2, project=False)` (noise
    from U[−2ε, 2ε], step ε, no projection: ‖δ‖∞ can reach 3ε). See `Strategy`. `norm="L2"` attacks in
    the L2 ball of radius eps (Rice et al.'s L2 PGD-AT: `Fixed(128/255, 15/255, 10, norm="L2")`).
    """

    norms = ("Linf", "L2")

    def __init__(self, eps: float | None = None, step_size: float | None = None, steps: int = 10, *,
                 start_scale: float = 1.0, project: bool = True, norm: str = "Linf"):
        self.norm = check_norm(norm)
        if norm != "Linf" and (eps is None or step_size is None):
            raise InvalidValueError(f"Fixed(norm={norm!r}) needs eps and step_size (the defaults 8/255 and 2/255 "
                                    f"are L∞ budgets); e.g. Fixed(eps=0.5, step_size=0.125, norm={norm!r})")
        self.eps = check_budget(8 / 255 if eps is None else eps, norm)
        self.step_size = check_budget(2 / 255 if step_size is None else step_size, norm, "step_size")
        if int(steps) != steps or steps < 0:
            raise InvalidValueError(f"steps={steps!r}; expected a non-negative integer")
        if not (start_scale >= 0.0 and (norm == "L2" or start_scale * self.eps <= 1.0)):
            raise InvalidValueError(f"start_scale={start_scale!r}; expected 0 <= start_scale·eps <= 1 (the random "
                                    f"start's radius in multiples of eps; N-FGSM: 2)")
        self.steps, self.start_scale, self.project = int(steps), float(start_scale), bool(project)

    def strategy(self, model: nn.Module, x: Tensor, y: Tensor) -> Strategy:
        return Strategy.uniform(len(x), self.eps, self.step_size, self.steps, x.device,
                                start_scale=self.start_scale, project=self.project, norm=self.norm)

    def config(self) -> dict[str, Any]:
        # start_scale and project always: a resume compares the keys the saved run has (runs.differences),
        # so an FGSM-RS run resumed as N-FGSM is refused
        out: dict[str, Any] = {"eps": self.eps, "step_size": self.step_size, "steps": self.steps,
                               "start_scale": self.start_scale, "project": self.project}
        if self.norm != "Linf":
            out["norm"] = self.norm
        return out
