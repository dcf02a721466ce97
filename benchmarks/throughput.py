"""Training throughput: forward+backward images/s, adversarial training images/s, and their ratio to the
(K+1) limit, for one model and batch, under each policy × defense.

Uses `robustzoo.benchmark.measure`, what `robustzoo train RECIPE --benchmark` prints. Synthetic
CIFAR-shaped data (timing does not depend on pixel values). Epoch estimates: 50,000 images, no validation.
Run: `python benchmarks/throughput.py --model cifar_preact_resnet18 --batch-size 128` (add `--device cuda`,
`--amp auto`, `--channels-last`, `--compile` on a GPU), or `--quick` for a smoke run. Under
`torchrun --nproc-per-node N benchmarks/throughput.py ...` images/s count all N processes.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from robustzoo import AWP, PGDAT, TRADES, Fixed, Recipe, Trainer, distributed
from robustzoo.benchmark import measure
from robustzoo.data import Augment, Data, Split
from robustzoo.policies import create_policy

from _timing import header

POLICIES = {
    "Fixed": lambda: Fixed(),  # PGD-10, 8/255, 2/255
    "LearnedLAS": lambda: create_policy("LearnedLAS", update_every=40),
    "LearnedLAS(k=1)": lambda: create_policy("LearnedLAS", update_every=1),  # a REINFORCE update every step
    "CyclicEntropyECAS": lambda: create_policy("CyclicEntropyECAS"),
    "LossConstrainedSAAT": lambda: create_policy("LossConstrainedSAAT", rho=2.5, eps_max=8 / 255),
}
DEFENSES = {"PGDAT": PGDAT, "TRADES": TRADES, "AWP(PGDAT)": lambda: AWP(PGDAT()), "AWP(TRADES)": lambda: AWP(TRADES())}


def synthetic_cifar(n: int, seed: int = 0) -> Data:
    g = torch.Generator().manual_seed(seed)
    split = Split(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                  torch.randint(0, 10, (n,), generator=g))
    return Data(name="synthetic-cifar", train=split, val=Split(split.x[:0], split.y[:0]),
                test=Split(split.x[:0], split.y[:0]), classes=[str(i) for i in range(10)], mean=(0.5,) * 3,
                std=(0.25,) * 3, augment=Augment(crop_pad=4, flip=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar_preact_resnet18")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", choices=["auto", "none", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=5, help="timed batches per measurement (median)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--policies", default="Fixed", help=f"comma list of {', '.join(POLICIES)} or all")
    parser.add_argument("--defenses", default="PGDAT", help=f"comma list of {', '.join(DEFENSES)} or all")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="smoke run: small CNN, batch 32, 2 steps")
    args = parser.parse_args()
    if args.quick:
        args.model, args.batch_size, args.steps, args.warmup = "cifar_small_cnn", 32, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    policies = list(POLICIES) if args.policies == "all" else args.policies.split(",")
    defenses = list(DEFENSES) if args.defenses == "all" else args.defenses.split(",")
    data = synthetic_cifar(args.batch_size * (args.steps + args.warmup + 1))
    rows, lines = [], []
    for policy in policies:
        for defense in defenses:
            recipe = Recipe(name="throughput", model=args.model, dataset="synthetic", policy=POLICIES[policy](),
                            defense=DEFENSES[defense](), batch_size=args.batch_size, val_size=0)
            with tempfile.TemporaryDirectory() as out:
                trainer = Trainer(recipe, out, device=args.device, amp=args.amp, channels_last=args.channels_last,
                                  compile=args.compile, data=data, progress=False)
                result = measure(trainer, steps=args.steps, warmup=args.warmup)
            if not lines:
                lines.append(header("throughput", trainer.device, model=args.model, batch=args.batch_size,
                                    amp=trainer.run_info["amp"] or "none", channels_last=args.channels_last,
                                    compile=args.compile, processes=trainer.dist.world_size))
                lines.append("| policy | defense | fwd+bwd img/s | AT img/s | K | (K+1) limit img/s | "
                             "ratio to limit | time / floor | CIFAR-10 epoch s |")
                lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
                if trainer.dist.is_main:
                    print("\n".join(lines), flush=True)
            lines.append(f"| {policy} | {defense} | {result.full_images_per_s:.1f} | {result.images_per_s:.1f} | "
                         f"{result.mean_steps:.2f} | {result.limit_images_per_s:.1f} | {result.limit_ratio:.3f} | "
                         f"{result.floor_ratio:.3f} | {result.epoch_seconds():.1f} |")
            if trainer.dist.is_main:
                print(lines[-1], flush=True)
            rows.append({"policy": policy, "defense": defense, **result.to_dict()})
    if args.out and distributed.get_rank() == 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"header": lines[0], "rows": rows}, indent=2) + "\n")
    distributed.cleanup()


if __name__ == "__main__":
    main()
