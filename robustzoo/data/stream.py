"""The streaming data path: image files decoded per batch by DataLoader workers, with timm's transforms.

For what does not fit in memory as one uint8 tensor (ImageNet: ~193 GB at 224 px) or has images of many
sizes. torchvision's folder scan lists the files; timm's `create_transform` gives the training
RandomResizedCrop + flip and the eval resize + center crop (uint8 out, normalization stays in the model);
a torch `DataLoader` with worker processes and pinned memory decodes them. The batches come from the same
`BatchPlan` as the in-memory path: each rank its rows of every global batch, reshuffled per epoch from the
seed, and every sample's augmentation seeded by its slot, so a mid-epoch resume needs only the position.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import DatasetNotFoundError, InvalidValueError
from .aux import AuxSplit
from .loader import Split
from .plan import BatchPlan, sample_seeds, shard


@dataclass(frozen=True)
class Stream:
    """A recipe's streaming settings: timm's train/eval transforms at `image_size`, and loader workers.

    Training: RandomResizedCrop(`scale`, `ratio`) + horizontal flip (`hflip`) + optional color jitter;
    evaluation: resize to `image_size / crop_pct`, center crop (RobustBench's ImageNet Resize(256) +
    CenterCrop(224) is `image_size=224, crop_pct=0.875`). `workers` None: `default_workers()`.
    """

    image_size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    color_jitter: float = 0.0
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    auto_augment: str | None = None  # timm's policy string, e.g. "rand-m9-mstd0.5-inc1" (RandAugment)
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise InvalidValueError(f"image_size={self.image_size!r}; expected pixels >= 8")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise InvalidValueError(f"scale={self.scale!r}; expected 0 < min <= max <= 1")
        if not 0 < self.crop_pct <= 1:
            raise InvalidValueError(f"crop_pct={self.crop_pct!r}; expected a fraction in (0, 1]")
        if self.workers is not None and self.workers < 0:
            raise InvalidValueError(f"workers={self.workers!r}; expected >= 0 (0: decode in the main process)")

    def train_transform(self) -> Callable:
        from timm.data import create_transform

        return create_transform(self.image_size, is_training=True, scale=self.scale, ratio=self.ratio,
                                hflip=self.hflip, color_jitter=self.color_jitter or None,
                                auto_augment=self.auto_augment, interpolation=self.interpolation, use_prefetcher=True)

    def eval_transform(self) -> Callable:
        from timm.data import create_transform

        return create_transform(self.image_size, is_training=False, crop_pct=self.crop_pct,
                                interpolation=self.interpolation, use_prefetcher=True)

    def config(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "scale": list(self.scale), "ratio": list(self.ratio),
                "hflip": self.hflip, "color_jitter": self.color_jitter, "crop_pct": self.crop_pct,
                "interpolation": self.interpolation, **({"auto_augment": self.auto_augment} if self.auto_augment else {})}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Stream":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


def default_workers(world_size: int = 1) -> int:
    """Decoding processes per rank: this machine's cores shared by its ranks, at most 8."""
    return max(1, min(8, (os.cpu_count() or 1) // max(1, world_size)))


Sample = tuple[str, int]


def list_folder(folder: Path, class_to_idx: dict[str, int]) -> list[Sample]:
    """(path, label) of every image under `folder/<class>/` (torchvision's ImageFolder scan)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    try:
        return make_dataset(str(folder), class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as e:
        raise DatasetNotFoundError(f"{folder}: {e}") from None


def find_classes(folder: Path) -> list[str]:
    from torchvision.datasets.folder import find_classes as tv_find_classes

    try:
        return tv_find_classes(str(folder))[0]
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{folder} has no class folders; expected {folder}/<class>/*") from None


class Images(Dataset):
    """Training/eval images by index: files decoded with PIL, auxiliary rows (index >= len(samples)) from
    their map; `transform` seeded per sample when the key carries a seed, so workers need no shared state."""

    def __init__(self, samples: Sequence[Sample], transform: Callable, aux: AuxSplit | None = None):
        self.samples, self.transform, self.aux = samples, transform, aux

    def __len__(self) -> int:
        return len(self.samples) + (len(self.aux) if self.aux is not None else 0)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, int]:
        from PIL import Image

        index, seed = key if isinstance(key, tuple) else (key, None)
        if index < len(self.samples):
            path, label = self.samples[index]
            try:
                with Image.open(path) as f:
                    image = f.convert("RGB")
            except OSError as e:
                raise InvalidValueError(f"{path} is not an image robustzoo can read ({e})") from None
        else:
            row = index - len(self.samples)
            pixels = np.asarray(self.aux.images[row])
            image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
            label = int(self.aux.labels[row])
        if seed is None:
            out = self.transform(image)
        else:
            state = random.getstate()
            with torch.random.fork_rng(devices=[]):
                random.seed(seed)
                torch.manual_seed(seed)
                out = self.transform(image)
            random.setstate(state)
        # uint8 CHW: a numpy array from timm 1.0.9's ToNumpy, a tensor from newer timm's MaybePILToTensor
        return (out if isinstance(out, Tensor) else torch.from_numpy(np.ascontiguousarray(out))), label


class PlanSampler(Sampler[list[tuple[int, int]]]):
    """A distributed batch sampler over a `BatchPlan`: this rank's rows of each global batch, from batch
    `start` of the epoch set by `set_epoch` (the checkpointed position), each index with its sample seed."""

    def __init__(self, plan: BatchPlan, rank: int = 0, world_size: int = 1):
        self.plan, self.rank, self.world_size = plan, rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return len(self.plan) - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order, start = self.plan.order(self.epoch), self.start
        self.start = 0
        b = self.plan.batch_size
        for i in range(start, len(self.plan)):
            idx = self.plan.batch(self.epoch, i, order)
            rows = shard(len(idx), self.rank, self.world_size)
            seeds = sample_seeds(self.plan.seed, self.epoch, torch.arange(i * b, i * b + len(idx)))
            yield list(zip(idx[rows].tolist(), seeds[rows].tolist()))


class StreamLoader:
    """Float [0, 1] batches on `device` from worker processes; the in-memory `Loader`'s interface
    (`set_epoch`, `generator_state`, `len`), so the trainer does not know which path feeds it."""

    def __init__(self, images: Images, plan: BatchPlan, *, device: torch.device | str = "cpu", rank: int = 0,
                 world_size: int = 1, workers: int | None = None):
        if plan.batch_size % world_size:
            raise InvalidValueError(f"batch_size={plan.batch_size} does not split over {world_size} processes; "
                                    f"expected a global batch size divisible by the number of processes")
        self.device = torch.device(device)
        self.workers = default_workers(world_size) if workers is None else workers
        self.sampler = PlanSampler(plan, rank, world_size)
        self.batches = DataLoader(images, batch_sampler=self.sampler, num_workers=self.workers,
                                  pin_memory=self.device.type == "cuda", persistent_workers=self.workers > 0,
                                  prefetch_factor=4 if self.workers else None,
                                  generator=torch.Generator().manual_seed(plan.seed))  # not the global RNG:
        # each epoch's iterator draws its workers' base seed from it (unused: samples carry their own seeds)
        self.epoch = 0

    def set_epoch(self, epoch: int, position: int = 0, generator_state: Tensor | None = None) -> None:
        """The epoch the next iteration yields, from batch `position` (a mid-epoch resume; the augmentation
        needs no state: each sample's seed follows from its slot)."""
        self.epoch = epoch
        self.sampler.set_epoch(epoch, position)

    def generator_state(self) -> Tensor | None:
        return None

    def __len__(self) -> int:
        return len(self.sampler.plan)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in self.batches:
            yield x.to(self.device, non_blocking=True).float().div_(255), y.to(self.device, non_blocking=True)


def decode(samples: Sequence[Sample], transform: Callable, workers: int, batch_size: int = 64) -> Split:
    """Images decoded once with a deterministic transform (the eval split), into one uint8 Split."""
    if not samples:
        return Split(torch.zeros(0, 3, 1, 1, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    batches = DataLoader(Images(samples, transform), batch_size=batch_size, num_workers=workers,
                         generator=torch.Generator())  # leaves the global RNG (the run's attack noise) alone
    xs, ys = zip(*batches)
    return Split(torch.cat(xs), torch.cat(ys))


@dataclass
class StreamData:
    """A dataset read from files per batch: training files, held-out and test files (decoded once, when first
    used, with the eval transform), the class names, and the normalization the model takes."""

    name: str
    train: list[Sample]
    val_files: list[Sample]
    test_files: list[Sample] | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    stream: Stream = field(default_factory=Stream)
    aux: AuxSplit | None = None
    test_missing: str = ""  # why there is no test split (e.g. ImageNet without RobustBench's id list)
    streamed: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return 3

    @property
    def image_size(self) -> int:
        return self.stream.image_size

    @property
    def input_size(self) -> tuple[int, int, int]:
        return 3, self.stream.image_size, self.stream.image_size

    @property
    def workers(self) -> int:
        return default_workers() if self.stream.workers is None else self.stream.workers

    @cached_property
    def val(self) -> Split:
        return decode(self.val_files, self.stream.eval_transform(), self.workers)

    @cached_property
    def test(self) -> Split:
        if self.test_files is None:
            raise DatasetNotFoundError(self.test_missing or f"{self.name} has no test split")
        return decode(self.test_files, self.stream.eval_transform(), self.workers)

    def train_loader(self, batch_size: int, *, augment: bool = True, device: torch.device | str = "cpu",
                     seed: int = 0, rank: int = 0, world_size: int = 1, aux_per_batch: int = 0,
                     num_batches: int | None = None) -> StreamLoader:
        """The training batches: timm's training transform (`augment`) or its eval one, from worker processes."""
        transform = self.stream.train_transform() if augment else self.stream.eval_transform()
        aux = self.aux if aux_per_batch else None
        plan = BatchPlan(len(self.train), batch_size, True, True, seed, len(aux) if aux else 0, aux_per_batch,
                         num_batches)
        workers = self.stream.workers if self.stream.workers is not None else default_workers(world_size)
        return StreamLoader(Images(self.train, transform, aux), plan, device=device, rank=rank,
                            world_size=world_size, workers=workers)


def channel_stats(samples: Sequence[Sample], stream: Stream, limit: int = 1000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of up to `limit` evenly spaced training images (eval transform), summed batch
    by batch: memory stays that of one batch whatever the image size."""
    picked = list(samples[::max(1, len(samples) // limit)][:limit])
    batches = DataLoader(Images(picked, stream.eval_transform()), batch_size=64, num_workers=default_workers(),
                         generator=torch.Generator())
    return running_stats(x for x, _ in batches)


def running_stats(batches: Iterator[Tensor]) -> tuple[list[float], list[float]]:
    """Per-channel mean and (unbiased) std of uint8 NCHW batches, in [0, 1], accumulated in float64."""
    total = squares = None
    n = 0
    for x in batches:
        flat = x.transpose(0, 1).reshape(x.shape[1], -1).double().div_(255)
        s, q = flat.sum(1), flat.square().sum(1)
        total, squares = (s, q) if total is None else (total + s, squares + q)
        n += flat.shape[1]
    mean = total / n
    var = (squares - n * mean.square()) / max(n - 1, 1)
    return mean.tolist(), var.clamp_min(0).sqrt().tolist()
