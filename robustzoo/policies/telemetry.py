"""Per-epoch distributions of the strategies a policy used, accumulated on the device (no host reads)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..strategy import Strategy

BINS = 65  # eps and step size in units of 1/255, steps: 0..64 (larger values land in the last bin)


class StrategyStats:
    """Histograms of eps, step size (both in 1/255) and steps; shares of bool extras; means of float extras."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.hist: dict[str, Tensor] = {}
        self.sums: dict[str, Tensor] = {}
        self.n = 0

    def _add(self, store: dict[str, Tensor], key: str, value: Tensor) -> None:
        store[key] = store[key] + value if key in store else value

    def update(self, strategy: Strategy) -> None:
        for name, values, scale in (("eps", strategy.eps, 255), ("step_size", strategy.step_size, 255),
                                    ("steps", strategy.steps, 1)):
            index = (values.detach().float() * scale).round().long().clamp(0, BINS - 1)
            counts = torch.zeros(BINS, dtype=torch.long, device=index.device).index_add_(
                0, index, torch.ones_like(index))
            self._add(self.hist, name, counts)
            self._add(self.sums, name, values.detach().float().sum())
        for name, values in strategy.extras.items():
            self._add(self.sums, name, values.detach().float().sum())
        self.n += len(strategy)

    def summary(self) -> dict[str, Any]:
        """JSON-able: `n`, `mean` per parameter and extra, `hist` as {bin: count} for non-empty bins."""
        n = max(self.n, 1)
        out: dict[str, Any] = {"n": self.n, "mean": {k: float(v) / n for k, v in self.sums.items()},
                               "hist": {}}
        for name, counts in self.hist.items():
            out["hist"][name] = {str(i): int(c) for i, c in enumerate(counts.tolist()) if c}
        return out
