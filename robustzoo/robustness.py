"""`robustzoo.evaluate`: robust accuracy of any model that maps [0,1] images to logits, on any data."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from . import distributed
from .attacks import run_attacks
from .attacks.evaluation import AttackResult
from .checkpoint import write_json
from .data import Data, Split
from .errors import InvalidValueError


@dataclass
class RobustnessResult:
    """Accuracy per attack on `n` images, with the threat model and the settings that produced it."""

    results: list[AttackResult]
    n: int
    threat_model: dict[str, Any]
    seed: int
    batch_size: int
    indices: list[int] = field(default_factory=list)  # positions in `data` of the evaluated images, in order
    seconds: float = 0.0

    @property
    def accuracy(self) -> dict[str, float]:
        """`{"clean": 0.84, "pgd20": 0.41, ...}`."""
        return {r.attack: r.accuracy for r in self.results}

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: accuracy per attack, settings, timings and the indices of the images."""
        return {"n": self.n, "threat_model": self.threat_model, "seed": self.seed, "batch_size": self.batch_size,
                "seconds": round(self.seconds, 3), "accuracy": self.accuracy,
                "results": [asdict(r) for r in self.results], "indices": self.indices}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as JSON, atomically."""
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RobustnessResult":
        """Read a result written by `save`."""
        d = json.loads(Path(path).read_text())
        return cls([AttackResult(**r) for r in d["results"]], d["n"], d["threat_model"], d["seed"],
                   d["batch_size"], d.get("indices", []), d.get("seconds", 0.0))

    def table(self, title: str = "") -> Any:
        """A rich Table: attack, accuracy, seconds."""
        from rich.table import Table

        eps = self.threat_model["eps"]
        table = Table(title=title or f"n={self.n}, L∞ eps={eps * 255:.2f}/255, seed {self.seed}")
        for col in ("attack", "accuracy", "seconds"):
            table.add_column(col, justify="left" if col == "attack" else "right")
        for r in self.results:
            table.add_row(r.attack, f"{r.accuracy:.2%}", f"{r.seconds:.1f}")
        return table

    def __rich__(self) -> Any:
        return self.table()


def balanced_order(y: Tensor) -> Tensor:
    """Indices that interleave the classes (1st of each class, then 2nd of each...): any prefix is balanced.

    Within a class the data's own order is kept, so the order depends only on the labels."""
    y = y.long().cpu()
    if y.numel() == 0:
        return y
    order = torch.argsort(y, stable=True)
    counts = torch.bincount(y)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(y)
    rank[order] = torch.arange(len(y)) - starts[y[order]]  # position of each sample within its class
    return torch.argsort(rank * (int(y.max()) + 1) + y, stable=True)


def as_tensors(data: Any) -> tuple[Tensor, Tensor]:
    """(x float in [0,1], y long) from a robustzoo `Data`/`Split`, a pair of tensors, a Dataset or a DataLoader."""
    if isinstance(data, Data):
        data = data.test
    if isinstance(data, Split):
        return data.x.float() / 255, data.y.long()
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
    elif isinstance(data, (torch.utils.data.DataLoader, torch.utils.data.Dataset)):
        items = data if isinstance(data, torch.utils.data.DataLoader) else \
            torch.utils.data.DataLoader(data, batch_size=256, shuffle=False)
        xs, ys = zip(*((xb, yb) for xb, yb, *_ in items))
        x, y = torch.cat([torch.as_tensor(v) for v in xs]), torch.cat([torch.as_tensor(v) for v in ys])
    else:
        raise InvalidValueError(f"data of type {type(data).__name__}; expected a robustzoo Data or Split, a pair "
                                f"of tensors (x, y), a Dataset or a DataLoader")
    if x.dtype == torch.uint8:
        x = x.float() / 255
    if len(x) != len(y):
        raise InvalidValueError(f"data has {len(x)} images but {len(y)} labels")
    return x.float(), y.long()


def evaluate(model: nn.Module, data: Any, attacks: Sequence[str] = ("clean", "pgd20", "aa"), *,
             eps: float = 8 / 255, n: int | None = None, batch_size: int = 256, seed: int = 0,
             aa_version: str = "standard", aa_attacks: Sequence[str] | None = None) -> RobustnessResult:
    """Accuracy of `model` under each attack on the first `n` images of `data` in class-balanced order.

    The order interleaves the classes (`balanced_order`), so `n=1000` of a class-sorted test set takes 100
    of each of 10 classes. Same seed, same images → same numbers. Under torchrun each rank attacks every
    world_size-th image and the counts are summed (random starts then differ from a single process's)."""
    if n is not None and n < 1:
        raise InvalidValueError(f"n={n!r}; expected a positive number of images or None for all")
    x, y = as_tensors(data)
    order = balanced_order(y)[:n]
    start = time.perf_counter()
    shard = order[distributed.get_rank()::distributed.get_world_size()]
    results = run_attacks(model, x[shard].contiguous(), y[shard], list(attacks), eps=eps, batch_size=batch_size,
                          seed=seed, aa_version=aa_version, aa_attacks=aa_attacks)
    if distributed.is_enabled():
        results = _sum_over_ranks(results, len(order))
    return RobustnessResult(results, len(order), {"norm": "Linf", "eps": eps}, seed, batch_size,
                            order.tolist(), time.perf_counter() - start)


def _sum_over_ranks(results: list[AttackResult], n: int) -> list[AttackResult]:
    """Each attack's accuracy over all ranks' shards (counts summed; seconds of the slowest rank)."""
    correct = torch.tensor([round(r.accuracy * r.n) for r in results], dtype=torch.float64,
                           device=distributed.comm_device())
    distributed.all_reduce_sum_(correct)
    seconds = distributed.all_gather_object([r.seconds for r in results])
    return [AttackResult(r.attack, c / max(n, 1), n, max(s[i] for s in seconds), r.settings)
            for i, (r, c) in enumerate(zip(results, correct.tolist()))]
