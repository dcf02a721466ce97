"""timm pretrained-cfg defaults shared by the CIFAR architectures."""
from __future__ import annotations

from typing import Any

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


def cifar_cfg(**kwargs: Any) -> dict[str, Any]:
    """A timm pretrained cfg for a 32×32 CIFAR-10 model (no weights hosted: the zoo holds those)."""
    return {"url": "", "num_classes": 10, "input_size": (3, 32, 32), "pool_size": None,
            "crop_pct": 1.0, "interpolation": "bilinear", "mean": CIFAR10_MEAN, "std": CIFAR10_STD,
            "first_conv": "conv1", "classifier": "fc", **kwargs}
