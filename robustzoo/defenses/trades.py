"""`TRADES` (Zhang et al. 2019): CE on clean inputs + β·KL(f(x) ‖ f(x_adv)), with a KL inner attack."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks.pgd import as_float, cross_entropy
from ..errors import InvalidValueError
from ..strategy import Strategy
from .base import Defense, register_defense


def kl_divergence(logits: Tensor, p_clean: Tensor) -> Tensor:
    """Per-sample KL(p_clean ‖ softmax(logits)): the TRADES attack loss, `p_clean` sliced with the batch."""
    return F.kl_div(F.log_softmax(as_float(logits), 1), p_clean, reduction="none").sum(1)


@register_defense
class TRADES(Defense):
    """min_w CE(f(x), y) + β·KL(f(x) ‖ f(x_adv)); the attack maximizes the KL from x + 0.001·N(0, 1).

    A strategy may carry a per-sample `beta` in `strategy.extras` (LAS-TRADES); otherwise `beta` is used.
    With the `Fixed(eps=0.031, step_size=0.007, steps=10)` policy this is the original algorithm
    (`yaodongyu/TRADES` `trades.py:27-37, 79-83`). `inner="ce"` makes the inner attack CE-PGD from a uniform
    start instead, as ECAS-TRADES on CIFAR-10 does (`huizhg/ECAS` `TRADES/train_trades_cifar10_entropy.py:146-164`).
    `label_smoothing` smooths the clean CE term only (DM-Improves-AT's `--ls`, `gowal21uncovering/utils/trades.py:110`).
    """

    attack_loss = staticmethod(kl_divergence)

    def __init__(self, beta: float = 6.0, start_std: float = 0.001, inner: str = "kl", label_smoothing: float = 0.0):
        if not 0.0 <= label_smoothing < 1.0:
            raise InvalidValueError(f"label_smoothing={label_smoothing!r}; expected 0 <= it < 1")
        self.label_smoothing = float(label_smoothing)
        if beta < 0:
            raise InvalidValueError(f"beta={beta!r}; expected beta >= 0")
        if inner not in ("kl", "ce"):
            raise InvalidValueError(f"inner={inner!r}; expected kl (TRADES) or ce (CE-PGD, uniform start)")
        self.beta, self.inner = float(beta), inner
        self.start_std = float(start_std) if inner == "kl" else None
        if inner == "ce":
            self.attack_loss = cross_entropy

    def attack_target(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        if self.inner == "ce":
            return y
        with torch.no_grad():
            return F.softmax(as_float(model(x)), 1)

    def loss(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor,
             strategy: Strategy) -> tuple[Tensor, Tensor]:
        logits_clean, logits_adv = model(x), model(x_adv)
        beta = strategy.extras.get("beta")
        beta = self.beta if beta is None else beta.to(logits_clean.device, torch.float32)
        natural = F.cross_entropy(as_float(logits_clean), y, reduction="none", label_smoothing=self.label_smoothing)
        robust = kl_divergence(logits_adv, F.softmax(as_float(logits_clean), 1))
        return natural + beta * robust, logits_adv

    def config(self) -> dict[str, Any]:
        return {"beta": self.beta, "start_std": self.start_std, "inner": self.inner,
                **({"label_smoothing": self.label_smoothing} if self.label_smoothing else {})}
