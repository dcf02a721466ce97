"""`MART` (Wang et al. 2020): boosted CE on x_adv + λ·KL(f(x) ‖ f(x_adv)) weighted by 1 − p_y(x)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks.pgd import as_float
from ..errors import InvalidValueError
from ..strategy import Strategy
from .base import Defense, register_defense


def boosted_cross_entropy(logits_adv: Tensor, y: Tensor) -> Tensor:
    """Per-sample CE(f(x_adv), y) − log(1 − max_{k≠y} p_k(x_adv)): MART's BCE, with the code's 1.0001 and 1e-12."""
    logits_adv = as_float(logits_adv)
    p_adv = F.softmax(logits_adv, 1)
    top2 = p_adv.topk(2, dim=1).indices
    wrong = torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])  # the most likely wrong class
    margin = -torch.log(1.0001 - p_adv.gather(1, wrong[:, None]).squeeze(1) + 1e-12)
    return F.cross_entropy(logits_adv, y, reduction="none") + margin


@register_defense
class MART(Defense):
    """min_w BCE(f(x_adv), y) + β·KL(f(x) ‖ f(x_adv))·(1 − p_y(x)): misclassified samples weigh more.

    As `YisenWang/MART` `mart.py` (1c2a930): the inner attack is CE-PGD from x + 0.001·N(0, 1) (lines 27-37,
    the model in eval mode: our default), BCE = CE + NLL of log(1.0001 − p_adv + 1e-12) at the most likely
    wrong class (lines 47-53), the KL is torch's KLDivLoss of log(p_adv + 1e-12) against p_clean summed over
    classes, weighted by 1.0000001 − p_y(x) (lines 55-60), β = 6. The paper's form (Eq. 7) is the same
    without the stabilising constants. A strategy may carry a per-sample `beta` in `strategy.extras`.
    """

    def __init__(self, beta: float = 6.0, start_std: float | None = 0.001):
        if beta < 0:
            raise InvalidValueError(f"beta={beta!r}; expected beta >= 0")
        if start_std is not None and not start_std > 0:
            raise InvalidValueError(f"start_std={start_std!r}; expected a Gaussian start's std > 0, or None "
                                    f"for a uniform start in the ball")
        self.beta = float(beta)
        self.start_std = None if start_std is None else float(start_std)

    def loss(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor,
             strategy: Strategy) -> tuple[Tensor, Tensor]:
        logits_clean, logits_adv = model(x), model(x_adv)
        beta = strategy.extras.get("beta")
        beta = self.beta if beta is None else beta.to(logits_clean.device, torch.float32)
        p_clean = F.softmax(as_float(logits_clean), 1)
        p_adv = F.softmax(as_float(logits_adv), 1)
        kl = F.kl_div(torch.log(p_adv + 1e-12), p_clean, reduction="none").sum(1)
        weight = 1.0000001 - p_clean.gather(1, y[:, None]).squeeze(1)
        return boosted_cross_entropy(logits_adv, y) + beta * kl * weight, logits_adv

    def config(self) -> dict[str, Any]:
        return {"beta": self.beta, "start_std": self.start_std}
