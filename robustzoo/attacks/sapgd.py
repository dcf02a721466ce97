"""SA-PGD (SAAT, Algorithm 1): per sample, the smallest budget on the τ-grid whose adversarial loss reaches ρ.

Algorithm 1 of the SAAT paper, per sample: x' ← x, ε ← 0; if ℓ(f(x'), y) ≥ ρ stop (no perturbation); else,
while ε < ε_max: ε ← ε + τ, then for k = 1..K: x' ← Π_ε(x' + α·sign(∇ℓ)), and return x' as soon as
ℓ(f(x'), y) ≥ ρ. So the loss is checked after every PGD step (Algorithm 1, lines 10-11: the check sits inside
the `for k` loop), not only after the K steps of a budget, and there is no random start (line 3: x' ← x).
Here ε is capped at ε_max (min(ε + τ, ε_max)); the paper's loop could overshoot it when τ does not divide it.

`base=(ε₀, α₀, K₀)` is SAAT_up (paper §4.3, and the code behind Table 1's rows): every sample first gets the
standard attack, PGD-K₀ at ε₀ with steps α₀ and a random start; only samples whose loss there is below ρ
go on, from that point, with budgets ε₀ + τ, ε₀ + 2τ, ... up to ε_max (the stored SAAT file, a fork of
`csdongxian/AWP` `AT_AWP/train_cifar10.py` named `cifar_model_AWP_SAAT_max9_min17`: `sa_pgd` starts its eps at
8/255, selects loss < 1.7, adds 2/255 per level, 3 steps each, checking after every step).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError
from ..strategy import Strategy
from .pgd import LossFn, cross_entropy, fp16_autocast, frozen_parameters, pgd, random_like, to_device

_TOL = 1e-6  # relative: a budget within this of ε_max is ε_max (k·τ rounding)


def _levels(eps_max: Tensor, tau: Tensor) -> int:
    """How many budget levels the slowest sample may need, ⌈max ε_max/τ⌉ (one host read)."""
    ratio = torch.where(tau > 0, eps_max / tau.clamp(min=torch.finfo(tau.dtype).tiny), math.inf)
    bound = float(ratio.max())
    if not math.isfinite(bound):
        raise InvalidValueError("strategy.extras['tau'] must be > 0 for every sample (the budget increment)")
    return max(1, math.ceil(bound * (1 - _TOL)))


def sa_pgd(model: nn.Module, x: Tensor, target: Tensor, strategy: Strategy, *, loss: LossFn = cross_entropy,
           start_std: float | None = None, generator: torch.Generator | None = None,
           base: tuple[float, float, int] | None = None, random_start: bool = True) -> Tensor:
    """Strength-adaptive PGD (SAAT Algorithm 1; with `base`, SAAT_up); returns x_adv in [0,1], in the order of `x`.

    With `base=(ε₀, α₀, K₀)` every sample first gets PGD-K₀ at ε₀ (step α₀, the defense's random start;
    `random_start=False`: from x) and is left there unless its loss is below ρ; those continue with budgets
    ε₀ + τ, ... ≤ ε_max as below, and the budgets and steps written back count the standard attack too.

    Reads from `strategy`: `eps` = ε_max, `step_size` = α, `steps` = K (steps per budget) and
    `extras["tau"]` = τ, `extras["rho"]` = ρ, all per sample. A sample whose loss at the clean point is
    already ≥ ρ is left untouched (x_adv = x bit for bit, budget 0, 0 steps); so is one with K = 0 or
    ε_max = 0. The others grow ε ← min(ε + τ, ε_max) and take K sign-gradient steps of α at each budget,
    continuing from the current point (projected into the new ball and [0,1]); the loss is checked after
    every step, as in Algorithm 1, and the sample stops at the first step whose loss is ≥ ρ, or after its
    K steps at ε_max.

    Start: x' = x, as in Algorithm 1 (line 3), when `start_std` is None (PGD-AT). With `start_std`
    (TRADES: 0.001) a sample starts its search from x + start_std·N(0, 1) (drawn with `generator`,
    projected into its first ball): the KL loss of TRADES is 0 with a zero gradient at x, so from x
    itself sign-gradient steps could never move.

    Writes back into `strategy`: `eps` the budget each sample ended at (0 when untouched; the budget of
    the step that reached ρ, or ε_max), `steps` the PGD steps it took (long, on the CPU) and
    `extras["reached"]` (bool) whether its loss reached ρ (True for untouched samples).

    Cost: samples that stopped leave the forward batch (a gather of the active indices) once per budget
    level. That needs a host read per level (the new active set), not per step, plus one to bound the
    number of levels and one for the clean check; within a level a sample that reached ρ at step j < K
    is frozen but still rides along in the remaining K − j passes. Each level costs K input-gradient
    passes and one no-grad loss check (after the last step) over its active samples; the loss after
    steps 1..K−1 is read from the next step's forward, not from extra passes. The model is used in
    whatever mode the caller set; parameter gradients are neither computed nor touched.
    """
    x = x.detach()
    b, shape = len(x), (-1,) + (1,) * (x.dim() - 1)
    eps_dtype, eps_device = strategy.eps.dtype, strategy.eps.device
    eps_max = strategy.eps.detach().to(x.device, x.dtype).clamp(min=0.0)
    alpha = strategy.step_size.detach().to(x.device, x.dtype)
    tau = strategy.extras["tau"].detach().to(x.device, x.dtype).expand(b)
    rho = strategy.extras["rho"].detach().to(x.device, x.dtype).expand(b)
    k_cpu = strategy.steps.detach().to("cpu", torch.long).clamp(min=0)
    k_max = int(k_cpu.max()) if b else 0
    scale = 2.0 ** 12 if fp16_autocast(x.device) else 1.0  # keep fp16 input gradients from underflowing

    start = torch.zeros(b, device=x.device, dtype=x.dtype)
    if base is None:  # Algorithm 1 from x itself
        x_adv = x.clone()
        steps_used = torch.zeros(b, device=x.device, dtype=torch.long)
    else:  # SAAT_up: the standard attack first, for every sample
        base_eps, base_step, base_steps = base
        start = start + base_eps
        x_adv = pgd(model, x, target, Strategy.uniform(b, base_eps, base_step, base_steps, x.device), loss=loss,
                    start_std=start_std, generator=generator, random_start=random_start)
        steps_used = torch.full((b,), int(base_steps), device=x.device, dtype=torch.long)
    eps_used = start.clone()
    with torch.no_grad():  # Algorithm 1, line 4: the starting point (x, or the standard attack's x_adv)
        reached = loss(model(x_adv), target).detach().to(x.dtype) >= rho if b else torch.zeros(0, dtype=torch.bool)
    k_dev = to_device(k_cpu, x.device)
    levels = _levels((eps_max - start).clamp(min=0.0), tau) if b and k_max else 0
    grows = (eps_max > start * (1 + _TOL)) & (k_dev > 0)
    active = (~reached & grows).nonzero().squeeze(1) if levels else x.new_zeros(0).long()
    if start_std is not None and base is None and active.numel():
        begin = x[active]
        x_adv.index_copy_(0, active, (begin + start_std * random_like(begin, torch.randn, generator)).clamp(0.0, 1.0))

    with frozen_parameters(model):  # input gradients only (see pgd.frozen_parameters)
        for level in range(1, levels + 1):
            if active.numel() == 0:
                break
            x0, tgt, r, k_a = x[active], target[active], rho[active], k_dev[active]
            a, cap = alpha[active].view(shape), eps_max[active]
            grown = start[active] + level * tau[active]
            last = grown >= cap * (1 - _TOL)  # this level's budget is ε_max
            eps = torch.where(last, cap, grown)
            lo, hi = (x0 - eps.view(shape)).clamp(min=0.0), (x0 + eps.view(shape)).clamp(max=1.0)
            x_a = torch.min(torch.max(x_adv[active], lo), hi)  # into the new ball (a no-op but for the noise start)
            live = torch.ones(len(active), dtype=torch.bool, device=x.device)  # still searching at this level
            taken = torch.zeros(len(active), dtype=torch.long, device=x.device)
            for k in range(k_max):
                x_in = x_a.detach().requires_grad_(True)
                with torch.enable_grad():
                    values = loss(model(x_in), tgt)
                grad, = torch.autograd.grad(values.sum() * scale, x_in)
                if k > 0:  # this forward's loss is the check after step k (of those that took it)
                    live &= ~((k_a >= k) & (values.detach().to(x.dtype) >= r))
                move = live & (k_a > k)
                x_a = torch.where(move.view(shape), torch.min(torch.max(x_in.detach() + a * grad.sign(), lo), hi),
                                  x_in.detach())
                taken += move.long()
            with torch.no_grad():  # the check after step K
                values = loss(model(x_a), tgt)
            live &= ~((k_a >= k_max) & (values.detach().to(x.dtype) >= r))
            x_adv.index_copy_(0, active, x_a)
            eps_used.index_copy_(0, active, eps)
            steps_used.index_add_(0, active, taken)
            reached.index_copy_(0, active, ~live)
            active = active[live & ~last]  # the one host read of the level
    strategy.eps = eps_used.to(eps_device, eps_dtype)
    strategy.steps = steps_used.cpu()
    strategy.extras["reached"] = reached
    return x_adv
