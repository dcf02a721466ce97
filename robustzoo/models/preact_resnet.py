"""PreActResNet-18 for 32×32 inputs (He et al. 2016), as in Rice et al. and the SAAT/LAS-AT code."""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor, nn

from ._cfg import cifar_cfg


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 10, in_chans: int = 3,
                 **kwargs: Any):
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        stages, in_planes = [], 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            for j in range(blocks):
                stages.append(PreActBlock(in_planes, planes, 2 if (i > 0 and j == 0) else 1))
                in_planes = planes
        self.layers = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(512)
        self.num_features, self.in_chans = 512, in_chans  # timm's attributes (export, data config)
        self.fc = nn.Linear(512, num_classes) if num_classes else nn.Identity()  # 0: pooled features (timm)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


default_cfgs = generate_default_cfgs({"cifar_preact_resnet18": cifar_cfg()})


@register_model
def cifar_preact_resnet18(pretrained: bool = False, **kwargs: Any) -> PreActResNet:
    """PreActResNet-18, CIFAR stem (3×3 conv, no max-pool)."""
    return build_model_with_cfg(PreActResNet, "cifar_preact_resnet18", pretrained, layers=(2, 2, 2, 2),
                                **kwargs)
