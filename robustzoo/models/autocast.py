"""`Autocast`: a model whose forward runs under `torch.autocast`, returning fp32 logits (fast evaluation)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp: str | None) -> torch.dtype | None:
    """`bf16` / `fp16` → the autocast dtype; None or `none` → None (fp32)."""
    if amp in (None, "none"):
        return None
    if amp not in AMP_DTYPES:
        raise InvalidValueError(f"amp={amp!r}; expected none, bf16 or fp16")
    return AMP_DTYPES[amp]


class Autocast(nn.Module):
    """`model(x)` under `torch.autocast(device, dtype)`, logits cast back to fp32.

    Attacks that take input gradients through it (PGD, AutoAttack) then run their model passes in bf16/fp16
    while their own arithmetic (steps, projections, losses on the returned logits) stays in fp32.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype = model, dtype
        self.train(model.training)

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.model(x).float()
