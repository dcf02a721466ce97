"""Evaluation attacks by name: clean, fgsm, pgdK, cw, aa (AutoAttack through `pyautoattack`)."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError, UnknownNameError
from ..strategy import Strategy, check_eps
from .pgd import cross_entropy, cw_margin, pgd

AA_VERSIONS = ("standard", "plus", "rand", "custom")
AA_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
CW_STEPS = 30


def list_attacks() -> list[str]:
    """Names `evaluate` accepts; `pgdK` works for any K >= 1."""
    return ["clean", "fgsm", "pgd10", "pgd20", "pgd50", "cw", "aa"]


def check_attack(name: str) -> str:
    """Return `name` if it is a known evaluation attack, else raise with the known names."""
    if name in ("clean", "fgsm", "cw", "aa") or re.fullmatch(r"pgd[1-9]\d*", name):
        return name
    raise UnknownNameError("attack", name, list_attacks())


@dataclass
class AttackResult:
    """Accuracy of a model under one attack on `n` images."""

    attack: str
    accuracy: float
    n: int
    seconds: float
    settings: dict


def _batched_attack(model: nn.Module, x: Tensor, y: Tensor, attack: str, eps: float,
                    batch_size: int, generator: torch.Generator) -> tuple[int, dict]:
    """Correct predictions under a white-box attack, batch by batch, on the model's device."""
    device = next(model.parameters()).device
    correct = torch.zeros((), dtype=torch.long, device=device)
    settings: dict = {}
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        if attack != "clean":
            if attack == "fgsm":
                steps, step, loss, start = 1, eps, cross_entropy, False
            elif attack == "cw":
                steps, step, loss, start = CW_STEPS, eps / 4, cw_margin, True
            else:
                steps, step, loss, start = int(attack[3:]), eps / 4, cross_entropy, True
            settings = {"steps": steps, "step_size": step, "loss": loss.__name__, "random_start": start}
            strategy = Strategy.uniform(len(xb), eps, step, steps, device)
            xb = pgd(model, xb, yb, strategy, loss=loss, random_start=start, generator=generator)
        with torch.no_grad():
            correct += (model(xb).argmax(1) == yb).sum()
    return int(correct), settings


def check_autoattack(version: str = "standard", attacks: Sequence[str] | None = None) -> str:
    """Validate AutoAttack options before anything runs; returns the version that will run."""
    unknown = [a for a in attacks or () if a not in AA_ATTACKS]
    if unknown:
        raise UnknownNameError("AutoAttack attack", unknown[0], AA_ATTACKS)
    version = "custom" if attacks else version
    if version not in AA_VERSIONS:
        raise UnknownNameError("AutoAttack version", version, AA_VERSIONS)
    return version


def autoattack(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, version: str = "standard",
               attacks: Sequence[str] | None = None, batch_size: int = 250, seed: int = 0) -> Tensor:
    """Run AutoAttack (`pyautoattack`) and return x_adv; `attacks` switches to the custom version."""
    from pyautoattack import AutoAttack

    version = check_autoattack(version, attacks)
    device = next(model.parameters()).device
    adversary = AutoAttack(model, attacks=list(attacks) if attacks else None, device=device, eps=eps,
                           norm="Linf", seed=seed, version=version)
    adversary.verbose = False
    x_adv, _ = adversary.run_standard_evaluation(x.to(device).contiguous(), y.to(device).contiguous(),
                                                 batch_size=batch_size)
    return x_adv


def run_attacks(model: nn.Module, x: Tensor, y: Tensor, attacks: Sequence[str], *, eps: float = 8 / 255,
                batch_size: int = 256, seed: int = 0, aa_version: str = "standard",
                aa_attacks: Sequence[str] | None = None) -> list[AttackResult]:
    """Accuracy of `model` (mapping [0,1] images to logits) under each attack, in eval mode."""
    eps = check_eps(eps)
    if batch_size < 1:
        raise InvalidValueError(f"batch_size={batch_size!r}; expected a positive integer")
    attacks = [check_attack(a) for a in attacks]
    if "aa" in attacks:
        check_autoattack(aa_version, aa_attacks)
    was_training = model.training
    model.eval()
    results = []
    try:
        for name in attacks:
            start = time.perf_counter()
            generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
            if name == "aa":
                x_adv = autoattack(model, x, y, eps, version=aa_version, attacks=aa_attacks,
                                   batch_size=batch_size, seed=seed)
                correct, _ = _batched_attack(model, x_adv, y, "clean", eps, batch_size, generator)
                settings = {"version": "custom" if aa_attacks else aa_version,
                            "attacks": list(aa_attacks) if aa_attacks else None, "seed": seed}
            else:
                correct, settings = _batched_attack(model, x, y, name, eps, batch_size, generator)
            results.append(AttackResult(name, correct / max(len(x), 1), len(x),
                                        time.perf_counter() - start, settings))
    finally:
        model.train(was_training)
    return results
