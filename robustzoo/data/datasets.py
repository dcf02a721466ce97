"""Datasets by name: decoded once into uint8 tensors (CIFAR-10/100, SVHN, Tiny-ImageNet, digits, image
folders of one size), or streamed from their files (ImageNet, large or variable-size image folders)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import DatasetNotFoundError, InvalidValueError
from ..registry import Registry
from .aux import Aux, AuxSplit, open_aux
from .imagefolder import is_image_folder, load_image_folder
from .loader import Augment, Loader, Split
from .plan import shard
from .stream import Sample, Stream, StreamData, channel_stats, running_stats

RawData = tuple[Split, Split, list[str]]
DATASETS: Registry[Callable[..., RawData]] = Registry("dataset")

# Per-dataset statistics the papers' code uses; `None` means: computed from the training split.
_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "tiny_imagenet": ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
}
_AUGMENT = {"cifar10": Augment(4, True), "cifar100": Augment(4, True), "svhn": Augment(4, False),
            "tiny_imagenet": Augment(4, True), "digits": Augment(1, False),
            "imagefolder": Augment(4, True)}
_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # timm's IMAGENET_DEFAULT_MEAN / STD
STREAMED = ("imagenet",)  # always read from files: ~193 GB as uint8 at 224 px
MEMORY_BYTES = 8 * 2 ** 30  # the largest uint8 training set the auto choice keeps in memory


@dataclass
class Data:
    """Train / held-out validation / test splits of one dataset, with what models and loaders need."""

    name: str
    train: Split
    val: Split
    test: Split
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment = field(default_factory=Augment)
    aux: AuxSplit | None = None  # memory-mapped generated images mixed into training batches (Recipe.aux)
    streamed = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])

    def train_loader(self, batch_size: int, *, augment: bool = True, device: torch.device | str = "cpu",
                     seed: int = 0, rank: int = 0, world_size: int = 1, aux_per_batch: int = 0,
                     num_batches: int | None = None) -> Loader:
        """The training batches: shuffled per epoch, the dataset's augmentation on the device (`augment`)."""
        return Loader(self.train, batch_size, shuffle=True, augment=self.augment if augment else None,
                      drop_last=True, device=device, seed=seed, rank=rank, world_size=world_size,
                      aux=self.aux if aux_per_batch else None, aux_per_batch=aux_per_batch,
                      num_batches=num_batches)

    @property
    def in_chans(self) -> int:
        return self.train.x.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.x.shape[-1]


def list_datasets() -> list[str]:
    return DATASETS.names()


def default_data_dir() -> Path:
    """`$ROBUSTZOO_DATA`, else `~/.cache/robustzoo/data`."""
    return Path(os.environ.get("ROBUSTZOO_DATA", Path.home() / ".cache" / "robustzoo" / "data"))


def load_data(name: str, data_dir: str | os.PathLike | None = None, *, val_size: int = 1000,
              download: bool = False, seed: int = 0, train_subset: int | None = None,
              stream: Stream | bool | None = None, aux: Aux | None = None) -> Data | StreamData:
    """Load a dataset by name and hold out `val_size` training images (fixed by `seed`) for validation.

    `train_subset` keeps that many training images, a random subset fixed by `seed` (for quick runs).
    `stream`: None chooses the path (ImageNet, and image folders of mixed sizes or over `MEMORY_BYTES` as
    uint8, stream from their files; the rest is decoded into memory); False keeps it in memory; a `Stream`
    (or True: `Stream()`) streams with those transforms. `aux` memory-maps an auxiliary set for the mix.
    """
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    if name not in DATASETS and name not in STREAMED:
        DATASETS.get(name)  # the unknown-name error, listing the datasets
    if stream is False and name in STREAMED:
        raise InvalidValueError(f"stream=False for {name!r}; {name} is read from its files (it does not fit in "
                                f"memory), expected stream=None or a Stream")
    if stream is True or (stream is None and _should_stream(name, root)):
        stream = Stream()
    if isinstance(stream, Stream):
        data: Data | StreamData = _load_stream(name, root, stream, val_size, seed, train_subset)
    else:
        train, test, classes = DATASETS.get(name)(root, download=download)
        val_idx, train_idx = _split(len(train), val_size, seed, train_subset)
        mean, std = _STATS.get(name) or _channel_stats(train.x)
        data = Data(name, Split(train.x[train_idx], train.y[train_idx]), Split(train.x[val_idx], train.y[val_idx]),
                    test, classes, tuple(mean), tuple(std), _AUGMENT.get(name, Augment()))
    if aux is not None:
        data.aux = open_aux(aux.path, data.num_classes)
    return data


def _split(n: int, val_size: int, seed: int, train_subset: int | None) -> tuple[Tensor, Tensor]:
    """The held-out and training indices (sorted), fixed by `seed`."""
    if not 0 <= val_size < n:
        raise InvalidValueError(f"val_size={val_size}; expected 0 <= val_size < {n} (training images)")
    if train_subset is not None and not 0 < train_subset <= n - val_size:
        raise InvalidValueError(f"train_subset={train_subset}; expected 0 < train_subset <= "
                                f"{n - val_size} (training images after the validation split)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:val_size].sort().values, order[val_size:][:train_subset].sort().values


def _should_stream(name: str, root: Path) -> bool:
    """The automatic choice: ImageNet streams; an image folder streams when a sample of its images has more
    than one size, or when its training images would take over `MEMORY_BYTES` as uint8."""
    if name in STREAMED:
        return True
    if name != "imagefolder" or not is_image_folder(root):
        return False
    from PIL import Image

    from .folders import LISTINGS

    try:
        train = LISTINGS.get(name)(root)[0]
        sizes = set()
        for path, _ in train[:: max(1, len(train) // 64)]:
            with Image.open(path) as f:
                sizes.add(f.size)
    except (OSError, DatasetNotFoundError, InvalidValueError):
        return False  # a broken tree: the in-memory reader names the file
    if not sizes:
        return False
    w, h = max(sizes)
    return len(sizes) > 1 or len(train) * 3 * w * h > MEMORY_BYTES


def _load_stream(name: str, root: Path, stream: Stream, val_size: int, seed: int,
                 train_subset: int | None) -> StreamData:
    from .folders import LISTINGS

    train, test, classes, missing = LISTINGS.get(name)(root)
    if not train:
        raise DatasetNotFoundError(f"{name} in {root}: no training images found")
    val_idx, train_idx = _split(len(train), val_size, seed, train_subset)
    train_files: list[Sample] = [train[i] for i in train_idx.tolist()]
    if name == "imagenet":
        mean, std = _IMAGENET_STATS
    else:
        mean, std = _STATS.get(name) or channel_stats(train_files, stream)
    return StreamData(name, train_files, [train[i] for i in val_idx.tolist()], test, classes, tuple(mean),
                      tuple(std), stream, test_missing=missing)


def _channel_stats(x: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training images, 4,096 at a time (not a float64 copy of them all)."""
    return running_stats(x[i:i + 4096] for i in range(0, len(x), 4096))


def _missing(what: str, root: Path, expected: str, url: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{what} not found in {root}: put {expected} there (from {url}), "
                                f"pass --data-dir, or --download where the machine has internet")


def _torchvision(cls_name: str, root: Path, download: bool, **kwargs):
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    try:
        return cls(str(root), download=False, **kwargs)
    except RuntimeError:
        if not download:
            raise
        return cls(str(root), download=True, **kwargs)


def _cifar(cls_name: str, what: str, folder: str, root: Path, download: bool) -> RawData:
    if is_image_folder(root):  # e.g. the JPEG tree of train/<class>/*.jpg, test/<class>/*.jpg
        expected = 10 if cls_name == "CIFAR10" else 100
        classes = [p for p in (root / "train").iterdir() if p.is_dir()]
        if len(classes) != expected:
            raise InvalidValueError(f"{root / 'train'} has {len(classes)} class folders; {what} has {expected} "
                                    f"(use the dataset 'imagefolder' for other trees)")
        return load_image_folder(root)
    try:
        splits = [_torchvision(cls_name, root, download, train=t) for t in (True, False)]
    except Exception as e:
        raise _missing(what, root, f"{folder} (or an image-folder tree train/<class>/*, test/<class>/*)",
                       "https://www.cs.toronto.edu/~kriz/cifar.html") from e
    train, test = (Split(torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(),
                         torch.tensor(d.targets, dtype=torch.long)) for d in splits)
    return train, test, list(splits[0].classes)


@DATASETS.register("cifar10")
def cifar10(root: Path, download: bool = False) -> RawData:
    """CIFAR-10 in torchvision's format (`cifar-10-batches-py/`)."""
    return _cifar("CIFAR10", "CIFAR-10", "cifar-10-batches-py/", root, download)


@DATASETS.register("cifar100")
def cifar100(root: Path, download: bool = False) -> RawData:
    """CIFAR-100 in torchvision's format (`cifar-100-python/`)."""
    return _cifar("CIFAR100", "CIFAR-100", "cifar-100-python/", root, download)


@DATASETS.register("imagefolder")
def imagefolder(root: Path, download: bool = False) -> RawData:
    """Any image-folder tree `train/<class>/*`, `test/<class>/*` (classes: sorted folder names)."""
    return load_image_folder(root)


@DATASETS.register("svhn")
def svhn(root: Path, download: bool = False) -> RawData:
    """SVHN's cropped digits (`train_32x32.mat`, `test_32x32.mat`); labels 0-9."""
    try:
        splits = [_torchvision("SVHN", root, download, split=s) for s in ("train", "test")]
    except Exception as e:
        raise _missing("SVHN", root, "train_32x32.mat and test_32x32.mat",
                       "http://ufldl.stanford.edu/housenumbers/") from e
    train, test = (Split(torch.from_numpy(d.data).contiguous(), torch.from_numpy(d.labels).long())
                   for d in splits)
    return train, test, [str(i) for i in range(10)]


@DATASETS.register("tiny_imagenet")
def tiny_imagenet(root: Path, download: bool = False) -> RawData:
    """Tiny-ImageNet-200 in its standard layout; its labelled `val/` split serves as the test set."""
    base = root / "tiny-imagenet-200" if (root / "tiny-imagenet-200").is_dir() else root
    wnids_file = base / "wnids.txt"
    if not wnids_file.is_file():
        raise _missing("Tiny-ImageNet", root, "tiny-imagenet-200/ (wnids.txt, train/, val/)",
                       "http://cs231n.stanford.edu/tiny-imagenet-200.zip")
    wnids = wnids_file.read_text().split()
    label = {w: i for i, w in enumerate(wnids)}
    train_files = [(p, label[w]) for w in wnids for p in sorted((base / "train" / w / "images").glob("*.JPEG"))]
    annotations = (base / "val" / "val_annotations.txt").read_text().splitlines()
    test_files = [(base / "val" / "images" / a.split("\t")[0], label[a.split("\t")[1]]) for a in annotations if a]
    return _decode(train_files), _decode(test_files), wnids


def _decode(files: list[tuple[Path, int]]) -> Split:
    from torchvision.io import ImageReadMode, decode_image, read_file

    if not files:
        raise DatasetNotFoundError("no image files found where the dataset layout expects them")
    images = []
    for path, _ in files:
        try:
            images.append(decode_image(read_file(str(path)), mode=ImageReadMode.RGB))
        except RuntimeError as e:
            raise InvalidValueError(f"{path}: not a readable image ({e})") from None
    return Split(torch.stack(images), torch.tensor([y for _, y in files], dtype=torch.long))


@DATASETS.register("digits")
def digits(root: Path | None = None, download: bool = False) -> RawData:
    """scikit-learn's 1,797 handwritten digits (8×8, grey), shipped with the package: no download.

    A fixed split: 1,397 training and 400 test images.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(np.round(bunch.images * (255 / 16)).astype(np.uint8))[:, None]
    y = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1797))
    test, train = order[:400].sort().values, order[400:].sort().values
    return Split(x[train], y[train]), Split(x[test], y[test]), [str(i) for i in range(10)]
