"""The strategy `a`: per-sample attack parameters for one batch (eps, step size, steps, extras)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from .errors import InvalidValueError


NORMS = ("Linf", "L2")


def check_eps(eps: float, name: str = "eps") -> float:
    """Validate an L-inf budget in [0,1] pixel scale: 0 < eps <= 1."""
    if not 0.0 < float(eps) <= 1.0:
        raise InvalidValueError(f"{name}={eps!r} is out of range; expected 0 < {name} <= 1 in [0,1] pixel "
                                f"scale (e.g. 8/255 = {8 / 255:.4f})")
    return float(eps)


def check_norm(norm: str) -> str:
    """Validate a threat model's norm: `Linf` or `L2`."""
    if norm not in NORMS:
        raise InvalidValueError(f"norm={norm!r}; expected one of {', '.join(NORMS)}")
    return norm


def check_budget(eps: float, norm: str = "Linf", name: str = "eps") -> float:
    """Validate a budget of `norm` in [0,1] pixel scale: L∞ 0 < eps <= 1, L2 eps > 0 (e.g. 0.5 on CIFAR)."""
    if check_norm(norm) == "Linf":
        return check_eps(eps, name)
    if not (float(eps) > 0.0 and math.isfinite(float(eps))):
        raise InvalidValueError(f"{name}={eps!r} is out of range; expected a finite L2 radius > 0 in [0,1] pixel "
                                f"scale (e.g. 0.5 on CIFAR-10)")
    return float(eps)


@dataclass
class Strategy:
    """Per-sample attack parameters of a batch: `eps`, `step_size` (pixel scale) and `steps`, each `[B]`.

    `extras` holds per-sample values a defense or the telemetry reads (TRADES `beta`; bool flags such as
    ECAS `adjusted` are reported as shares). `search`, when set, is an attack that resolves the budget
    itself (SAAT's SA-PGD): the defense calls it, with its own loss, instead of `pgd`, and the search
    writes the budgets and step counts it used back into `eps` and `steps`. `start_scale` widens the
    uniform random start to `start_scale`·eps and `project=False` keeps x_adv in [0, 1] only, not in the
    eps ball: together N-FGSM's noise U[−2ε, 2ε] and unprojected step (`Fixed(start_scale=2, project=False)`).
    """

    eps: Tensor
    step_size: Tensor
    steps: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)
    search: Callable[..., Tensor] | None = None
    start_scale: float = 1.0
    project: bool = True
    norm: str = "Linf"  # the ball of `eps`: Linf or L2 (`Recipe.norm`; policies with L∞-only budgets refuse L2)

    def __len__(self) -> int:
        return self.eps.shape[0]

    @classmethod
    def uniform(cls, batch_size: int, eps: float, step_size: float, steps: int,
                device: torch.device | str = "cpu", *, start_scale: float = 1.0, project: bool = True,
                norm: str = "Linf") -> "Strategy":
        """The same budget for every sample (classic PGD). `steps` stays on the CPU: no sync to read it."""
        return cls(eps=torch.full((batch_size,), float(eps), device=device),
                   step_size=torch.full((batch_size,), float(step_size), device=device),
                   steps=torch.full((batch_size,), int(steps), dtype=torch.long),
                   start_scale=float(start_scale), project=bool(project), norm=check_norm(norm))

    def summary(self) -> dict[str, Tensor]:
        """Batch means of each parameter as device tensors (read them off the hot path)."""
        out = {"eps": self.eps.float().mean(), "step_size": self.step_size.float().mean(),
               "steps": self.steps.float().mean()}
        out.update({k: v.float().mean() for k, v in self.extras.items()})
        return out
