"""SA-PGD (SAAT, Algorithm 1): per sample, the smallest budget whose adversarial loss reaches ρ.

From ε = 0, grow ε by τ (capped at ε_max) and take K PGD steps at each budget, checking the loss after
every step; a sample stops as soon as its loss is ≥ ρ, or after its K steps at ε_max. A sample whose
clean loss is already ≥ ρ is left untouched. As in the paper, there is no random start.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..strategy import Strategy
from .pgd import LossFn, cross_entropy, fp16_autocast


def sa_pgd(model: nn.Module, x: Tensor, target: Tensor, strategy: Strategy, *, loss: LossFn = cross_entropy,
           start_std: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Strength-adaptive PGD; reads eps (= ε_max), step_size (α), steps (K), extras `tau` and `rho`.

    Writes back into `strategy`: `eps` the budget each sample stopped at (0 when untouched), `steps` the
    PGD steps it took, `extras["reached"]` whether its loss reached ρ. Samples that stopped leave the
    batch once per budget level (one host read per level, none per step), so the cost follows the steps
    actually taken, rounded up to K within a level. `start_std` and `generator` are unused (no random
    start in Algorithm 1); they keep the signature of `pgd`.
    """
    x = x.detach()
    b, shape = len(x), (-1,) + (1,) * (x.dim() - 1)
    eps_max = strategy.eps.to(x.device, x.dtype)
    alpha = strategy.step_size.to(x.device, x.dtype)
    tau = strategy.extras["tau"].to(x.device, x.dtype)
    rho = strategy.extras["rho"].to(x.device, torch.float32)
    k_steps = int(strategy.steps.max()) if b else 0
    levels = int(math.ceil(float((eps_max / tau).max()) * (1 - 1e-6))) if b else 0  # one host read
    scale = 2.0 ** 12 if fp16_autocast(x.device) else 1.0

    x_adv = x.clone()
    eps_used = torch.zeros(b, device=x.device, dtype=x.dtype)
    steps_used = torch.zeros(b, device=x.device, dtype=torch.long)
    with torch.no_grad():
        reached = loss(model(x), target).float() >= rho  # clean loss already ≥ ρ: untouched
    active = (~reached).nonzero().squeeze(1)
    for level in range(1, levels + 1):
        if active.numel() == 0:
            break
        x_a, x0, tgt, r, a = x_adv[active], x[active], target[active], rho[active], alpha[active].view(shape)
        eps = torch.minimum(level * tau[active], eps_max[active])
        lo, hi = (x0 - eps.view(shape)).clamp(min=0.0), (x0 + eps.view(shape)).clamp(max=1.0)
        live = torch.ones(len(active), dtype=torch.bool, device=x.device)
        hit = torch.zeros_like(live)
        taken = torch.zeros(len(active), dtype=torch.long, device=x.device)
        for k in range(k_steps):
            x_in = x_a.detach().requires_grad_(True)
            with torch.enable_grad():
                values = loss(model(x_in), tgt)
            grad, = torch.autograd.grad(values.sum() * scale, x_in)
            if k > 0:  # the loss after the previous step: stop there once it reaches ρ
                newly = live & (values.detach().float() >= r)
                hit |= newly
                live &= ~newly
            stepped = torch.min(torch.max(x_in.detach() + a * grad.sign(), lo), hi)
            x_a = torch.where(live.view(shape), stepped, x_in.detach())
            taken += live.long()
        with torch.no_grad():  # the loss after the last step of this budget
            hit |= live & (loss(model(x_a), tgt).float() >= r)
        live &= ~hit & (eps < eps_max[active] * (1 - 1e-6))  # reached ρ, or no budget left: done
        x_adv[active], eps_used[active], reached[active] = x_a, eps, hit
        steps_used[active] += taken
        active = active[live]
    strategy.eps, strategy.steps = eps_used, steps_used
    strategy.extras["reached"] = reached
    return x_adv
