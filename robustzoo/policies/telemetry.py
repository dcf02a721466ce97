"""Per-epoch distributions of the strategies a policy used, accumulated on the device (no host reads)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import distributed
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

    def state_dict(self) -> dict[str, Any]:
        """The running epoch's counts (a mid-epoch checkpoint); `on_host` names the tensors kept on the CPU."""
        tensors = {**{f"hist.{k}": v for k, v in self.hist.items()}, **{f"sums.{k}": v for k, v in self.sums.items()}}
        return {"tensors": tensors, "on_host": sorted(k for k, v in tensors.items() if v.device.type == "cpu"),
                "n": self.n}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        """Counts from `state_dict`, each back on the CPU or on `device`, where the strategies put them."""
        self.reset()
        for key, value in state.get("tensors", {}).items():
            store, name = key.split(".", 1)
            getattr(self, store)[name] = value.to("cpu" if key in state["on_host"] else device)
        self.n = int(state.get("n", 0))

    def all_reduce(self) -> None:
        """Sum every rank's histograms, sums and count (data-parallel runs; one collective per epoch)."""
        if not distributed.is_enabled():
            return
        keys = distributed.all_gather_object((sorted(self.hist), sorted(self.sums)))
        hist_keys = sorted({k for h, _ in keys for k in h})
        sum_keys = sorted({k for _, s in keys for k in s})
        device = distributed.comm_device()
        flat = torch.cat([*(self.hist.get(k, torch.zeros(BINS, dtype=torch.long)).to(device, torch.float64)
                            for k in hist_keys),
                          torch.stack([self.sums.get(k, torch.zeros(())).to(device, torch.float64) for k in sum_keys]
                                      + [torch.tensor(float(self.n), dtype=torch.float64, device=device)])])
        distributed.all_reduce_sum_(flat)
        for i, k in enumerate(hist_keys):
            self.hist[k] = flat[i * BINS:(i + 1) * BINS].round().long()
        tail = flat[len(hist_keys) * BINS:]
        self.sums = {k: tail[i] for i, k in enumerate(sum_keys)}
        self.n = int(tail[-1].item())

    def summary(self) -> dict[str, Any]:
        """JSON-able: `n`, `mean` per parameter and extra, `hist` as {bin: count} for non-empty bins."""
        n = max(self.n, 1)
        out: dict[str, Any] = {"n": self.n, "mean": {k: float(v) / n for k, v in self.sums.items()},
                               "hist": {}}
        for name, counts in self.hist.items():
            out["hist"][name] = {str(i): int(c) for i, c in enumerate(counts.tolist()) if c}
        return out
