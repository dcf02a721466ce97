"""Shared by the benchmarks: the work a callable does, counted (not timed), so two ways compare exactly."""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry


class _Ops(TorchDispatchMode):
    """Counts aten calls, the elements they write and their FLOPs (torch's flop formulas: matmuls and
    convolutions). Not `FlopCounterMode`, whose module hooks refuse `torch.autograd.grad`."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.elements = 0
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.calls += 1
        self.elements += sum(t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        if func.overloadpacket in flop_registry:
            self.flops += flop_registry[func.overloadpacket](*args, **kwargs, out_val=out)
        return out


def work(fn: Callable[[], object]) -> dict[str, float]:
    """FLOPs (matmuls and convolutions, torch's flop counter), aten calls and elements written by one call."""
    ops = _Ops()
    with ops:
        fn()
    return {"flops": float(ops.flops), "calls": float(ops.calls),
            "elements": float(ops.elements)}


def compare(a: dict[str, float], b: dict[str, float]) -> str:
    """`a / b` for each count, in a line."""
    return ", ".join(f"{k} {a[k] / b[k]:.4f}" if b[k] else f"{k} {a[k]:.0f}/0" for k in a)
