"""Run by tests/test_distributed.py (under torchrun, or alone for the 1-process reference).

Trains a tiny recipe on 256 digits images and writes, per rank, `rank{R}.safetensors` (the model and,
for LAS, the strategy network) and `writes.rank{R}` (every file the trainer wrote from that rank).
Usage: dist_worker.py OUT_DIR DEFENSE [AMP] [CHANNELS_LAST]
"""
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from timm.models import register_model
from torch import nn

from robustzoo import AWP, EMA, PGDAT, TRADES, Fixed, Piecewise, Recipe, Trainer, checkpoint, pgd
from robustzoo import trainer as trainer_module
from robustzoo.data import Augment, Split, load_data
from robustzoo.policies.las import LearnedLAS


class NoBatchNormNet(nn.Module):
    """float64, no BatchNorm: a sample's outputs do not depend on the rest of its batch, so rank shards
    of a global batch give that batch's gradient up to rounding."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, num_classes)
        self.double()

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x.double())).flatten(1))


class DeterministicStartTRADES(TRADES):
    """TRADES whose attack starts at a fixed per-pixel offset instead of x + 0.001·N(0, 1): at x itself the
    KL's gradient is zero and its sign pure rounding, and random starts differ between world sizes."""

    def attack(self, model, x, y, strategy):
        target = self.attack_target(model, x, y)
        offset = 0.001 * torch.cos(torch.arange(x[0].numel(), device=x.device).view_as(x[0]) + 50 * x)
        return pgd(model, (x + offset).clamp(0, 1), target, strategy, loss=self.attack_loss, random_start=False)


@register_model
def test_no_bn_net(pretrained=False, num_classes=10, in_chans=1, **kwargs):
    return NoBatchNormNet(num_classes, in_chans)


def main(out: Path, defense: str, amp: str = "none", channels_last: bool = False) -> None:
    rank = int(os.environ.get("RANK", "0"))
    written = out / f"writes.rank{rank}"
    original = checkpoint.atomic_write

    def spy(path, write):  # every trainer write goes through atomic_write
        with open(written, "a") as f:
            f.write(f"{Path(path).name}\n")
        return original(path, write)

    checkpoint.atomic_write = trainer_module.atomic_write = spy

    data = load_data("digits", val_size=64)
    data.train = Split(data.train.x[:256], data.train.y[:256])
    data.augment = Augment(crop_pad=1, flip=True)  # drawn for the global batch: same rows on any world size
    attack = Fixed(eps=32 / 255, step_size=8 / 255, steps=3)
    policy, model_defense = attack, {
        "pgdat": lambda: PGDAT(random_start=False),  # deterministic attacks: ranks and 1 process agree
        "awp": lambda: AWP(PGDAT(random_start=False), gamma=0.02),
        "trades": DeterministicStartTRADES,
        "las": lambda: PGDAT(),
        "ema": lambda: PGDAT(random_start=False),  # a BatchNorm net with a weight average
    }[defense]()
    if defense == "las":
        policy = LearnedLAS([16 / 255, 32 / 255], [8 / 255], [1, 3], backbone="cifar_small_cnn",
                            backbone_kwargs={"width": 4}, hidden=8, lr=0.05, update_every=1, eval_steps=2)
    model, ema = ("cifar_small_cnn", EMA(decay=0.5)) if defense == "ema" else ("test_no_bn_net", None)
    recipe = Recipe(name="dist", model=model, model_kwargs={"width": 4} if ema else {}, dataset="digits",
                    policy=policy, defense=model_defense, eps=32 / 255, epochs=2, batch_size=64, lr=0.05,
                    schedule=Piecewise((0.5,)), val_steps=2, ema=ema)
    trainer = Trainer(recipe, out / "run", data=data, device="cpu", amp=amp, channels_last=channels_last,
                      progress=False)
    tensors = {f"init.{k}": v.clone() for k, v in trainer.model.state_dict().items()}
    if defense == "las":
        tensors.update({f"init_net.{k}": v.clone() for k, v in policy.net.state_dict().items()})
    trainer.fit()
    tensors.update({f"model.{k}": v for k, v in trainer.model.state_dict().items()})
    if defense == "las":
        tensors.update({f"net.{k}": v for k, v in policy.net.state_dict().items()})
    if ema:
        tensors.update({f"ema.{k}": v for k, v in trainer.ema.module.state_dict().items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / f"rank{rank}.safetensors"))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0]), args[1], *(args[2:3]), *([args[3] == "1"] if len(args) > 3 else []))
