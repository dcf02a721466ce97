"""`LossConstrainedSAAT` (SAAT, strength-adaptive adversarial training): the budget of each sample is the
smallest one on the τ-grid whose adversarial loss reaches ρ, capped at ε_max, found by SA-PGD (SAAT paper,
Algorithm 1; `robustzoo.attacks.sapgd.sa_pgd`). Defaults follow Sec. 4.1: τ = α = 2/255, K = 3."""
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
    """SA-PGD budgets: from 0, grow eps by `tau` with `steps_per_budget` steps of `step_size` at each
    budget, until the attack loss is ≥ `rho` or eps is `eps_max`.

    The strategy carries ε_max, α, K and (in `extras`) τ and ρ; its `search` is `sa_pgd`, which the
    defense runs with its own loss (CE for PGD-AT, KL for TRADES) and which writes back the budgets and
    steps each sample used and whether its loss reached ρ (`reached`, reported as a share in telemetry).
    The paper's settings: ρ 1.5-1.7, ε_max 9-14/255 (Table 1).
    """

    def __init__(self, *, rho: float = 1.5, eps_max: float = 8 / 255, tau: float = 2 / 255,
                 step_size: float = 2 / 255, steps_per_budget: int = 3):
        try:
            ok = float(rho) > 0  # NaN fails too; inf is standard AT (every sample searches to eps_max)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidValueError(f"rho={rho!r}; expected a minimum adversarial loss rho > 0 (e.g. 1.5)")
        self.rho = float(rho)
        self.eps_max = check_eps(eps_max, "eps_max")
        self.tau = check_eps(tau, "tau")
        self.step_size = check_eps(step_size, "step_size")
        try:
            ok = not isinstance(steps_per_budget, bool) and steps_per_budget == int(steps_per_budget) >= 1
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise InvalidValueError(f"steps_per_budget={steps_per_budget!r}; expected an integer >= 1 (e.g. 3)")
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
