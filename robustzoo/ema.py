"""Weight averaging: an exponential moving average of the weights, kept by timm's `ModelEmaV3`.

The strongest RobustBench entries average weights (e.g. FastAT_Benchmark's PGD-AT ResNet-18: AutoAttack
44.33% → 50.49% at τ = 0.9995). The trainer updates the average after every optimizer step, validates and
picks `best.safetensors` on it, and writes it as the run's weights; the raw weights stay in the training
state (`last.safetensors`) with the average beside them, so a resumed run continues both exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from .errors import InvalidValueError


@dataclass(frozen=True)
class EMA:
    """`ModelEmaV3(decay, use_warmup=warmup, warmup_power, warmup_gamma, update_after_step, exclude_buffers)`.

    timm's decay at step t (1-based): 0 at the first update (the average starts as the weights), then
    `decay`, or with `warmup` min(decay, 1 − (1 + t/warmup_gamma)^−warmup_power). BatchNorm statistics are
    averaged like the weights, as timm does (`exclude_buffers=True`: copied from the model instead).
    """

    decay: float = 0.999
    warmup: bool = False
    warmup_power: float = 2 / 3
    warmup_gamma: float = 1.0
    update_after_step: int = 0
    exclude_buffers: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.decay < 1.0:
            raise InvalidValueError(f"ema decay={self.decay!r}; expected 0 < decay < 1 (e.g. 0.999)")
        if self.warmup_power <= 0 or self.warmup_gamma <= 0 or self.update_after_step < 0:
            raise InvalidValueError(f"ema warmup_power={self.warmup_power!r}, warmup_gamma={self.warmup_gamma!r}, "
                                    f"update_after_step={self.update_after_step!r}; expected > 0, > 0 and >= 0")

    def build(self, model: nn.Module) -> nn.Module:
        """timm's `ModelEmaV3` of `model` (a copy of it, in eval mode, on its device)."""
        from timm.utils import ModelEmaV3

        return ModelEmaV3(model, decay=self.decay, use_warmup=self.warmup, warmup_power=self.warmup_power,
                          warmup_gamma=self.warmup_gamma, update_after_step=self.update_after_step,
                          exclude_buffers=self.exclude_buffers)

    def config(self) -> dict[str, Any]:
        return asdict(self)


def as_ema(value: EMA | float | None) -> EMA | None:
    """A recipe's `ema` field: an `EMA`, a decay (`ema=0.999`), or None (no averaging)."""
    if value is None or isinstance(value, EMA):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValueError(f"ema={value!r}; expected a decay such as 0.999, an EMA(...), or None")
    return EMA(decay=float(value))
