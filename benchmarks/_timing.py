"""Shared by the benchmarks: interleaved median timing and a header naming the machine."""
from __future__ import annotations

import platform
import statistics
import time
from typing import Callable

import torch


def bench(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device,
          warmup: int = 1) -> dict[str, float]:
    """Median wall time (s) of each function; repeats are interleaved so that load drift hits all alike."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def header(name: str, device: torch.device, **fields: object) -> str:
    extra = " | ".join(f"{k} {v}" for k, v in fields.items())
    return (f"# {name} | {platform.platform()} | python {platform.python_version()} | torch {torch.__version__} | "
            f"device {device} | threads {torch.get_num_threads()} | {extra}")


def bench_rounds(fns: dict[str, Callable[[], object]], rounds: int, device: torch.device,
                 warmup: int = 1, order: Callable[[int], list[str]] | None = None) -> dict[str, list[float]]:
    """Wall times (s) of each function in every round. By default rounds rotate the order of the functions,
    so neither drift nor a fixed neighbour favours one; `order(r)` gives round r's order instead (e.g. pairs
    run back to back, the first alternating). Returns the per-round times (for medians and paired ratios)."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    names = list(fns)
    order = order or (lambda r: names[r % len(names):] + names[:r % len(names)])
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in order(r):
            sync()
            start = time.perf_counter()
            fns[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def paired(a: list[float], b: list[float]) -> str:
    """Median of the per-round ratios a/b, with their quartiles and range: what a paired comparison resolves."""
    ratios = sorted(x / y for x, y in zip(a, b))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return (f"{statistics.median(ratios):.3f} (quartiles {q[0]:.3f}..{q[2]:.3f}, range {ratios[0]:.3f}.."
            f"{ratios[-1]:.3f}, {len(ratios)} pairs)")
