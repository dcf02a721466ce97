"""`LossConstrainedSAAT` (SAAT, strength-adaptive adversarial training): the budget of each sample is the
smallest one whose adversarial loss reaches ρ (SA-PGD, Algorithm 1), capped at ε_max."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..attacks.sapgd import sa_pgd
from ..errors import InvalidValueError
from ..strategy import Strategy, check_eps
from .base import AttackPolicy, register_policy


@register_policy
class LossConstrainedSAAT(AttackPolicy):
    """SA-PGD budgets: grow eps by `tau`, `steps_per_budget` steps of `step_size` each, until loss ≥ `rho`.

    Defaults: ρ 1.5, ε_max 8/255, τ = α = 2/255, K = 3 (SAAT Sec. 4.1). The defense runs the search with
    its own loss (CE for PGD-AT, KL for TRADES); telemetry gets the budgets and steps actually used and
    the share of samples whose loss reached ρ (`reached`).
    """

    def __init__(self, rho: float = 1.5, eps_max: float = 8 / 255, tau: float = 2 / 255,
                 step_size: float = 2 / 255, steps_per_budget: int = 3):
        if not rho > 0:
            raise InvalidValueError(f"rho={rho!r}; expected a loss threshold > 0")
        self.rho, self.eps_max = float(rho), check_eps(eps_max, "eps_max")
        self.tau, self.step_size = check_eps(tau, "tau"), check_eps(step_size, "step_size")
        if int(steps_per_budget) != steps_per_budget or steps_per_budget < 1:
            raise InvalidValueError(f"steps_per_budget={steps_per_budget!r}; expected an integer >= 1")
        self.steps_per_budget = int(steps_per_budget)

    def strategy(self, model: nn.Module, x: Tensor, y: Tensor) -> Strategy:
        s = Strategy.uniform(len(x), self.eps_max, self.step_size, self.steps_per_budget, x.device)
        s.extras = {"tau": torch.full((len(x),), self.tau, device=x.device),
                    "rho": torch.full((len(x),), self.rho, device=x.device)}
        s.search = sa_pgd
        return s

    def config(self) -> dict[str, Any]:
        return {"rho": self.rho, "eps_max": self.eps_max, "tau": self.tau, "step_size": self.step_size,
                "steps_per_budget": self.steps_per_budget}
