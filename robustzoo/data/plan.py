"""Which images make batch i of an epoch: a pure function of (seed, epoch, i), shared by both data paths.

With an auxiliary (generated) set, every batch holds a fixed number of auxiliary images, spread evenly over
the batch so each rank's rows carry the same fraction. A rank takes its contiguous rows of the global batch,
so 1 or N processes see the same global batches, and a resume needs only the batch position.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidValueError

_MIX = 1_000_003


def shard(n: int, rank: int, world_size: int) -> slice:
    """This rank's contiguous rows of a batch of `n` (`torch.tensor_split`'s chunks)."""
    if world_size == 1:
        return slice(None)
    q, r = divmod(n, world_size)
    start = rank * q + min(rank, r)
    return slice(start, start + q + (rank < r))


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's permutation (the in-memory loader's since its first version)."""
    return seed * _MIX + epoch


def sample_seeds(seed: int, epoch: int, slots: Tensor) -> Tensor:
    """Per-sample augmentation seeds, one per slot (batch * batch_size + row) of an epoch: a worker seeds
    its transform with them, so augmentation depends on neither the worker count nor a resume."""
    base = (epoch_seed(seed, epoch) * 2_654_435_761) % (2 ** 31)
    return (slots * 40_503 + base) % (2 ** 31 - 1)


@dataclass(frozen=True)
class BatchPlan:
    """Global batches of `batch_size` over `n` training images and, optionally, `aux_n` auxiliary ones.

    `aux_per_batch` auxiliary images per batch, drawn with replacement (DM-Improves-AT's semi-supervised
    sampler, `core/data/semisup.py:254-256` @b390f25); the remaining rows walk a per-epoch permutation of the
    training images (without replacement, :247-252), which wraps around when it runs out (DM draws a fresh
    permutation there). An epoch has
    `num_batches` batches; None: as many as the training images alone fill (`n // batch_size`, DM's
    `ceil(dataset_size / batch_size)`, :15), so only part of the real images is seen per epoch. DM shuffles
    each batch (:257); here the auxiliary rows are spread evenly, so every rank's rows carry the fraction.
    Auxiliary images have indices `n + j`.
    """

    n: int
    batch_size: int
    shuffle: bool = True
    drop_last: bool = True
    seed: int = 0
    aux_n: int = 0
    aux_per_batch: int = 0
    num_batches: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.aux_per_batch < self.batch_size:
            raise InvalidValueError(f"aux_per_batch={self.aux_per_batch}; expected 0 <= it < batch_size "
                                    f"({self.batch_size}): every batch keeps some training images")
        if self.aux_per_batch and not self.aux_n:
            raise InvalidValueError("aux_per_batch > 0 with an empty auxiliary set; expected auxiliary images")

    @property
    def real_per_batch(self) -> int:
        return self.batch_size - self.aux_per_batch

    def __len__(self) -> int:
        if self.num_batches is not None:
            return self.num_batches
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def order(self, epoch: int) -> Tensor:
        """The epoch's order of the training images."""
        if not self.shuffle:
            return torch.arange(self.n)
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, epoch)))

    def batch(self, epoch: int, i: int, order: Tensor | None = None) -> Tensor:
        """Global indices of batch `i` (auxiliary ones offset by `n`), on the host."""
        order = self.order(epoch) if order is None else order
        k = self.real_per_batch
        start = i * k
        if start + k <= self.n or not self.aux_per_batch and self.num_batches is None:
            real = order[start:start + k]
        else:  # past the end of the permutation: wrap (an epoch of num_batches longer than one pass)
            real = order[torch.arange(start, start + k) % self.n]
        if not self.aux_per_batch:
            return real
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch) * 7_919 + i)
        aux = torch.randint(0, self.aux_n, (self.aux_per_batch,), generator=g) + self.n
        out = torch.empty(len(real) + len(aux), dtype=torch.long)
        is_aux = aux_rows(len(out), len(aux))
        out[is_aux], out[~is_aux] = aux, real
        return out


def aux_rows(total: int, n_aux: int) -> Tensor:
    """A mask of `n_aux` rows spread evenly over `total` (row p is auxiliary when floor((p+1)k/B) steps)."""
    p = torch.arange(total)
    return (p + 1) * n_aux // total > p * n_aux // total
