"""Guards of an evaluation: what must hold before a model is attacked (input range, determinism)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError


def check_input_range(x: Tensor) -> None:
    """Refuse inputs outside [0, 1]: eps is a budget in pixel scale, so normalization belongs inside the model."""
    if x.numel() == 0:
        return
    low, high = x.min().item(), x.max().item()
    if low < 0 or high > 1:
        raise InvalidValueError(
            f"inputs span [{low:.3g}, {high:.3g}]; expected images in [0, 1]: normalization belongs inside the "
            f"model, so that eps is measured in pixels — wrap it, robustzoo.Normalize(model, mean, std), and "
            f"pass unnormalized images")


def is_randomized(model: nn.Module, x: Tensor, logits: Tensor | None = None, rtol: float = 1e-4) -> bool:
    """True when the same batch gives different logits twice (a randomized model; in eval mode). `logits`:
    the first pass's, when the caller already has them."""
    with torch.no_grad():
        a = (model(x) if logits is None else logits).float()
        b = model(x).float()
    return bool((a - b).abs().max() > rtol * a.abs().max().clamp(min=1.0))
