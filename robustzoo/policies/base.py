"""`AttackPolicy`: decides the strategy (per-sample eps, step, steps) of each training batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..registry import Registry
from ..strategy import Strategy
from .telemetry import StrategyStats

POLICIES: Registry[type["AttackPolicy"]] = Registry("policy")


def register_policy(cls: type["AttackPolicy"]) -> type["AttackPolicy"]:
    """Class decorator: make a policy creatable by its class name."""
    return POLICIES.register()(cls)


def list_policies() -> list[str]:
    return POLICIES.names()


def create_policy(name: str, **kwargs: Any) -> "AttackPolicy":
    """Build a registered policy by name; unknown names fail with the list of known ones."""
    return POLICIES.get(name)(**kwargs)


@dataclass
class Feedback:
    """What a policy may learn from in a training step (LAS-AT's reward is built from it).

    `x_adv` is the attack's output (before `Recipe.final_clip`; the loss saw the clipped one), `loss` the
    per-sample training loss L1; `lr` the target's current learning rate and
    `base_lr` the recipe's (None outside the trainer), so a policy can follow the target's schedule.
    The model's parameters hold w, their `.grad` the step's gradient, their optimizer's weight decay in
    `weight_decay`.
    """

    model: nn.Module
    x: Tensor
    y: Tensor
    x_adv: Tensor
    strategy: Strategy
    loss: Tensor
    lr: float
    base_lr: float | None = None
    weight_decay: float = 0.0


class AttackPolicy:
    """Base class. `strategy()` is called once per batch; `update()` after the step; epochs bracket both.

    `norm` is the ball the policy's budgets live in; a policy whose budgets are L∞-specific (LAS's option
    ranges, ECAS's eps space, SAAT's eps_max) stays `Linf` and a recipe with `norm="L2"` refuses it.
    """

    norm: str = "Linf"

    def strategy(self, model: nn.Module, x: Tensor, y: Tensor) -> Strategy:
        raise NotImplementedError

    def setup(self, model: nn.Module) -> None:
        """Called once with the target model before training (LAS builds its strategy network here)."""

    def update(self, feedback: Feedback) -> None:
        """Learn from the step: called after backward, before the optimizer step (no-op by default).

        The model's parameters still hold w and their `.grad` the gradient of the training loss.
        """

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each epoch (schedules such as ECAS's cyclic eps use it)."""

    def record(self, strategy: Strategy) -> None:
        """Add a batch's strategy (as the attack resolved it) to this epoch's telemetry; no host read."""
        if not hasattr(self, "_stats"):
            self._stats = StrategyStats()
        self._stats.update(strategy)

    def epoch_stats(self) -> dict[str, Any]:
        """This epoch's strategy distributions (eps/step/steps histograms, means, shares), then reset."""
        stats = getattr(self, "_stats", None)
        if stats is None:
            return {}
        stats.all_reduce()  # data parallel: every rank's strategies
        summary = stats.summary()
        stats.reset()
        return summary

    def telemetry_state(self) -> dict[str, Any]:
        """This epoch's telemetry so far (for a mid-epoch checkpoint)."""
        stats = getattr(self, "_stats", None)
        return stats.state_dict() if stats is not None else {}

    def load_telemetry_state(self, state: dict[str, Any], device: torch.device) -> None:
        self._stats = StrategyStats()
        if state:
            self._stats.load_state_dict(state, device)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (tensors and JSON-able values)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def local_state_dict(self) -> dict[str, Any]:
        """State that differs between data-parallel ranks (a policy's own random generator); saved per rank."""
        return {}

    def load_local_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def config(self) -> dict[str, Any]:
        """The constructor arguments, for run records and cards."""
        return {}
