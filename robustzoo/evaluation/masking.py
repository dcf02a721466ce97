"""Gradient-masking sanity checks (AutoAttack paper; Carlini et al., "On Evaluating Adversarial Robustness").

Each check is cheap, runs on a subset, and reports a `Flag` with its evidence when it fires.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attacks import attack_outcomes

BIG_EPS = 64 / 255
BIG_EPS_L2 = 4.0  # the L2 probe's radius (at least): 8× CIFAR's 0.5
SQUARE_QUERIES = 1000


@dataclass
class Flag:
    """A sanity check that fired: its name, what it suggests, and the numbers behind it."""

    name: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _accuracy(model: nn.Module, x: Tensor, y: Tensor, attack: str, eps: float, batch_size: int,
              seed: int, norm: str = "Linf") -> Tensor:
    """Per-image correctness under a white-box attack (bool, on the CPU), random starts from `seed`."""
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same starts on any device
    return attack_outcomes(model, x, y, attack, eps, batch_size, generator, norm)[0].cpu()


def zero_gradient_share(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> float:
    """Share of images whose cross-entropy input gradient is exactly zero."""
    zero = 0
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].detach().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(xb).float(), y[i:i + batch_size], reduction="sum")
        grad, = torch.autograd.grad(loss, xb)
        zero += int((grad.flatten(1).abs().sum(1) == 0).sum())
    return zero / max(len(x), 1)


def sanity_checks(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, batch_size: int = 256,
                  seed: int = 0, norm: str = "Linf") -> tuple[list[Flag], dict[str, Any]]:
    """Run the four checks on (x, y) (the model in eval mode, on its device); the fired flags and all numbers.

    In L2 the attacks are the L2 ones, and the large-eps probe's radius is max(4.0, 4·eps)."""
    n = len(y)
    numbers: dict[str, Any] = {"n": n}
    flags = []
    share = zero_gradient_share(model, x, y, batch_size)
    numbers["zero_gradient_share"] = share
    if share > 0.05:
        flags.append(Flag("zero-gradients", f"{share:.0%} of the images have an input gradient of exactly zero: "
                          f"gradient-based attacks cannot move them (masked or shattered gradients)",
                          {"share": share, "n": n}))
    big = min(1.0, max(BIG_EPS, 4 * eps)) if norm == "Linf" else max(BIG_EPS_L2, 4 * eps)
    big_acc = _accuracy(model, x, y, "pgd20", big, batch_size, seed, norm).float().mean().item() if n else 0.0
    numbers["pgd20_big_eps"] = {"eps": big, "accuracy": big_acc}
    if big_acc > 0.1:
        shown = f"{big * 255:.0f}/255" if norm == "Linf" else f"{big:g} (L2)"
        flags.append(Flag("large-eps", f"PGD-20 at eps {shown} leaves {big_acc:.0%} accuracy: an "
                          f"unbounded-enough attack should reach ~0%, so the attack is being blocked",
                          {"eps": big, "accuracy": big_acc, "n": n}))
    short = _accuracy(model, x, y, "pgd20", eps, batch_size, seed, norm)
    long = _accuracy(model, x, y, "pgd100", eps, batch_size, seed + 1, norm)
    acc20, acc100 = short.float().mean().item(), long.float().mean().item()
    numbers["pgd20"], numbers["pgd100"] = acc20, acc100
    if acc20 - acc100 > 0.05:
        flags.append(Flag("not-converged", f"PGD-100 lowers accuracy by {acc20 - acc100:.1%} below PGD-20: the "
                          f"attack had not converged, more steps or restarts may lower it further",
                          {"pgd20": acc20, "pgd100": acc100, "n": n}))
    white = short & long & _accuracy(model, x, y, "cw", eps, batch_size, seed + 2, norm)  # robust to all three
    fooled_by_square = _square_fools(model, x, y, eps, white, seed, norm)
    numbers["square_only"] = fooled_by_square
    if fooled_by_square > max(1, 0.02 * n):
        flags.append(Flag("black-box-beats-white-box", f"Square ({SQUARE_QUERIES} queries, no gradients) fools "
                          f"{fooled_by_square} images that PGD-20, PGD-100 and CW did not: the gradients mislead",
                          {"square_only": fooled_by_square, "white_box_robust": int(white.sum()), "n": n}))
    return flags, numbers


def _square_fools(model: nn.Module, x: Tensor, y: Tensor, eps: float, robust: Tensor, seed: int,
                  norm: str = "Linf") -> int:
    """How many of the images robust to the white-box attacks the Square attack fools."""
    idx = robust.nonzero().flatten().to(x.device)
    if len(idx) == 0:
        return 0
    from pyautoattack.square import SquareAttack

    square = SquareAttack(model, p_init=0.8, n_queries=SQUARE_QUERIES, eps=eps, norm=norm, n_restarts=1,
                          seed=seed, verbose=False, device=x.device, resc_schedule=False)
    x_adv = square.perturb(x[idx].contiguous(), y[idx].contiguous())
    with torch.no_grad():
        return int((model(x_adv).argmax(1) != y[idx]).sum())
