"""Wide ResNets (Zagoruyko & Komodakis 2016) as used by TRADES, AWP, LAS-AT and ECAS."""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn

from ..errors import InvalidValueError
from ._cfg import cifar_cfg


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, drop_rate: float, act: Any = F.relu):
        super().__init__()
        self.act = act
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.drop_rate = drop_rate
        self.shortcut = None
        if in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.act(self.bn2(self.conv1(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + shortcut


class WideResNet(nn.Module):
    def __init__(self, depth: int = 34, widen_factor: int = 10, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0, act_layer: str = "relu"):
        """`act_layer`: a timm activation name; "silu" (Swish) is DeepMind's WRN (DM-Improves-AT, Gowal et al.)."""
        super().__init__()
        from timm.layers import get_act_fn

        self.act = get_act_fn(act_layer)
        if self.act is None:
            raise InvalidValueError(f"act_layer={act_layer!r}; expected a timm activation name (relu, silu, ...)")
        if (depth - 4) % 6:
            raise InvalidValueError(f"WideResNet depth={depth}; expected 6n+4 (e.g. 28, 34, 70)")
        n = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        blocks, in_planes = [], widths[0]
        for i, planes in enumerate(widths[1:]):
            for j in range(n):
                blocks.append(WideBlock(in_planes, planes, 2 if (i > 0 and j == 0) else 1, drop_rate, self.act))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)
        self.num_features, self.in_chans = in_planes, in_chans  # timm's attributes (export, data config)
        self.fc = nn.Linear(in_planes, num_classes) if num_classes else nn.Identity()  # 0: pooled features (timm)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn(self.blocks(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


_VARIANTS = {"cifar_wrn_28_10": (28, 10), "cifar_wrn_34_10": (34, 10), "cifar_wrn_34_20": (34, 20),
             "cifar_wrn_70_16": (70, 16)}
default_cfgs = generate_default_cfgs({name: cifar_cfg() for name in _VARIANTS})


def _create(variant: str, pretrained: bool, **kwargs: Any) -> WideResNet:
    depth, widen = _VARIANTS[variant]
    return build_model_with_cfg(WideResNet, variant, pretrained, depth=depth, widen_factor=widen, **kwargs)


@register_model
def cifar_wrn_28_10(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-28-10."""
    return _create("cifar_wrn_28_10", pretrained, **kwargs)


@register_model
def cifar_wrn_34_10(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-34-10, the main architecture of TRADES, AWP, LAS-AT and ECAS."""
    return _create("cifar_wrn_34_10", pretrained, **kwargs)


@register_model
def cifar_wrn_34_20(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-34-20."""
    return _create("cifar_wrn_34_20", pretrained, **kwargs)


@register_model
def cifar_wrn_70_16(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-70-16 (LAS-AT Table 5)."""
    return _create("cifar_wrn_70_16", pretrained, **kwargs)
