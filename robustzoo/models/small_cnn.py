"""A small CNN (3 conv layers, ~0.1M parameters at width 32) for CPU runs: quickstart and tests."""
from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn

from ._cfg import cifar_cfg


def _conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(*_conv(in_chans, width, 1), *_conv(width, 2 * width, 2),
                                      *_conv(2 * width, 4 * width, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features, self.in_chans = 4 * width, in_chans  # timm's attributes (export, data config)
        self.fc = nn.Linear(4 * width, num_classes) if num_classes else nn.Identity()  # 0: pooled features (timm)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


default_cfgs = generate_default_cfgs({"cifar_small_cnn": cifar_cfg(first_conv="features.0")})


@register_model
def cifar_small_cnn(pretrained: bool = False, **kwargs: Any) -> SmallCNN:
    """Small 3-layer CNN; `width` scales the channels."""
    return build_model_with_cfg(SmallCNN, "cifar_small_cnn", pretrained, **kwargs)
