"""Training throughput: images/s of adversarial training against the (K+1)× forward+backward limit."""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import distributed
from .trainer import Trainer, adversarial_step, autocast, train_mode


@dataclass
class Throughput:
    """Seconds per batch of each pass (medians) and what they imply; images/s count every rank.

    `limit_ratio` is adversarial training's speed over the (K+1) limit, (K+1) full training passes per
    step; above 1 because the K attack passes need only the input's gradient. `floor_ratio` is its time
    over the true floor, K input-gradient passes + 1 training pass (1.0 = no overhead at all).
    """

    batch_size: int
    world_size: int
    full_pass_s: float
    input_grad_pass_s: float
    step_s: float
    mean_steps: float

    def _rate(self, seconds: float) -> float:
        return self.batch_size * self.world_size / seconds

    @property
    def full_images_per_s(self) -> float:
        return self._rate(self.full_pass_s)

    @property
    def images_per_s(self) -> float:
        return self._rate(self.step_s)

    @property
    def limit_images_per_s(self) -> float:
        return self._rate(self.full_pass_s * (self.mean_steps + 1))

    @property
    def limit_ratio(self) -> float:
        return self.images_per_s / self.limit_images_per_s

    @property
    def floor_ratio(self) -> float:
        return self.step_s / (self.mean_steps * self.input_grad_pass_s + self.full_pass_s)

    def epoch_seconds(self, images: int = 50_000) -> float:
        """Estimated training time of one epoch of `images` (CIFAR-10: 50,000), without validation."""
        return images / self.images_per_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "full_images_per_s": self.full_images_per_s, "images_per_s": self.images_per_s,
                "limit_images_per_s": self.limit_images_per_s, "limit_ratio": self.limit_ratio,
                "floor_ratio": self.floor_ratio, "cifar10_epoch_s": self.epoch_seconds()}


def measure(trainer: Trainer, steps: int = 10, warmup: int = 2) -> Throughput:
    """Time `steps` batches (after `warmup`) of the trainer's adversarial step, of a plain training pass
    (forward + backward + optimizer step on clean images) and of an input-gradient pass (the attack's unit).

    It trains the model while measuring: use a throwaway trainer. Every rank runs it; all ranks agree.
    """
    recipe, model, device = trainer.recipe, trainer.model, trainer.device
    batches = iter(trainer.loader)
    x, y = next(batches)
    if trainer.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    recipe.policy.start_epoch(0, recipe.epochs)
    recipe.defense.start_epoch(0, recipe.epochs)
    model.train()
    step_counts: list[torch.Tensor] = []  # summed where they live, read after the timing

    def adversarial() -> None:
        strategy, *_ = adversarial_step(model, x, y, recipe.policy, recipe.defense, trainer.optimizer,
                                        scaler=trainer.scaler, amp_dtype=trainer.amp_dtype,
                                        attack_train_mode=recipe.attack_train_mode, train_model=trainer.train_model,
                                        final_eps=recipe.eps if recipe.final_clip else None)
        if trainer.ema is not None:
            trainer.ema.update(model, step=trainer.step + 1)
        step_counts.append(strategy.steps.sum())

    def full() -> None:
        trainer.optimizer.zero_grad(set_to_none=True)
        with autocast(device, trainer.amp_dtype):
            loss = F.cross_entropy(trainer.train_model(x).float(), y)
        trainer.scaler.scale(loss).backward()
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()

    def input_grad() -> None:
        x_in = x.detach().requires_grad_(True)
        with train_mode(model, recipe.attack_train_mode), autocast(device, trainer.amp_dtype):
            loss = F.cross_entropy(model(x_in).float(), y, reduction="sum")
        torch.autograd.grad(loss, x_in)

    times = {name: _median_time(fn, steps, warmup, device)
             for name, fn in (("full", full), ("input_grad", input_grad), ("adversarial", adversarial))}
    mean_steps = sum(float(c) for c in step_counts) / (len(step_counts) * len(y))
    return Throughput(batch_size=len(y), world_size=trainer.dist.world_size, full_pass_s=times["full"],
                      input_grad_pass_s=times["input_grad"], step_s=times["adversarial"], mean_steps=mean_steps)


def _median_time(fn: Callable[[], None], steps: int, warmup: int, device: torch.device) -> float:
    """Median seconds of `fn`, every call synchronized (and, data parallel, the slowest rank's)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        distributed.barrier()

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
