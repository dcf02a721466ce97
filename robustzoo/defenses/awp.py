"""`AWP` (Wu et al. 2020): adversarial weight perturbation around any defense's loss."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from .. import distributed
from ..attacks.pgd import fp16_autocast
from ..errors import InvalidValueError
from ..strategy import Strategy
from .base import Defense, register_defense


@register_defense
class AWP(Defense):
    """Take the wrapped defense's loss and gradient at w + v, with v = γ·‖w‖/‖Δ‖·Δ per weight tensor.

    Δ is the gradient of the wrapped loss on x_adv (averaged over data-parallel ranks; the direction of
    the reference code's one ascent step of a proxy); only weights with ≥ 2 dims (conv, linear) are
    perturbed. No model copy: Δ comes from `torch.autograd.grad`, BatchNorm statistics of that extra pass
    are put back, and the original weights are copied back bit for bit before the optimizer steps.
    Before epoch `warmup` nothing changes.
    """

    def __init__(self, defense: Defense, gamma: float = 0.01, warmup: int = 0):
        if not isinstance(defense, Defense):
            raise InvalidValueError(f"AWP wraps a Defense; got {type(defense).__name__}")
        if gamma < 0:
            raise InvalidValueError(f"gamma={gamma!r}; expected gamma >= 0")
        if warmup < 0:
            raise InvalidValueError(f"warmup={warmup!r}; expected a non-negative epoch count")
        self.defense, self.gamma, self.warmup = defense, float(gamma), int(warmup)
        self.active = warmup == 0
        self._saved: list[Tensor] = []

    def attack(self, model: nn.Module, x: Tensor, y: Tensor, strategy: Strategy) -> Tensor:
        return self.defense.attack(model, x, y, strategy)

    def loss(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor,
             strategy: Strategy) -> tuple[Tensor, Tensor]:
        return self.defense.loss(model, x, x_adv, y, strategy)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.active = epoch >= self.warmup
        self.defense.start_epoch(epoch, epochs)

    def weight_perturbation(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor,
                            strategy: Strategy) -> list[Tensor]:
        """v for each perturbed weight (in `perturbed_weights` order), from one extra forward/backward."""
        weights = perturbed_weights(model)
        buffers = [b.clone() for b in model.buffers()]
        scale = 2.0 ** 12 if fp16_autocast(x.device) else 1.0  # Δ is normalized: the scale cancels
        with torch.enable_grad():
            loss, _ = self.defense.loss(model, x, x_adv, y, strategy)
            grads = torch.autograd.grad(loss.mean() * scale, weights, allow_unused=True)
        grads = [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads)]
        distributed.all_reduce_mean_(grads)  # Δ of the global batch
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers):
                b.copy_(saved)
        return self.scale_(weights, grads)

    def scale_(self, weights: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        """v = γ·‖w‖/‖Δ‖·Δ per tensor, in place on the (fresh) gradients: fused norms and scaling, no copies."""
        with torch.no_grad():
            norms = torch._foreach_add(torch._foreach_norm(grads), 1e-20)
            ratio = torch._foreach_div(torch._foreach_norm(weights), norms)
            torch._foreach_mul_(grads, torch._foreach_mul(ratio, self.gamma))
        return grads

    @contextlib.contextmanager
    def perturb_weights(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor,
                        strategy: Strategy) -> Iterator[None]:
        with self.defense.perturb_weights(model, x, x_adv, y, strategy):
            if not self.active or self.gamma == 0:
                yield
                return
            weights = perturbed_weights(model)
            with self.applied(weights, self.weight_perturbation(model, x, x_adv, y, strategy)):
                yield

    @contextlib.contextmanager
    def applied(self, weights: list[Tensor], v: list[Tensor]) -> Iterator[None]:
        """w + v inside the block; w restored bit for bit after it (the copy buffer is allocated once)."""
        if len(self._saved) != len(weights) or any(s.shape != w.shape for s, w in zip(self._saved, weights)):
            self._saved = [torch.empty_like(w) for w in weights]
        with torch.no_grad():
            torch._foreach_copy_(self._saved, weights)
            torch._foreach_add_(weights, v)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(weights, self._saved)

    def config(self) -> dict[str, Any]:
        return {"defense": type(self.defense).__name__, "defense_config": self.defense.config(),
                "gamma": self.gamma, "warmup": self.warmup}


def perturbed_weights(model: nn.Module) -> list[Tensor]:
    """The parameters AWP perturbs: trainable weights with ≥ 2 dims (conv and linear kernels)."""
    return [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
