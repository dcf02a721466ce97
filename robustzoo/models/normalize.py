"""`Normalize`: puts the dataset's mean/std inside the model, so attacks work in [0,1] pixel space."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError


class Normalize(nn.Module):
    """`model((x - mean) / std)`: the wrapped model takes images in [0,1]."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise InvalidValueError(f"mean={tuple(mean)} / std={tuple(std)}: expected equal lengths and std > 0")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))
