"""Auxiliary (generated) training images, memory-mapped: DM-Improves-AT's npz files, never loaded whole.

Their files (e.g. `1m.npz` of `wzekai99/DM-Improves-AT`) hold `image` (N, H, W, 3) uint8 and `label` (N,)
as an uncompressed npz, so the image array is a contiguous run of bytes inside the zip: it is mapped where
it lies. A folder with `image.npy` and `label.npy` works the same way.
"""
from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DatasetNotFoundError, InvalidValueError

IMAGE_KEYS, LABEL_KEYS = ("image", "images", "x"), ("label", "labels", "y")


@dataclass(frozen=True)
class Aux:
    """A recipe's auxiliary set: `fraction` of every training batch comes from the file at `path`.

    `fraction` 0.7 is DM-Improves-AT's `--unsup-fraction` in its CIFAR settings; the file's labels are used
    as given (the generator's class labels). `num_batches` sets an epoch's length in batches (None: as many
    as the real training images alone fill, DM's definition; see `BatchPlan`).
    """

    path: str
    fraction: float = 0.7
    num_batches: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise InvalidValueError(f"fraction={self.fraction!r}; expected a share of each batch in (0, 1)")
        if self.num_batches is not None and self.num_batches < 1:
            raise InvalidValueError(f"num_batches={self.num_batches!r}; expected a positive integer or None")

    def per_batch(self, batch_size: int) -> int:
        """Auxiliary images in a batch of `batch_size`: DM-Improves-AT's `int(batch_size * unsup_fraction)`
        (`core/data/semisup.py:235-236` @b390f25: 358 of 512 at 0.7), at least one real image kept."""
        n = int(batch_size * self.fraction)
        if n >= batch_size:
            raise InvalidValueError(f"batch_size={batch_size} with fraction={self.fraction}: no real training "
                                    f"image left in a batch; expected a larger batch or a smaller fraction")
        return n

    def config(self) -> dict[str, Any]:
        return {"path": self.path, "fraction": self.fraction, "num_batches": self.num_batches}


class AuxSplit:
    """Memory-mapped auxiliary images (uint8, NHWC on disk) and their labels; rows are read per batch."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, source: str):
        if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
            raise InvalidValueError(f"{source}: images are {images.dtype} {tuple(images.shape)}; expected uint8 "
                                    f"(N, H, W, 3) as DM-Improves-AT's npz files hold them")
        if labels.shape != (len(images),):
            raise InvalidValueError(f"{source}: {len(images)} images but labels of shape {tuple(labels.shape)}; "
                                    f"expected one label per image")
        self.images, self.source = images, source
        self.labels = torch.from_numpy(np.asarray(labels).astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W), as the training images."""
        _, h, w, c = self.images.shape
        return c, h, w

    def rows(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Images `[k, C, H, W]` uint8 and labels of the given rows, read from the map in sorted order."""
        idx = index.numpy()
        order = np.argsort(idx, kind="stable")
        block = np.empty((len(idx), *self.images.shape[1:]), dtype=np.uint8)
        block[order] = self.images[idx[order]]
        return torch.from_numpy(block).permute(0, 3, 1, 2), self.labels[index]


def open_aux(path: str | os.PathLike, num_classes: int | None = None) -> AuxSplit:
    """Map an auxiliary set: an uncompressed `.npz` (DM-Improves-AT's) or a folder of `image.npy`, `label.npy`."""
    p = Path(path).expanduser()
    if p.is_dir():
        image_file = _first(p, [f"{k}.npy" for k in IMAGE_KEYS])
        label_file = _first(p, [f"{k}.npy" for k in LABEL_KEYS])
        split = AuxSplit(np.load(image_file, mmap_mode="r"), np.load(label_file), str(p))
    elif p.is_file() and p.suffix == ".npz":
        images, labels = _npz_members(p)
        split = AuxSplit(images, labels, str(p))
    else:
        raise DatasetNotFoundError(f"auxiliary data {str(path)!r} not found; expected an .npz file (keys image, "
                                   f"label) or a folder holding image.npy and label.npy")
    if num_classes is not None and len(split) and not 0 <= int(split.labels.min()) <= int(split.labels.max()) < num_classes:
        raise InvalidValueError(f"{split.source}: labels span {int(split.labels.min())}..{int(split.labels.max())}; "
                                f"expected 0..{num_classes - 1} (the training set's classes)")
    return split


def _first(folder: Path, names: list[str]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DatasetNotFoundError(f"{folder} holds none of {', '.join(names)}")


def _npz_members(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with zipfile.ZipFile(path) as z:
        names = {n[:-4]: z.getinfo(n) for n in z.namelist() if n.endswith(".npy")}
        image_key = next((k for k in IMAGE_KEYS if k in names), None)
        label_key = next((k for k in LABEL_KEYS if k in names), None)
        if image_key is None or label_key is None:
            raise InvalidValueError(f"{path} holds arrays {sorted(names)}; expected 'image' and 'label' "
                                    f"(DM-Improves-AT's keys)")
        with z.open(names[label_key]) as f:
            labels = np.lib.format.read_array(f)
        info = names[image_key]
    if info.compress_type != zipfile.ZIP_STORED:
        raise InvalidValueError(f"{path}: {image_key!r} is compressed (np.savez_compressed), so it cannot be "
                                f"memory-mapped; expected np.savez's uncompressed npz, or unpack it to "
                                f"{image_key}.npy + {label_key}.npy in a folder")
    with open(path, "rb") as f:  # the member's bytes start after its local header, an .npy file verbatim
        f.seek(info.header_offset)
        header = f.read(30)
        if header[:4] != b"PK\x03\x04":
            raise InvalidValueError(f"{path}: not a readable zip member at {info.header_offset}")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                 else np.lib.format.read_array_header_2_0(f))
        offset = f.tell()
    if fortran or dtype.hasobject:
        raise InvalidValueError(f"{path}: {image_key!r} is {'Fortran-ordered' if fortran else 'an object array'}; "
                                f"expected a C-ordered uint8 array")
    images = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    return images, labels
