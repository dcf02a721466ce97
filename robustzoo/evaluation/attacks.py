"""Evaluation attacks by name: clean, fgsm, pgdK, cw, aa (AutoAttack through `pyautoattack`)."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import EvaluationError, InvalidValueError, UnknownNameError
from ..attacks.pgd import cross_entropy, cw_margin, l2_norm, pgd
from ..strategy import Strategy, check_budget

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


def white_box(model: nn.Module, x: Tensor, y: Tensor, attack: str, eps: float,
              generator: torch.Generator | None = None, norm: str = "Linf") -> tuple[Tensor, dict]:
    """x_adv of one batch under a white-box attack (`clean` returns x), and the attack's settings.

    In L2 the same attacks take normalized-gradient steps in the L2 ball (FGSM: one step of eps, FGM)."""
    if attack == "clean":
        return x, {}
    if attack == "fgsm":
        steps, step, loss, start = 1, eps, cross_entropy, False
    elif attack == "cw":
        steps, step, loss, start = CW_STEPS, eps / 4, cw_margin, True
    else:
        steps, step, loss, start = int(attack[3:]), eps / 4, cross_entropy, True
    settings = {"steps": steps, "step_size": step, "loss": loss.__name__, "random_start": start,
                **({"norm": norm} if norm != "Linf" else {})}
    strategy = Strategy.uniform(len(x), eps, step, steps, x.device, norm=norm)
    return pgd(model, x, y, strategy, loss=loss, random_start=start, generator=generator), settings


def check_adversarial(x: Tensor, x_adv: Tensor, eps: float, attack: str, tol: float = 1e-6,
                      norm: str = "Linf") -> None:
    """Refuse adversarial images outside the eps-ball (of `norm`) around x or outside [0, 1]."""
    if x_adv.shape != x.shape:
        raise EvaluationError(f"attack {attack!r} returned images of shape {tuple(x_adv.shape)}, "
                              f"expected {tuple(x.shape)}")
    if norm == "L2":  # pyautoattack's own L2 check allows 1e-5 of rounding; so does this one
        distance, tol, what = (l2_norm(x_adv.float() - x.float()).amax().item() if len(x) else 0.0), max(tol, 1e-5), "‖x_adv - x‖₂"
    else:
        distance, what = ((x_adv - x).abs().amax().item() if len(x) else 0.0), "|x_adv - x|"
    low, high = (x_adv.amin().item(), x_adv.amax().item()) if len(x) else (0.0, 1.0)
    if distance > eps + tol or low < -tol or high > 1 + tol or x_adv.isnan().any():
        raise EvaluationError(f"attack {attack!r} returned invalid images: max {what} = {distance:.6g} "
                              f"(eps {eps:.6g}, {norm}), values in [{low:.6g}, {high:.6g}] (expected [0, 1]); "
                              f"its result is refused")


def attack_outcomes(model: nn.Module, x: Tensor, y: Tensor, attack: str, eps: float, batch_size: int,
                    generator: torch.Generator | None = None, norm: str = "Linf") -> tuple[Tensor, dict]:
    """Per-image correctness (bool, on the model's device) under a white-box attack, batch by batch."""
    device = next(model.parameters()).device
    correct, settings = [], {}
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        xb, settings = white_box(model, xb, yb, attack, eps, generator, norm)
        with torch.no_grad():
            correct.append(model(xb).argmax(1) == yb)
    return (torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool, device=device)), settings


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
               attacks: Sequence[str] | None = None, batch_size: int = 250, seed: int = 0,
               num_classes: int | None = None, norm: str = "Linf") -> Tensor:
    """Run AutoAttack (`pyautoattack`) and return x_adv; `attacks` switches to the custom version.

    With `num_classes`, the attack list is first fitted to it (`fit_autoattack`)."""
    return autoattack_run(model, x, y, eps, version=version, attacks=attacks, batch_size=batch_size, seed=seed,
                          num_classes=num_classes, norm=norm)[0]


def autoattack_run(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, version: str = "standard",
                   attacks: Sequence[str] | None = None, batch_size: int = 250, seed: int = 0,
                   num_classes: int | None = None, norm: str = "Linf") -> tuple[Tensor, Tensor, dict]:
    """AutoAttack's x_adv, the labels it predicted on them, and what ran (attacks, targets, changes)."""
    from pyautoattack import AutoAttack

    version = check_autoattack(version, attacks)
    device = next(model.parameters()).device
    adversary = AutoAttack(model, attacks=list(attacks) if attacks else None, device=device, eps=eps,
                           norm=norm, seed=seed, version=version)
    adversary.verbose = False
    changes = fit_autoattack(adversary, num_classes) if num_classes else []
    x_adv, y_adv = adversary.run_standard_evaluation(x.to(device).contiguous(), y.to(device).contiguous(),
                                                     batch_size=batch_size)
    ran = {"version": version, "attacks": list(adversary.attacks_to_run), "seed": seed, "norm": norm,
           "target_classes": {"apgd-t": adversary.apgd_targeted.n_target_classes,
                              "fab-t": adversary.fab.n_target_classes}, "changes": changes}
    return x_adv, y_adv, ran


def fit_autoattack(adversary: object, num_classes: int) -> list[str]:
    """Fit an AutoAttack's attacks to a `num_classes` task; returns what was changed, and why.

    Targeted attacks get at most C − 1 target classes. Below 4 classes APGD-T is skipped (its targeted DLR
    loss needs 4, and pyautoattack allows no other), below 3 APGD-DLR too (DLR needs 3): APGD-CE stays the
    gradient attack, FAB-T the targeted one."""
    changes, run = [], list(adversary.attacks_to_run)
    targets = max(1, min(9, num_classes - 1))
    for name, attack in (("apgd-t", adversary.apgd_targeted), ("fab-t", adversary.fab)):
        if name in run and attack.n_target_classes > targets:
            changes.append(f"{name}: {targets} target classes instead of {attack.n_target_classes} "
                           f"({num_classes} classes)")
            attack.n_target_classes = targets
    for name, needs in (("apgd-t", 4), ("apgd-dlr", 3)):
        if num_classes < needs and name in run:
            run.remove(name)
            changes.append(f"{name} skipped: its DLR loss needs at least {needs} classes ({num_classes} here)")
    if changes and not any(a in run for a in ("apgd-ce", "apgd-t", "apgd-dlr")):
        run.insert(0, "apgd-ce")
        changes.append("apgd-ce added: no gradient attack was left")
    adversary.attacks_to_run = run
    return changes


def default_eps(eps: float | None, norm: str) -> float:
    """`eps`, or 8/255 in L∞; an L2 evaluation must say its radius (8/255 is no L2 budget)."""
    if eps is not None:
        return eps
    if norm != "Linf":
        raise InvalidValueError(f"norm={norm!r} without eps; expected an {norm} radius, e.g. eps=0.5 on CIFAR-10")
    return 8 / 255


def run_attacks(model: nn.Module, x: Tensor, y: Tensor, attacks: Sequence[str], *, eps: float | None = None,
                batch_size: int = 256, seed: int = 0, aa_version: str = "standard",
                aa_attacks: Sequence[str] | None = None, norm: str = "Linf") -> list[AttackResult]:
    """Accuracy of `model` (mapping [0,1] images to logits) under each attack, in eval mode (`norm`: Linf, L2)."""
    eps = check_budget(default_eps(eps, norm), norm)
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
            generator = torch.Generator().manual_seed(seed)  # on the CPU: the same starts on any device
            if name == "aa":
                x_adv = autoattack(model, x, y, eps, version=aa_version, attacks=aa_attacks,
                                   batch_size=batch_size, seed=seed, norm=norm)
                correct = int(attack_outcomes(model, x_adv, y, "clean", eps, batch_size)[0].sum())
                settings = {"version": "custom" if aa_attacks else aa_version,
                            "attacks": list(aa_attacks) if aa_attacks else None, "seed": seed,
                            **({"norm": norm} if norm != "Linf" else {})}
            else:
                outcomes, settings = attack_outcomes(model, x, y, name, eps, batch_size, generator, norm)
                correct = int(outcomes.sum())
            results.append(AttackResult(name, correct / max(len(x), 1), len(x),
                                        time.perf_counter() - start, settings))
    finally:
        model.train(was_training)
    return results
