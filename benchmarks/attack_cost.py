"""Attack-cost benchmark: per-sample PGD vs. the masked LAS-AT loop, and PGD-10 AT vs. its physical limit.

(a) robustzoo's `pgd` with per-sample steps 3..15 / the masked 15-iteration loop of the LAS-AT code.
(b) one PGD-10 training step / 11 full forward+backward+SGD training passes.

Run: `python benchmarks/attack_cost.py` (full) or `python benchmarks/attack_cost.py --quick` (smoke run).
"""
from __future__ import annotations

import argparse
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustzoo import PGDAT, Fixed, Strategy, create_model, pgd
from robustzoo.trainer import train_mode

from _timing import bench, header


def masked_pgd(model: nn.Module, x: Tensor, y: Tensor, strategy: Strategy) -> Tensor:
    """LAS-AT reference method: max(steps) iterations over the whole batch, updating only where t < steps_i."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    eps = strategy.eps.to(x.device, x.dtype).view(shape)
    alpha = strategy.step_size.to(x.device, x.dtype).view(shape)
    steps = strategy.steps.to(x.device).view(shape)
    lo, hi = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
    x_adv = torch.min(torch.max(x + (2 * torch.rand_like(x) - 1) * eps, lo), hi)
    for t in range(int(strategy.steps.max())):
        x_in = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            objective = F.cross_entropy(model(x_in).float(), y, reduction="sum")
        grad, = torch.autograd.grad(objective, x_in)
        stepped = torch.min(torch.max(x_in.detach() + alpha * grad.sign(), lo), hi)
        x_adv = torch.where(t < steps, stepped, x_in.detach())
    return x_adv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: cifar_small_cnn, batch 32, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.model, args.batch_size, args.repeats = "cifar_small_cnn", 32, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device, b = torch.device(args.device), args.batch_size

    model = create_model(args.model, num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(b, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 10, (b,), device=device)
    steps = torch.randint(3, 16, (b,))
    steps[0] = 15  # max(steps) = 15: the masked loop always runs 15 iterations
    varied = Strategy(eps=(3 + 12 * torch.rand(b, device=device)) / 255,
                      step_size=(1 + 5 * torch.rand(b, device=device)) / 255, steps=steps)
    policy, defense = Fixed(eps=8 / 255, step_size=2 / 255, steps=10), PGDAT()

    def train_pass() -> None:
        model.train()
        loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def input_pass() -> None:
        model.eval()
        x_in = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(x_in).float(), y, reduction="sum"), x_in)

    def pgd10_step() -> None:  # trainer.train_epoch's step, without the loader
        model.train()
        strategy = policy.strategy(model, x, y)
        with train_mode(model, False):
            x_adv = defense.attack(model, x, y, strategy)
        loss, _ = defense.loss(model, x, x_adv, y, strategy)
        optimizer.zero_grad(set_to_none=True)
        loss.mean().backward()
        optimizer.step()

    def eval_attack(attack: Callable[[], Tensor]) -> Callable[[], Tensor]:
        def run() -> Tensor:
            with train_mode(model, False):
                return attack()
        return run

    print(header("attack_cost", device, model=args.model, batch=b, image=args.image_size,
                 repeats=f"{args.repeats} (median)"))
    t = bench({"pgd": eval_attack(lambda: pgd(model, x, y, varied)),
               "masked": eval_attack(lambda: masked_pgd(model, x, y, varied)),
               "pgd10_step": pgd10_step, "train_pass": train_pass, "input_pass": input_pass},
              args.repeats, device)
    ideal = steps.float().mean().item() / 15
    print(f"    times (s): pgd {t['pgd']:.3f}  masked {t['masked']:.3f}  pgd10_step {t['pgd10_step']:.3f}  "
          f"train_pass {t['train_pass']:.4f}  input_pass {t['input_pass']:.4f}")
    print(f"(a) per-sample PGD (steps 3..15) / masked 15-step: {t['pgd'] / t['masked']:.2f}  "
          f"(ideal {ideal:.2f}, target <= 0.75)")
    print(f"(b) PGD-10 AT step / 11 full training passes: {t['pgd10_step'] / (11 * t['train_pass']):.2f}  "
          f"(target <= 1.15)")
    print(f"    input-only fwd+bwd / full training pass: {t['input_pass'] / t['train_pass']:.2f}")
    floor = 10 * t["input_pass"] + t["train_pass"]
    print(f"    PGD-10 AT step / floor (10 input-only + 1 full pass): {t['pgd10_step'] / floor:.2f}")


if __name__ == "__main__":
    main()
