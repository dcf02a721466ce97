"""Defense-cost benchmark: time of one training step of PGDAT, TRADES, AWP(PGDAT), AWP(TRADES).

Same model, batch and `Fixed` PGD-10 policy for all four; printed as ratios to PGDAT from one run.
Anchor: the AWP authors' logs show AT-AWP at ~1.09× AT per epoch. Target: AWP ≤ 1.15× its wrapped defense.
Run: `python benchmarks/defense_cost.py` (full) or `--quick` (smoke run).
"""
from __future__ import annotations

import argparse

import torch

from robustzoo import AWP, PGDAT, TRADES, Fixed, create_model
from robustzoo.trainer import adversarial_step

from _timing import bench, header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smoke run: cifar_small_cnn, batch 32, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.model, args.batch_size, args.repeats = "cifar_small_cnn", 32, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = create_model(args.model, num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    policy = Fixed()  # PGD-10, 8/255, 2/255
    defenses = {"PGDAT": PGDAT(), "TRADES": TRADES(), "AWP(PGDAT)": AWP(PGDAT(), gamma=0.01),
                "AWP(TRADES)": AWP(TRADES(), gamma=0.005)}
    steps = {name: (lambda d=d: adversarial_step(model, x, y, policy, d, optimizer)) for name, d in defenses.items()}
    s = policy.strategy(model, x, y)
    x_adv = PGDAT().attack(model, x, y, s)

    def loss_pass(defense):  # the one extra forward/backward of the wrapped loss that AWP's Δ needs
        return lambda: torch.autograd.grad(defense.loss(model, x, x_adv, y, s)[0].mean(), list(model.parameters()))

    steps.update({"PGDAT loss pass": loss_pass(defenses["PGDAT"]), "TRADES loss pass": loss_pass(defenses["TRADES"])})
    print(header("defense_cost", device, model=args.model, batch=args.batch_size, policy="Fixed PGD-10",
                 repeats=f"{args.repeats} (median)"))
    t = bench(steps, args.repeats, device)
    for name, seconds in t.items():
        if "loss pass" not in name:
            print(f"{name:12s} {seconds:7.3f} s/step  {seconds / t['PGDAT']:.2f}× PGDAT")
    for base in ("PGDAT", "TRADES"):
        floor = (t[base] + t[f"{base} loss pass"]) / t[base]
        print(f"AWP({base}) / {base}: {t[f'AWP({base})'] / t[base]:.3f}  (target <= 1.15; floor with one extra "
              f"{base} loss forward/backward: {floor:.3f}; AWP authors' AT-AWP logs ~1.09)")


if __name__ == "__main__":
    main()
