"""Cost of mid-epoch checkpoints (`--checkpoint-every`): epoch time with and without, and one write's seconds.

1. Epoch time of a small network on the digits with `checkpoint_every` 0 (epoch ends only) and 30 minutes
   (the default; no checkpoint falls due inside these short epochs, so this is the per-step bookkeeping),
   and with a checkpoint after every step (to price one write inside the loop); interleaved medians.
2. Seconds to write the exact training state (weights, SGD momentum, RNG streams, running counts) of
   PreActResNet-18 and WRN-34-10, and what that costs at the default interval: write / 1,800 s.

Run: python benchmarks/checkpoint_cost.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from robustzoo import PGDAT, Fixed, Recipe, Trainer
from robustzoo.data import load_data
from robustzoo.preemption import CheckpointClock, StopRequest

from _timing import bench, header
from throughput import synthetic_cifar


def epoch_trainer(out: Path, data) -> Trainer:
    recipe = Recipe(name="ckpt", model="cifar_small_cnn", model_kwargs={"width": 16}, dataset="digits",
                    policy=Fixed(eps=32 / 255, step_size=8 / 255, steps=5), defense=PGDAT(), eps=32 / 255,
                    epochs=1000, batch_size=64, val_size=0)
    trainer = Trainer(recipe, out, device="cpu", data=data, progress=False)
    trainer.out.mkdir(parents=True, exist_ok=True)
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    print(header("checkpoint_cost", device, rounds=args.rounds), flush=True)
    data = load_data("digits", val_size=0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = epoch_trainer(Path(tmp), data)
        steps = len(trainer.loader)
        epoch = {"n": 0}

        def run(minutes: float) -> None:
            trainer._clock = CheckpointClock(minutes, StopRequest())
            trainer.train_epoch(epoch["n"])
            epoch["n"] += 1

        times = bench({"off (0)": lambda: run(0), "default (30 min)": lambda: run(30),
                       "every step": lambda: run(1e-9)}, args.rounds, device)
        base = times["off (0)"]
        print(f"\nepoch of {steps} steps (small CNN, digits, PGD-5, batch 64), median of {args.rounds} interleaved:")
        for name, t in times.items():
            print(f"  checkpoint_every {name:>16}: {t:7.3f} s  ×{t / base:.4f}")
        in_loop = (times["every step"] - base) / steps
        print(f"  one checkpoint written inside the loop: {in_loop * 1000:.1f} ms")
    print("\nwriting the exact training state (median of 3), and its share at the default interval (1,800 s):")
    for model in ("cifar_preact_resnet18", "cifar_wrn_34_10"):
        recipe = Recipe(name="ckpt", model=model, dataset="synthetic", val_size=0, batch_size=8)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(recipe, tmp, device="cpu", data=synthetic_cifar(16), progress=False)
            for p in trainer.model.parameters():  # momentum buffers, as after the first step
                trainer.optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
            path = Path(tmp) / "last.safetensors"
            write = bench({"w": lambda: trainer.save_state(path, {}, position=1,
                                                           loader_state=torch.Generator().get_state())}, 3, device)["w"]
            size = path.stat().st_size / 2 ** 20
        print(f"  {model:>22}: {size:7.1f} MiB in {write:6.3f} s → {write / 1800:.5%} of 30 minutes")


if __name__ == "__main__":
    main()
