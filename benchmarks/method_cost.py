"""Method-cost benchmark: a training step with weight averaging, MART and one-step fast AT, against PGD-AT.

Same model, batch and data for every row, timed in one run (interleaved medians, `_timing.bench`):
PGD-10 + PGDAT (the baseline), the same step plus the EMA update (timm's ModelEmaV3; target: ≤ 2% more),
MART with PGD-10, L2 PGD-10 (eps 0.5, step 0.125), FGSM-RS and N-FGSM (one attack step each). The floors are measured in the same run from
the passes a step needs: k input-gradient passes + one training pass (MART's has two forwards).
Run: `python benchmarks/method_cost.py` (PreActResNet-18) or `--model cifar_small_cnn`; `--quick` smoke run.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from robustzoo import EMA, MART, PGDAT, Fixed, create_model
from robustzoo.trainer import adversarial_step

from _timing import bench, header

EPS = 8 / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar_preact_resnet18")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smoke run: cifar_small_cnn, batch 16, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.model, args.batch_size, args.repeats = "cifar_small_cnn", 16, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = create_model(args.model, num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    ema = EMA(decay=0.999).build(model)
    pgd10, counter = Fixed(), {"step": 0}
    fgsm_rs = Fixed(step_size=1.25 * EPS, steps=1)
    nfgsm = Fixed(step_size=EPS, steps=1, start_scale=2.0, project=False)
    pgd10_l2 = Fixed(eps=0.5, step_size=0.125, steps=10, norm="L2")

    def with_ema():
        adversarial_step(model, x, y, pgd10, PGDAT(), optimizer)
        counter["step"] += 1
        ema.update(model, step=counter["step"])

    def ema_update():  # the update alone: what EMA adds to a step (the difference of two medians is noise)
        counter["step"] += 1
        ema.update(model, step=counter["step"])

    def input_grad():  # one attack pass: forward and input gradient
        x0 = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(x0), y), x0)

    def train_pass(defense):  # the training pass: the defense's loss, its weight gradient and the SGD step
        def run():
            optimizer.zero_grad(set_to_none=True)
            defense.loss(model, x, x, y, pgd10.strategy(model, x, y))[0].mean().backward()
            optimizer.step()
        return run

    steps = {"PGD-10 + PGDAT": lambda: adversarial_step(model, x, y, pgd10, PGDAT(), optimizer),
             "PGD-10 + PGDAT + EMA": with_ema,
             "PGD-10 + MART": lambda: adversarial_step(model, x, y, pgd10, MART(), optimizer),
             "L2 PGD-10 + PGDAT": lambda: adversarial_step(model, x, y, pgd10_l2, PGDAT(), optimizer),
             "FGSM-RS + PGDAT": lambda: adversarial_step(model, x, y, fgsm_rs, PGDAT(), optimizer),
             "N-FGSM + PGDAT": lambda: adversarial_step(model, x, y, nfgsm, PGDAT(), optimizer),
             "EMA update": ema_update, "input-gradient pass": input_grad, "PGDAT training pass": train_pass(PGDAT()),
             "MART training pass": train_pass(MART())}
    print(header("method_cost", device, model=args.model, batch=args.batch_size, repeats=f"{args.repeats} (median)"))
    t = bench(steps, args.repeats, device)
    base, g, tp, tm = t["PGD-10 + PGDAT"], t["input-gradient pass"], t["PGDAT training pass"], t["MART training pass"]
    floors = {"PGD-10 + PGDAT": 10 * g + tp, "PGD-10 + PGDAT + EMA": 10 * g + tp, "PGD-10 + MART": 10 * g + tm,
              "L2 PGD-10 + PGDAT": 10 * g + tp,
              "FGSM-RS + PGDAT": g + tp, "N-FGSM + PGDAT": g + tp}
    for name, floor in floors.items():
        print(f"{name:22s} {t[name]:7.3f} s/step  {t[name] / base:.3f}× PGD-10 + PGDAT  "
              f"(floor {floor / (10 * g + tp):.3f}×; {t[name] / floor:.3f}× its own floor)")
    print(f"EMA update alone: {1000 * t['EMA update']:.1f} ms = {100 * t['EMA update'] / base:.2f}% of a PGD-10 step "
          f"(target <= 2%; the step with it minus without: {100 * (t['PGD-10 + PGDAT + EMA'] / base - 1):+.2f}%, "
          f"within the noise of two medians)")


if __name__ == "__main__":
    main()
