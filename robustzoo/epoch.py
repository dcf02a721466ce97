"""An epoch's running counts on one rank, kept on the device during the epoch and saved in mid-epoch checkpoints."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from . import distributed
from .policies import AttackPolicy
from .strategy import Strategy


@dataclass
class EpochCounts:
    """One rank's running sums of an epoch: loss, correct and eps on the device, step counts where the policy
    keeps them (Fixed: host), images, and the first step whose loss was not finite (-1: none so far)."""

    totals: Tensor
    step_sums: dict[torch.device, Tensor]
    n: int
    first_bad: Tensor
    position: int = 0  # batches already done (a mid-epoch resume)
    loader_state: Tensor | None = None

    @classmethod
    def start(cls, device: torch.device, resume: dict[str, Any] | None, policy: AttackPolicy) -> "EpochCounts":
        run = cls(torch.zeros(3, dtype=torch.float64, device=device), {}, 0,
                  torch.full((), -1, dtype=torch.long, device=device))
        if resume is None:
            return run
        run.position, run.loader_state = int(resume["position"]), resume["loader"]
        counts = resume["counts"]
        if counts:
            run.totals, run.n = counts["totals"].to(device), int(counts["n"])
            for where, t in counts["step_sums"].items():
                t = t.to("cpu" if where == "host" else device)
                run.step_sums[t.device] = t
        policy.load_telemetry_state(counts.get("telemetry", {}) if counts else {}, device)
        return run

    def add(self, loss: Tensor, logits: Tensor, y: Tensor, strategy: Strategy, step: int) -> None:
        """One step's counts, summed where they live: no host-device sync."""
        with torch.no_grad():
            loss_sum = loss.detach().sum()
            self.totals += torch.stack([loss_sum, (logits.argmax(1) == y).sum(),
                                        strategy.eps.to(self.totals.device).sum()]).double()
            steps = strategy.steps.sum()
            self.step_sums[steps.device] = self.step_sums[steps.device] + steps if steps.device in self.step_sums \
                else steps
            self.first_bad = torch.where((self.first_bad < 0) & ~torch.isfinite(loss_sum), step, self.first_bad)
        self.n += len(y)

    def local_state(self, policy: AttackPolicy) -> dict[str, Any]:
        """The counts on the CPU (one read, at a checkpoint), with the policy's telemetry of the epoch."""
        telemetry = policy.telemetry_state()
        if telemetry:
            telemetry = {**telemetry, "tensors": {k: v.cpu() for k, v in telemetry["tensors"].items()}}
        return {"totals": self.totals.cpu(), "n": self.n, "telemetry": telemetry,
                "step_sums": {("host" if d.type == "cpu" else "device"): t.cpu() for d, t in self.step_sums.items()}}

    @staticmethod
    def merge(counts: list[dict[str, Any]]) -> dict[str, Any]:
        """Several ranks' counts as one (resuming on another number of processes: rank 0 carries them all)."""
        out: dict[str, Any] = {"totals": sum(c["totals"] for c in counts), "n": sum(c["n"] for c in counts),
                               "step_sums": {}, "telemetry": {"tensors": {}, "on_host": [], "n": 0}}
        for c in counts:
            for k, v in c["step_sums"].items():
                out["step_sums"][k] = out["step_sums"][k] + v if k in out["step_sums"] else v
            t = c.get("telemetry") or {}
            for k, v in t.get("tensors", {}).items():
                store = out["telemetry"]["tensors"]
                store[k] = store[k] + v if k in store else v
            out["telemetry"]["on_host"] = sorted(set(out["telemetry"]["on_host"]) | set(t.get("on_host", [])))
            out["telemetry"]["n"] += t.get("n", 0)
        return out

    def summary(self, policy: AttackPolicy) -> dict[str, Any]:
        """The epoch's training metrics, summed over ranks (all ranks call it)."""
        steps = sum(float(v) for v in self.step_sums.values())
        counts = torch.cat([self.totals, torch.tensor([self.n, steps], dtype=torch.float64,
                                                      device=self.totals.device)])
        loss, correct, eps, n, steps = distributed.all_reduce_sum_(counts).tolist()
        return {"train_loss": loss / n, "train_robust_acc": correct / n, "mean_eps": eps / n,
                "mean_steps": steps / n, "strategy": policy.epoch_stats()}
