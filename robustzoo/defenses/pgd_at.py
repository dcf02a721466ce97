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
    """min_w CE(f_w(x_adv), y), optionally on smoothed labels.

    Two ways to smooth: `label_smoothing=ε` is torch's (the true class gets 1 − ε + ε/C, each other ε/C);
    `true_prob=p` is the LAS-AT and ECAS code's `_label_smoothing(factor=0.7)` (true class p, each other
    (1 − p)/(C − 1); LAS-AT `LAS_PGD_AT/LAS_AT_train_cifar10.py:89-100, 656-658`, ECAS
    `PGD-AT/train_pgd_cifar10_entropy.py:62-73, 318-320`): the same as ε = (1 − p)·C/(C − 1), which
    depends on the class count, so the code's 0.7 is ε = 1/3 on CIFAR-10 and 0.303 on CIFAR-100.
    `random_start=False` starts PGD at x instead of a uniform point of the ball (a deterministic attack).
    """

    def __init__(self, label_smoothing: float = 0.0, random_start: bool = True, true_prob: float | None = None):
        if not 0.0 <= label_smoothing < 1.0:
            raise InvalidValueError(f"label_smoothing={label_smoothing!r}; expected 0 <= value < 1")
        if true_prob is not None and not 0.0 < true_prob <= 1.0:
            raise InvalidValueError(f"true_prob={true_prob!r}; expected the true class's target in (0, 1]")
        if true_prob is not None and label_smoothing:
            raise InvalidValueError("label_smoothing and true_prob both given; expected one form of smoothing")
        self.label_smoothing, self.random_start = float(label_smoothing), bool(random_start)
        self.true_prob = None if true_prob is None else float(true_prob)

    def smoothing(self, num_classes: int) -> float:
        """torch's ε for this defense's smoothing on `num_classes` classes."""
        if self.true_prob is None:
            return self.label_smoothing
        return (1.0 - self.true_prob) * num_classes / max(num_classes - 1, 1)

    def loss(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor,
             strategy: Strategy) -> tuple[Tensor, Tensor]:
        logits = model(x_adv)
        loss = F.cross_entropy(as_float(logits), y, reduction="none", label_smoothing=self.smoothing(logits.shape[1]))
        return loss, logits

    def config(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing, "random_start": self.random_start,
                "true_prob": self.true_prob}
