"""A small CNN (3 conv layers, ~0.1M parameters at width 32) for CPU runs: quickstart, tests and benchmarks."""
from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn

from ..errors import InvalidValueError
from ._cfg import cifar_cfg


def _conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Three 3×3 conv layers (stride 1, 2, 2), average-pooled to `pool`×`pool`, an optional hidden layer.

    `pool` > 1 with a `hidden` layer adds parameters at almost no compute (the robust-overfitting benchmark
    uses `pool=4, hidden=256`: 12× the parameters of the default at width 16 for +9% of its multiply-adds).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32, pool: int = 1, hidden: int = 0):
        super().__init__()
        if pool < 1 or hidden < 0:
            raise InvalidValueError(f"cifar_small_cnn: pool must be >= 1 and hidden >= 0, got pool={pool}, hidden={hidden}")
        self.num_classes = num_classes
        flat = 4 * width * pool * pool
        head = [nn.Linear(flat, hidden), nn.ReLU(inplace=True)] if hidden else []
        self.features = nn.Sequential(*_conv(in_chans, width, 1), *_conv(width, 2 * width, 2),
                                      *_conv(2 * width, 4 * width, 2), nn.AdaptiveAvgPool2d(pool), nn.Flatten(), *head)
        self.num_features, self.in_chans = hidden or flat, in_chans  # timm's attributes (export, data config)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()  # 0: features (timm)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


default_cfgs = generate_default_cfgs({"cifar_small_cnn": cifar_cfg(first_conv="features.0")})


@register_model
def cifar_small_cnn(pretrained: bool = False, **kwargs: Any) -> SmallCNN:
    """Small 3-layer CNN; `width` scales the channels, `pool` and `hidden` shape the head (see `SmallCNN`)."""
    return build_model_with_cfg(SmallCNN, "cifar_small_cnn", pretrained, **kwargs)
