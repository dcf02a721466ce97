"""Policy-cost benchmark: time of a training run under each policy with PGDAT, relative to Fixed PGD-10.

Same target model, batches and defense for every policy; one run, one process. LearnedLAS uses the
paper's k = 40, so a run of 40 steps holds exactly one strategy update (as one in 40 steps of an epoch).
Targets: LearnedLAS ≤ 1.25× (the LAS-AT paper reports 1.40×), ECAS ≤ 1.05×, SAAT ≤ the cost its own
measured step count predicts.
Run: `python benchmarks/policy_cost.py` (full) or `--quick` (smoke run).
"""
from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from robustzoo import PGDAT, Fixed, create_model
from robustzoo.policies import create_policy
from robustzoo.trainer import adversarial_step

from _timing import bench, header


def run_epoch(model, policy, batches, optimizer) -> float:
    """Seconds for one pass over `batches`; returns them and leaves telemetry in the policy."""
    policy.start_epoch(0, 1)
    model.train()
    start = time.perf_counter()
    for x, y in batches:
        strategy, *_ = adversarial_step(model, x, y, policy, PGDAT(), optimizer)
        policy.record(strategy)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar_resnet18", help="target model (the paper's Table 1: ResNet-18)")
    parser.add_argument("--strategy-backbone", default="cifar_resnet18", help="LAS strategy network backbone")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the fastest is kept")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: small CNNs, batch 16, 4 steps")
    args = parser.parse_args()
    if args.quick:
        args.model, args.strategy_backbone, args.steps, args.rounds = "cifar_small_cnn", "cifar_small_cnn", 4, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cpu")
    batches = [(torch.rand(args.batch_size, 3, 32, 32), torch.randint(0, 10, (args.batch_size,)))
               for _ in range(args.steps)]
    policies = {
        "Fixed": Fixed(),
        "LearnedLAS": create_policy("LearnedLAS", backbone=args.strategy_backbone, update_every=40),
        "CyclicEntropyECAS": create_policy("CyclicEntropyECAS"),
        # ρ above an untrained net's clean loss (~2.3 on random data), so that the search has work to do
        "LossConstrainedSAAT": create_policy("LossConstrainedSAAT", rho=2.5, eps_max=8 / 255),
    }
    print(header("policy_cost", device, model=args.model, strategy_backbone=args.strategy_backbone,
                 batch=args.batch_size, steps=args.steps, defense="PGDAT"))
    models, optimizers = {}, {}
    for name, policy in policies.items():  # the same initial weights for every policy
        torch.manual_seed(0)
        models[name] = create_model(args.model, num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3)
        policy.setup(models[name])
        optimizers[name] = torch.optim.SGD(models[name].parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        run_epoch(models[name], policy, batches[:2], optimizers[name])  # warmup
        policy.epoch_stats()
    seconds: dict[str, list[float]] = {name: [] for name in policies}
    mean_steps = {}
    for _ in range(args.rounds):  # rounds interleave the policies, so load drift hits all alike
        for name, policy in policies.items():
            seconds[name].append(run_epoch(models[name], policy, batches, optimizers[name]))
            mean_steps[name] = policy.epoch_stats()["mean"]["steps"]
    seconds = {name: min(ts) for name, ts in seconds.items()}
    model = models["Fixed"]
    x, y = batches[0]

    def train_pass() -> None:
        model.train()
        F.cross_entropy(model(x), y).backward()

    def input_pass() -> None:
        model.eval()
        x_in = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(x_in), y, reduction="sum"), x_in)

    def forward_pass() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    t = bench({"train": train_pass, "input": input_pass, "forward": forward_pass}, 5, device)
    for name in policies:
        print(f"{name:20s} {seconds[name]:8.1f} s  {seconds[name] / seconds['Fixed']:.3f}× Fixed  "
              f"(mean attack steps per sample {mean_steps[name]:.2f})")
    saat_steps = mean_steps["LossConstrainedSAAT"]
    checks = 1 + math.ceil(saat_steps / policies["LossConstrainedSAAT"].steps_per_budget)  # clean + per budget
    predicted = (saat_steps * t["input"] + checks * t["forward"] + t["train"]) / (10 * t["input"] + t["train"])
    print(f"LearnedLAS / Fixed: {seconds['LearnedLAS'] / seconds['Fixed']:.3f}  (target <= 1.25; paper 1.40)")
    print(f"CyclicEntropyECAS / Fixed: {seconds['CyclicEntropyECAS'] / seconds['Fixed']:.3f}  (target <= 1.05)")
    print(f"LossConstrainedSAAT / Fixed: {seconds['LossConstrainedSAAT'] / seconds['Fixed']:.3f}  (its {saat_steps:.1f} "
          f"steps and ~{checks} loss checks predict {predicted:.3f}; input-gradient pass = "
          f"{t['input'] / t['train']:.2f}, forward = {t['forward'] / t['train']:.2f} training pass)")


if __name__ == "__main__":
    main()
