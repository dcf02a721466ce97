"""File listings for the streaming path: any image-folder tree, and ImageNet with RobustBench's test subset."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import DatasetNotFoundError, InvalidValueError
from ..registry import Registry
from .stream import Sample, find_classes, list_folder

# name -> root -> (train files, test files or None, class names, why the test files are missing)
Listing = tuple[list[Sample], list[Sample] | None, list[str], str]
LISTINGS: Registry = Registry("streamed dataset")
IMAGENET_IDS = "imagenet_test_image_ids.txt"  # RobustBench's 5,000 ImageNet test images (helper_files)


@LISTINGS.register("imagefolder")
def imagefolder(root: Path) -> Listing:
    """`train/<class>/*`, `test/<class>/*` (images of any size); classes: the sorted folder names of train/."""
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DatasetNotFoundError(f"image folder {root}: missing split folder {root / split}; expected "
                                       f"{root}/train/<class>/* and {root}/test/<class>/*")
    classes = find_classes(root / "train")
    if find_classes(root / "test") != classes:
        raise InvalidValueError(f"image folder {root}: test classes {find_classes(root / 'test')} differ from train "
                                f"classes {classes}")
    index = {c: i for i, c in enumerate(classes)}
    return list_folder(root / "train", index), list_folder(root / "test", index), classes, ""


for _name in ("cifar10", "cifar100"):  # their JPEG trees, streamed when a recipe asks for it
    LISTINGS.register(_name)(imagefolder)


@LISTINGS.register("imagenet")
def imagenet(root: Path) -> Listing:
    """ILSVRC-2012 as `train/<wnid>/*.JPEG` and `val/<wnid>/*.JPEG` (the usual valprep layout); labels: the
    sorted wnids (the standard 0..999). The test split is RobustBench's 5,000-image subset of val/, in its
    file's order (`robustbench/data.py` `load_imagenet`), read from `<root>/imagenet_test_image_ids.txt` or
    the installed robustbench package."""
    base = root / "imagenet" if (root / "imagenet" / "train").is_dir() else root
    if not (base / "train").is_dir():
        raise DatasetNotFoundError(f"ImageNet not found in {root}: put train/<wnid>/*.JPEG and val/<wnid>/*.JPEG "
                                   f"there (ILSVRC-2012 from https://image-net.org, val/ sorted into class "
                                   f"folders), or pass --data-dir")
    classes = find_classes(base / "train")
    index = {c: i for i, c in enumerate(classes)}
    train = list_folder(base / "train", index)
    ids_file = imagenet_ids_file(base)
    if ids_file is None:
        return train, None, classes, (f"ImageNet's test split is RobustBench's 5,000-image subset; its id list was "
                                      f"not found: put {IMAGENET_IDS} in {base} or install the robustbench extra "
                                      f"(pip install \"robustzoo[robustbench]\")")
    test = []
    for line in ids_file.read_text().split():
        wnid = line.split("/")[0]
        if wnid not in index:
            raise InvalidValueError(f"{ids_file}: class {wnid!r} of {line} is not among the {len(classes)} train "
                                    f"classes in {base / 'train'}")
        test.append((str(base / "val" / line), index[wnid]))
    missing = [p for p, _ in test if not Path(p).is_file()]
    if missing:
        raise DatasetNotFoundError(f"{len(missing)} of RobustBench's {len(test)} ImageNet test images are missing, "
                                   f"e.g. {missing[0]}; expected val/<wnid>/ILSVRC2012_val_*.JPEG")
    return train, test, classes, ""


def imagenet_ids_file(base: Path) -> Path | None:
    """RobustBench's id list: beside the data, else in the robustbench package (found without importing it)."""
    if (base / IMAGENET_IDS).is_file():
        return base / IMAGENET_IDS
    spec = importlib.util.find_spec("robustbench")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "helper_files" / IMAGENET_IDS
        if path.is_file():
            return path
    return None
