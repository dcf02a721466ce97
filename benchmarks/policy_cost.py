"""Policy-cost benchmark: time of a training run under each policy with PGDAT, relative to Fixed PGD-10.

Same target model, batches and defense for every policy; one run, one process. LearnedLAS runs at k = 1
(a REINFORCE update every step: LAS-TRADES, LAS-AWP on CIFAR-10) and at its default k = 20 (LAS-PGD), so a
run of 20 steps holds exactly one update (as one in 20 steps of an epoch). SAAT runs SAAT_up (the standard
PGD-10, then the search for samples still below ρ). Targets: LAS k=1 ≤ 2.5× (the ECAS paper's timings put
the authors' code at 5.3×), LAS k=20 ≤ 1.1×, ECAS ≤ 1.05×, SAAT_up ≤ the cost its own step count predicts.
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
    parser.add_argument("--steps", type=int, default=20)
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
        "LearnedLAS k=1": create_policy("LearnedLAS", backbone=args.strategy_backbone, update_every=1),
        "LearnedLAS k=20": create_policy("LearnedLAS", backbone=args.strategy_backbone, update_every=20),
        "CyclicEntropyECAS": create_policy("CyclicEntropyECAS"),
        # ρ above an untrained net's loss after PGD-10 (random data), so that the search has work to do
        "SAAT_up": create_policy("LossConstrainedSAAT", rho=2.5, eps_max=14 / 255, mode="up"),
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
    saat = policies["SAAT_up"]
    saat_steps = mean_steps["SAAT_up"]
    checks = 1 + math.ceil(max(saat_steps - saat.base_steps, 0) / saat.steps_per_budget)  # after PGD-10 + per budget
    predicted = (saat_steps * t["input"] + checks * t["forward"] + t["train"]) / (10 * t["input"] + t["train"])
    ratio = {name: seconds[name] / seconds["Fixed"] for name in policies}
    print(f"LearnedLAS k=1 / Fixed: {ratio['LearnedLAS k=1']:.3f}  (target <= 2.5)")
    print(f"LearnedLAS k=20 / Fixed: {ratio['LearnedLAS k=20']:.3f}  (target <= 1.1)")
    print(f"CyclicEntropyECAS / Fixed: {ratio['CyclicEntropyECAS']:.3f}  (target <= 1.05)")
    print(f"SAAT_up / Fixed: {ratio['SAAT_up']:.3f}  (its {saat_steps:.1f} steps and ~{checks} loss checks predict "
          f"{predicted:.3f}; input-gradient pass = {t['input'] / t['train']:.2f}, forward = "
          f"{t['forward'] / t['train']:.2f} training pass)")


if __name__ == "__main__":
    main()
