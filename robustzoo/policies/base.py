"""`AttackPolicy`: decides the strategy (per-sample eps, step, steps) of each training batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..registry import Registry
from ..strategy import Strategy

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
    """What a policy may learn from after a training step (LAS-AT's reward is built from it)."""

    model: nn.Module
    x: Tensor
    y: Tensor
    x_adv: Tensor
    strategy: Strategy
    loss: Tensor
    lr: float


class AttackPolicy:
    """Base class. `strategy()` is called once per batch; `update()` after the step; epochs bracket both."""

    def strategy(self, model: nn.Module, x: Tensor, y: Tensor) -> Strategy:
        raise NotImplementedError

    def update(self, feedback: Feedback) -> None:
        """Learn from a finished step (no-op for policies that do not learn)."""

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each epoch (schedules such as ECAS's cyclic eps use it)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (tensors and JSON-able values)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def config(self) -> dict[str, Any]:
        """The constructor arguments, for run records and cards."""
        return {}
