"""`create_model`: any timm model name, wrapped so that it takes [0,1] images (normalization inside)."""
from __future__ import annotations

from typing import Any, Sequence

import timm
from torch import nn

from ..errors import InvalidValueError, UnknownNameError
from . import robustbench
from .normalize import Normalize

CIFAR_ARCHS = ("cifar_preact_resnet18", "cifar_resnet18", "cifar_small_cnn", "cifar_wrn_28_10",
               "cifar_wrn_34_10", "cifar_wrn_34_20", "cifar_wrn_70_16")


def list_models(pattern: str = "") -> list[str]:
    """robustzoo's CIFAR architectures, or timm's models matching a pattern such as `'resnet*'`."""
    return list(CIFAR_ARCHS) if not pattern else timm.list_models(pattern)


def model_config(name: str, num_classes: int, mean: Sequence[float], std: Sequence[float],
                 in_chans: int = 3, img_size: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """The JSON record `build_model` rebuilds a model from (stored with every checkpoint)."""
    return {"architecture": name, "num_classes": int(num_classes), "in_chans": int(in_chans),
            "img_size": img_size, "mean": [float(m) for m in mean], "std": [float(s) for s in std],
            "model_kwargs": dict(kwargs)}


def create_model(name: str, *, num_classes: int, mean: Sequence[float], std: Sequence[float],
                 in_chans: int = 3, img_size: int | None = None, **kwargs: Any) -> Normalize:
    """Build `timm.create_model(name, ...)` wrapped in `Normalize(mean, std)`; `.config` rebuilds it.

    `robustbench:DATASET/THREAT/ENTRY` builds that RobustBench entry's own architecture instead (the
    `robustbench` extra; `robustzoo import` writes such configs for entries that are not ours)."""
    if name.startswith(robustbench.PREFIX):
        if kwargs or img_size or in_chans != 3:
            raise InvalidValueError(f"model {name!r} is built as RobustBench defines it; expected no model options, "
                                    f"img_size or in_chans (got {sorted(kwargs)}, {img_size}, {in_chans})")
        model = Normalize(robustbench.create_robustbench_model(name, num_classes), mean, std)
        model.config = model_config(name, num_classes, mean, std)
        return model
    if not timm.is_model(name):
        raise UnknownNameError("model", name, CIFAR_ARCHS + tuple(timm.list_models()))
    extra = {"img_size": img_size} if img_size else {}
    try:
        net = timm.create_model(name, num_classes=num_classes, in_chans=in_chans, **extra, **kwargs)
    except TypeError as e:
        raise InvalidValueError(f"model {name!r} does not take {sorted({**extra, **kwargs})}: "
                                f"{str(e).splitlines()[0]}") from None
    model = Normalize(net, mean, std)
    model.config = model_config(name, num_classes, mean, std, in_chans, img_size, **kwargs)
    return model


def build_model(config: dict[str, Any]) -> Normalize:
    """Rebuild a model from the record `model_config` made."""
    return create_model(config["architecture"], num_classes=config["num_classes"], mean=config["mean"],
                        std=config["std"], in_chans=config.get("in_chans", 3), img_size=config.get("img_size"),
                        **config.get("model_kwargs", {}))
