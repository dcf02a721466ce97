"""A loader in airbench's style: one uint8 tensor, shuffled and augmented on the device, per batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InvalidValueError
from .plan import BatchPlan, epoch_seed, shard

if TYPE_CHECKING:
    from .aux import AuxSplit


@dataclass(frozen=True)
class Augment:
    """Random crop after `crop_pad` reflect padding, and a random horizontal flip."""

    crop_pad: int = 0
    flip: bool = False


@dataclass
class Split:
    """Images as uint8 `[N, C, H, W]` and int64 labels `[N]`."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)


def random_crop(x: Tensor, pad: int, generator: torch.Generator, rows: slice = slice(None),
                total: int | None = None) -> Tensor:
    """Each image cropped back to its size at its own random offset in the reflect-padded image.

    `generator` lives on `x`'s device, so no random number crosses from the host. `x` may be `rows` of
    a batch of `total` images: the offsets are drawn for the whole batch and sliced.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, total or b, 1), generator=generator, device=x.device)[:, rows]
    rows_ = (dy + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    return padded[batch, torch.arange(c, device=x.device)[None, :, None, None], rows_, cols]


def augment_batch(x: Tensor, augment: Augment, generator: torch.Generator, rows: slice = slice(None),
                  total: int | None = None) -> Tensor:
    """Augment `x`, which is `rows` of a batch of `total` images (a rank's shard of a global batch):
    the random draws are made for the whole batch, so the shard is augmented as in a single process."""
    if augment.crop_pad:
        x = random_crop(x, augment.crop_pad, generator, rows, total)
    if augment.flip:
        flip = (torch.rand(total or len(x), generator=generator, device=x.device) < 0.5)[rows]
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


class Loader:
    """Float [0,1] batches of a split; the order and augmentation depend only on (seed, epoch).

    The uint8 split is copied to the device once (CIFAR-10's training set is 150 MB), so batches are
    gathered, converted and augmented on the device with no per-batch host transfer (pinned memory and
    worker processes have nothing left to do). With `world_size` > 1 (data parallel) `batch_size` is the
    global batch: every rank walks the same permutation and takes its contiguous `batch_size / world_size`
    rows of each batch, augmented with the single-process draws — the distributed sampler of this loader.
    With `aux` (memory-mapped generated images), `aux_per_batch` rows of every batch are read from the map on
    the host (a `BatchPlan`), copied in, and augmented with the rest.
    """

    def __init__(self, split: Split, batch_size: int, *, shuffle: bool = False,
                 augment: Augment | None = None, drop_last: bool = False,
                 device: torch.device | str = "cpu", seed: int = 0, rank: int = 0, world_size: int = 1,
                 aux: "AuxSplit | None" = None, aux_per_batch: int = 0, num_batches: int | None = None):
        if batch_size % world_size:
            raise InvalidValueError(f"batch_size={batch_size} does not split over {world_size} processes; "
                                    f"expected a global batch size divisible by the number of processes")
        self.device = torch.device(device)
        x = split.x.pin_memory() if self.device.type == "cuda" else split.x
        self.x, self.y = x.to(self.device, non_blocking=True), split.y.to(self.device)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.augment, self.drop_last = augment or Augment(), drop_last
        self.seed, self.epoch = seed, 0
        self.rank, self.world_size = rank, world_size
        self.position, self._resume_state = 0, None
        self.generator: torch.Generator | None = None  # the running epoch's augmentation stream
        if aux is not None and tuple(aux.image_shape) != tuple(split.x.shape[1:]):
            raise InvalidValueError(f"{aux.source}: auxiliary images are {aux.image_shape} (C, H, W); expected "
                                    f"the training images' {tuple(split.x.shape[1:])}")
        self.aux = aux
        self.plan = BatchPlan(len(self.y), batch_size, shuffle, drop_last, seed, len(aux) if aux else 0,
                              aux_per_batch if aux else 0, num_batches) if aux or num_batches else None

    def set_epoch(self, epoch: int, position: int = 0, generator_state: Tensor | None = None) -> None:
        """Select the epoch the next iteration yields; from batch `position` on with the augmentation
        generator in `generator_state` (a mid-epoch resume: `position` and `generator_state()` saved then)."""
        self.epoch, self.position, self._resume_state = epoch, position, generator_state

    def generator_state(self) -> Tensor | None:
        """The augmentation generator's state after the batches yielded so far (None before iterating)."""
        return self.generator.get_state() if self.generator is not None else None

    def __len__(self) -> int:
        if self.plan is not None:
            return len(self.plan)
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        seed = epoch_seed(self.seed, self.epoch)
        n = len(self.y)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if self.shuffle else torch.arange(n)
        generator = self.generator = torch.Generator(self.device).manual_seed(seed)
        start, self.position = self.position, 0
        if start and self._resume_state is not None:
            generator.set_state(self._resume_state)
        self._resume_state = None
        if self.plan is not None:
            yield from self._mixed(order, start, generator)
            return
        order = order.to(self.device)  # once per epoch
        for i in range(start, len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            total, rows = len(idx), self.rows(len(idx))
            idx = idx[rows]
            x = self.x[idx].float().div_(255)
            yield augment_batch(x, self.augment, generator, rows, total), self.y[idx]

    def _mixed(self, order: Tensor, start: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of the plan: training rows gathered on the device, auxiliary rows read from the map."""
        n = len(self.y)
        for i in range(start, len(self)):
            idx = self.plan.batch(self.epoch, i, order)
            total, rows = len(idx), self.rows(len(idx))
            idx = idx[rows]
            is_aux = idx >= n  # on the host: no device read to find the auxiliary rows
            mask = is_aux.to(self.device, non_blocking=True)
            x = torch.empty((len(idx), *self.x.shape[1:]), dtype=torch.uint8, device=self.device)
            y = torch.empty(len(idx), dtype=torch.long, device=self.device)
            real = idx[~is_aux].to(self.device)
            x[~mask], y[~mask] = self.x[real], self.y[real]
            if bool(is_aux.any()):
                aux_x, aux_y = self.aux.rows(idx[is_aux] - n)
                x[mask], y[mask] = aux_x.to(self.device, non_blocking=True), aux_y.to(self.device, non_blocking=True)
            yield augment_batch(x.float().div_(255), self.augment, generator, rows, total), y

    def rows(self, n: int) -> slice:
        """This rank's contiguous rows of a batch of `n` (`torch.tensor_split`'s chunks)."""
        return shard(n, self.rank, self.world_size)
