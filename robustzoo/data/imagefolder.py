"""Image-folder trees (`train/<class>/*`, `test/<class>/*`), decoded once into uint8 tensors."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DatasetNotFoundError, InvalidValueError
from .loader import Split

SPLITS = ("train", "test")


def is_image_folder(root: Path) -> bool:
    """True when `root` holds the `train/` and `test/` folders of an image-folder tree."""
    return all((root / s).is_dir() for s in SPLITS)


def load_image_folder(root: Path) -> tuple[Split, Split, list[str]]:
    """Both splits of an image-folder tree; class names are the sorted folder names of `train/`."""
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DatasetNotFoundError(f"image folder {root}: missing split folder {root / split}; expected "
                                       f"{root}/train/<class>/* and {root}/test/<class>/*")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise DatasetNotFoundError(f"image folder {root / 'train'} has no class folders")
    test_classes = sorted(p.name for p in (root / "test").iterdir() if p.is_dir())
    if test_classes != classes:
        raise InvalidValueError(f"image folder {root}: test classes {test_classes} differ from train classes "
                                f"{classes}")
    return _read_split(root / "train", classes), _read_split(root / "test", classes), classes


def _read_split(folder: Path, classes: list[str]) -> Split:
    from torchvision.io import ImageReadMode, decode_image, read_file

    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DatasetNotFoundError(f"class folder {folder / name} is empty; expected image files")
        for path in files:
            try:
                image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
            except RuntimeError:
                raise InvalidValueError(f"{path} is not an image robustzoo can read (JPEG, PNG, GIF, WebP)") from None
            if images and image.shape != images[0].shape:
                raise InvalidValueError(f"{path} is {tuple(image.shape[1:])} pixels; the images before it are "
                                        f"{tuple(images[0].shape[1:])}: all images must have one size")
            images.append(image)
            labels.append(label)
    return Split(torch.stack(images), torch.tensor(labels, dtype=torch.long))
