"""`Defense`: the inner attack's loss and the outer training loss of adversarial training."""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager

from torch import Tensor, nn

from ..attacks.pgd import LossFn, cross_entropy, pgd
from ..registry import Registry
from ..strategy import Strategy

DEFENSES: Registry[type["Defense"]] = Registry("defense")


def register_defense(cls: type["Defense"]) -> type["Defense"]:
    """Class decorator: make a defense creatable by its class name."""
    return DEFENSES.register()(cls)


def list_defenses() -> list[str]:
    return DEFENSES.names()


def create_defense(name: str, **kwargs: Any) -> "Defense":
    return DEFENSES.get(name)(**kwargs)


class Defense:
    """Base class: `attack()` makes x_adv from a policy's strategy, `loss()` is the outer loss on it."""

    attack_loss: LossFn = staticmethod(cross_entropy)
    start_std: float | None = None  # None: uniform random start in the ball
    random_start: bool = True  # False: PGD starts at x (deterministic attacks)

    def attack_target(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """What `attack_loss` compares the adversarial logits with: the labels (TRADES: clean probabilities)."""
        return y

    def attack(self, model: nn.Module, x: Tensor, y: Tensor, strategy: Strategy) -> Tensor:
        """The inner maximization on this defense's attack loss: per-sample PGD, or the strategy's search."""
        target = self.attack_target(model, x, y)
        if strategy.search is not None:
            return strategy.search(model, x, target, strategy, loss=self.attack_loss, start_std=self.start_std,
                                   random_start=self.random_start)
        return pgd(model, x, target, strategy, loss=self.attack_loss, start_std=self.start_std,
                   random_start=self.random_start)

    def loss(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor,
             strategy: Strategy) -> tuple[Tensor, Tensor]:
        """Per-sample training loss `[B]` and the logits on x_adv (for accuracy, without a second pass)."""
        raise NotImplementedError

    def perturb_weights(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor,
                        strategy: Strategy) -> ContextManager[None]:
        """Weights the training loss and its gradient are taken at; the trainer steps after it exits.

        No perturbation by default; AWP adds v here and restores the weights on exit.
        """
        return contextlib.nullcontext()

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each epoch (AWP's warmup uses it)."""

    def config(self) -> dict[str, Any]:
        return {}
