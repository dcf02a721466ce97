"""`CyclicEntropyECAS`: ECAS (Entropy-Guided Cyclical Adversarial Strategy, Zhang et al.).

The batch eps cycles over an eps space once per epoch (Eq. 2); per sample, the entropy of the clean softmax
overrides it (Algorithm 1): uncertain samples get the smallest eps, confident ones a big one.

Read against `huizhg/ECAS` at 5b30080 (P10 = `PGD-AT/train_pgd_cifar10_entropy.py`, T10 = `TRADES/
train_trades_cifar10_entropy.py`, A10 = `AWP/train_awp_cifar10_entropy.py`); defaults are the code's:

| | paper | code | here |
|---|---|---|---|
| entropy forward | — | train mode, no grad (BN statistics move; P10:307-310, T10:299-302) | `entropy_mode="train"`, or `"eval"` |
| big eps | random among the three largest | one `random.choice` per batch (P10:186-191): {10,11,12} PGD-AT, {8,9} TRADES (T10:183), {13,14,15} AWP (A10:360) | `big_eps="batch"` or `"sample"`; `big_options` (None: the three largest) |
| step | — | 2·(cyclic eps)/iters for the whole batch (P10:195) | `step_size=None` |
| spaces | Eq. 2 | 3..12 (P10:38), 5..9 (T10:42), 6..15 (A10:285); h 2.274 / 1.3 (P10:42-43) | recipes |
| final δ | — | AWP clips to 8/255 (A10:562) | `Recipe.final_clip` |
| TRADES attack | KL | CE-PGD from a uniform start on CIFAR-10 (T10:146-164) | `TRADES(inner="ce")` |
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from .. import distributed
from ..errors import InvalidValueError
from ..strategy import Strategy, check_eps
from .base import AttackPolicy, register_policy

SCHEDULERS = ("cyclic", "linear", "fixed", "cyclic-batch")
PGD_AT_SPACE = tuple(i / 255 for i in range(3, 13))  # ECAS-PGD-AT; TRADES 5–9, AWP 6–15 (/255)


def softmax_entropy(logits: Tensor) -> Tensor:
    """Per-sample entropy (nats) of softmax(logits), Eq. 3."""
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1)


@torch.no_grad()
def mean_entropy(model: nn.Module, data: Tensor | Iterable[Any], batch_size: int = 256) -> float:
    """Mean softmax entropy over `data` (a tensor of images, or batches `x` / `(x, y)`), in eval mode.

    Calibration as in the paper: `h_high = mean_entropy(untrained_model, train_x)`,
    `h_low = mean_entropy(well_trained_model, train_x)` (natural log; at most log(num_classes)).
    """
    device = next(model.parameters()).device
    batches = data.split(batch_size) if isinstance(data, Tensor) else data
    was, total, n = model.training, torch.zeros((), device=device, dtype=torch.float64), 0
    model.eval()
    try:
        for batch in batches:
            x = (batch[0] if isinstance(batch, (tuple, list)) else batch).to(device)
            total += softmax_entropy(model(x)).double().sum()
            n += len(x)
    finally:
        model.train(was)
    return float(total) / max(n, 1)


@register_policy
class CyclicEntropyECAS(AttackPolicy):
    """ECAS: scheduled batch eps (Eq. 2 by default) with per-sample entropy routing (Algorithm 1).

    `h_high`/`h_low` (None: 2.274 / 1.3, the authors' CIFAR-10 values; CIFAR-100: 4.582 / 3.35) are the
    mean entropies of an untrained / well-trained model (see `mean_entropy`). `step_size=None` follows the
    authors' code: `alpha = epsilon / iters * 2`, i.e. 2·(scheduled eps)/steps for every sample of the
    batch (routed samples keep the batch's step).
    `adjusted` marks samples the entropy rule routed (their eps may coincide with the scheduled one).
    The entropy forward runs in train mode as in the code (`entropy_mode="eval"`: BN running statistics
    untouched, the trainer's mode restored either way); the big eps is one draw per batch as in the code
    (`big_eps="sample"`: per sample), from `big_options` (None: the three largest of `eps_space`).
    """

    def __init__(self, eps_space: Sequence[float] = PGD_AT_SPACE, scheduler: str = "cyclic",
                 h_high: float | None = None, h_low: float | None = None, steps: int = 10,
                 step_size: float | None = None, fixed_eps: float = 8 / 255, entropy: bool = True, seed: int = 0,
                 entropy_mode: str = "train", big_eps: str = "batch", big_options: Sequence[float] | None = None):
        if len(eps_space) == 0:
            raise InvalidValueError(f"eps_space={eps_space!r} is empty; expected at least one eps in (0, 1]")
        self.eps_space = sorted(check_eps(e, f"eps_space[{i}]") for i, e in enumerate(eps_space))
        if scheduler not in SCHEDULERS:
            raise InvalidValueError(f"scheduler={scheduler!r}; expected one of {', '.join(SCHEDULERS)}")
        self.scheduler = scheduler
        self.h_high = 2.274 if h_high is None else float(h_high)
        self.h_low = 1.3 if h_low is None else float(h_low)
        if self.h_low > self.h_high:
            raise InvalidValueError(f"h_low={self.h_low!r} > h_high={self.h_high!r}; expected h_low <= h_high")
        if int(steps) != steps or steps < 1:
            raise InvalidValueError(f"steps={steps!r}; expected a positive integer")
        self.steps = int(steps)
        self.step_size = None if step_size is None else check_eps(step_size, "step_size")
        self.fixed_eps = check_eps(fixed_eps, "fixed_eps")
        self.entropy, self.seed = bool(entropy), int(seed)
        if entropy_mode not in ("train", "eval"):
            raise InvalidValueError(f"entropy_mode={entropy_mode!r}; expected train (the code) or eval")
        if big_eps not in ("batch", "sample"):
            raise InvalidValueError(f"big_eps={big_eps!r}; expected batch (the code: one draw) or sample")
        self.entropy_mode, self.big_eps = entropy_mode, big_eps
        self.big_options = None if big_options is None else \
            [check_eps(e, f"big_options[{i}]") for i, e in enumerate(big_options)]
        if self.big_options is not None and not self.big_options:
            raise InvalidValueError("big_options=[]; expected at least one eps (or None: the three largest)")
        self.batches = 0  # batches seen: the cycle index of "cyclic-batch"
        self.base_eps = self.schedule(0, 1)
        self._gen: torch.Generator | None = None
        self._gen_state: Tensor | None = None  # loaded, applied when the generator is made
        self._big: Tensor | None = None  # the three largest eps, on the device of the batches

    def schedule(self, index: int, epochs: int) -> float:
        """The scheduled eps of epoch `index` (of batch `index` for "cyclic-batch")."""
        space = self.eps_space
        if self.scheduler == "fixed":
            return self.fixed_eps
        if self.scheduler == "linear":
            return space[0] + (space[-1] - space[0]) * index / max(epochs - 1, 1)
        return space[index % len(space)]  # Eq. 2: eps_space[floor(n / alpha) mod L], alpha = 1

    def start_epoch(self, epoch: int, epochs: int) -> None:
        if self.scheduler != "cyclic-batch":
            self.base_eps = self.schedule(epoch, epochs)

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device).manual_seed(self.seed + 1_000_003 * distributed.get_rank())
            if self._gen_state is not None and self._gen_state.numel() == self._gen.get_state().numel():
                self._gen.set_state(self._gen_state)
            self._gen_state = None
            self._big = torch.tensor(self.big_options or self.eps_space[-3:], device=device)
        return self._gen

    def strategy(self, model: nn.Module, x: Tensor, y: Tensor) -> Strategy:
        if self.scheduler == "cyclic-batch":
            self.base_eps = self.schedule(self.batches, 1)
            self.batches += 1
        n, base = len(x), self.base_eps
        step = self.step_size if self.step_size is not None else 2 * base / self.steps
        eps = torch.full((n,), base, device=x.device)
        adjusted = torch.zeros(n, dtype=torch.bool, device=x.device)
        if self.entropy:
            was = model.training
            model.train(self.entropy_mode == "train")
            try:
                with torch.no_grad():
                    h = softmax_entropy(model(x))
            finally:
                model.train(was)
            high, low = h > self.h_high, h < self.h_low
            gen = self._generator(x.device)
            draws = torch.randint(len(self._big), (1 if self.big_eps == "batch" else n,), generator=gen,
                                  device=x.device)
            big = self._big[draws].expand(n)
            eps = torch.where(high, self.eps_space[0], torch.where(low, big, eps))
            adjusted = high | low
        return Strategy(eps=eps, step_size=torch.full((n,), step, device=x.device),
                        steps=torch.full((n,), self.steps, dtype=torch.long), extras={"adjusted": adjusted})

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "base_eps": self.base_eps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches, self.base_eps = int(state["batches"]), float(state["base_eps"])
        if "rng" in state:  # checkpoints written before per-rank states
            self.load_local_state_dict({"rng": state["rng"]})

    def local_state_dict(self) -> dict[str, Any]:
        """The routing generator: each data-parallel rank draws its own."""
        return {"rng": self._gen.get_state() if self._gen is not None else self._gen_state}

    def load_local_state_dict(self, state: dict[str, Any]) -> None:
        self._gen, self._gen_state = None, state.get("rng")

    def config(self) -> dict[str, Any]:
        return {"eps_space": list(self.eps_space), "scheduler": self.scheduler, "h_high": self.h_high,
                "h_low": self.h_low, "steps": self.steps, "step_size": self.step_size,
                "fixed_eps": self.fixed_eps, "entropy": self.entropy, "seed": self.seed,
                "entropy_mode": self.entropy_mode, "big_eps": self.big_eps, "big_options": self.big_options}
