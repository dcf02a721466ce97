"""`LossConstrainedSAAT` (SAAT, strength-adaptive adversarial training): samples whose adversarial loss stays
below ρ get a larger budget, found by SA-PGD (SAAT paper, Algorithm 1; `robustzoo.attacks.sapgd.sa_pgd`).

| mode | what each sample gets | paper |
|---|---|---|
| `"up"` (default) | the standard PGD-10 at 8/255 (2/255 steps, random start); if its loss is still < ρ, budgets 8/255 + τ, ... ≤ ε_max from there | SAAT_up, §4.3: the Table 1 rows (ε_max 14 and 9, ρ 1.7), and the stored SAAT code (`sapgd.py` docstring) |
| `"down"` | Algorithm 1 from x, capped at the base 8/255: a sample already past ρ gets nothing, easy ones less than 8/255 | SAAT_down, §4.3 (Table 1: ε_max 8, ρ 1.5 — pass `rho=1.5`; 45.54 AA against 48.23) |
| `"both"` | Algorithm 1 from x up to ε_max: down and up in one search (this library's first form) | Algorithm 1 as printed |

The code (a stored fork of `csdongxian/AWP` `AT_AWP/train_cifar10.py`, `--fname cifar_model_AWP_SAAT_max9_min17`,
lines hand-counted): PGD-10 at 8/255 with 2/255 steps and a random start (~L48-86); `sa_pgd` (~L88-134) starts
its eps at 8/255 (~L95), selects loss < 1.7 (~L101), adds 2/255 capped at ε_max = 9/255 (~L97, ~L104-108), takes
3 steps of 2/255 on the selected samples, checking the loss after each (~L109, ~L126-130); attacks in train mode
(the AWP code's), 200 epochs, lr ÷10 at 100 and 150. Different here: levels in one pass per level over the
samples still searching (one host read each), the same arithmetic.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn

from ..attacks.sapgd import sa_pgd
from ..errors import InvalidValueError
from ..strategy import Strategy, check_eps
from .base import AttackPolicy, register_policy

MODES = ("up", "down", "both")


@register_policy
class LossConstrainedSAAT(AttackPolicy):
    """SA-PGD budgets: grow eps by `tau` with `steps_per_budget` steps of `step_size` at each budget, until
    the attack loss is ≥ `rho` or eps is `eps_max` — from the standard attack (`mode="up"`, the tables) or
    from x (`"down"`, capped at `base_eps`; `"both"`, up to `eps_max`).

    The strategy carries ε_max, α, K and (in `extras`) τ and ρ; its `search` is `sa_pgd`, which the
    defense runs with its own loss (CE for PGD-AT, KL for TRADES) and which writes back the budgets and
    steps each sample used and whether its loss reached ρ (`reached`, reported as a share in telemetry).
    Defaults: the Table 1 SAAT_up row (ρ 1.7, ε_max 14/255), τ = α = 2/255, K = 3 (Sec. 4.1), base PGD-10
    at 8/255 with 2/255 steps.
    """

    def __init__(self, *, rho: float = 1.7, eps_max: float = 14 / 255, tau: float = 2 / 255,
                 step_size: float = 2 / 255, steps_per_budget: int = 3, mode: str = "up", base_eps: float = 8 / 255,
                 base_step_size: float = 2 / 255, base_steps: int = 10):
        try:
            ok = float(rho) > 0  # NaN fails too; inf is standard AT (every sample searches to eps_max)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidValueError(f"rho={rho!r}; expected a minimum adversarial loss rho > 0 (e.g. 1.5)")
        if mode not in MODES:
            raise InvalidValueError(f"mode={mode!r}; expected one of {', '.join(MODES)}")
        self.rho, self.mode = float(rho), mode
        self.eps_max = check_eps(eps_max, "eps_max")
        self.tau = check_eps(tau, "tau")
        self.step_size = check_eps(step_size, "step_size")
        self.base_eps, self.base_step_size = check_eps(base_eps, "base_eps"), check_eps(base_step_size, "base_step_size")
        for name, value in (("steps_per_budget", steps_per_budget), ("base_steps", base_steps)):
            try:
                ok = not isinstance(value, bool) and value == int(value) >= 1
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                raise InvalidValueError(f"{name}={value!r}; expected an integer >= 1 (e.g. 3)")
        self.steps_per_budget, self.base_steps = int(steps_per_budget), int(base_steps)

    def strategy(self, model: nn.Module, x: Tensor, y: Tensor) -> Strategy:
        cap = min(self.eps_max, self.base_eps) if self.mode == "down" else self.eps_max
        s = Strategy.uniform(len(x), cap, self.step_size, self.steps_per_budget, x.device)
        s.extras = {"tau": torch.full((len(x),), self.tau, device=x.device),
                    "rho": torch.full((len(x),), self.rho, device=x.device)}
        s.search = sa_pgd if self.mode != "up" else \
            functools.partial(sa_pgd, base=(min(self.base_eps, self.eps_max), self.base_step_size, self.base_steps))
        return s

    def config(self) -> dict[str, Any]:
        return {"rho": self.rho, "eps_max": self.eps_max, "tau": self.tau, "step_size": self.step_size,
                "steps_per_budget": self.steps_per_budget, "mode": self.mode, "base_eps": self.base_eps,
                "base_step_size": self.base_step_size, "base_steps": self.base_steps}
