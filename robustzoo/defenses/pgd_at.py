"""`PGDAT`: adversarial training on cross-entropy at x_adv (Madry et al. 2018; Rice et al. 2020)."""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks.pgd import as_float
from ..errors import InvalidValueError
from ..strategy import Strategy
from .base import Defense, register_defense


@register_defense
class PGDAT(Defense):
    """min_w CE(f_w(x_adv), y); `label_smoothing` > 0 as in the LAS-AT code's training loss.

    `random_start=False` starts PGD at x instead of a uniform point of the ball (a deterministic attack).
    """

    def __init__(self, label_smoothing: float = 0.0, random_start: bool = True):
        if not 0.0 <= label_smoothing < 1.0:
            raise InvalidValueError(f"label_smoothing={label_smoothing!r}; expected 0 <= value < 1")
        self.label_smoothing, self.random_start = float(label_smoothing), bool(random_start)

    def loss(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor,
             strategy: Strategy) -> tuple[Tensor, Tensor]:
        logits = model(x_adv)
        loss = F.cross_entropy(as_float(logits), y, reduction="none", label_smoothing=self.label_smoothing)
        return loss, logits

    def config(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing, "random_start": self.random_start}
