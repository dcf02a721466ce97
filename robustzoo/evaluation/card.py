"""Filling a robustness card from an evaluation: the numbers, the protocol, and the weights they belong to."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from ..checkpoint import sha256_file
from ..errors import InvalidValueError
from ..trainer import resolve_checkpoint
from ..zoo.card import RobustnessCard, eps_str
from ..zoo.catalog import card_from_run


def software_versions() -> dict[str, str]:
    """Versions of what an evaluation's numbers depend on."""
    found = {}
    for package in ("robustzoo", "torch", "timm", "pyautoattack"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def fill_card(model: nn.Module, source: str, card_path: str | Path, results: Sequence[Any], *, eps: float, n: int,
              batch_size: int, seed: int, norm: str = "Linf", order: str = "balanced") -> Path:
    """Write `results` (from `run_attacks`) into the card at `card_path`, creating it from the run if needed."""
    card_path = Path(card_path)
    src, path = model.run_info.get("source"), Path(source).expanduser()  # `source`: set by `load` for Hub models
    if card_path.is_file():
        card = RobustnessCard.load(card_path)
    elif getattr(model, "card", None) is not None:
        card = model.card
    else:
        card = card_from_run(path if path.is_dir() else path.parent, model.run_info)
    card_eps, card_norm = card.threat_model.get("eps"), card.threat_model.get("norm", "Linf")
    if card_norm != norm:
        raise InvalidValueError(f"--card: evaluated in {norm} but the card's threat model is {card_norm}; evaluate "
                                f"in the card's norm (omit --norm)")
    if card_eps is None or abs(card_eps - eps) > 1e-9:
        raise InvalidValueError(f"--card: evaluated at eps {eps_str(eps)} but the card's threat model is eps "
                                f"{eps_str(card_eps)}; evaluate at the card's eps (omit --eps)")
    if src is None:
        checkpoint = resolve_checkpoint(path)
        checkpoint_id, checkpoint_sha = checkpoint.name, sha256_file(checkpoint)
    else:  # the weights just loaded and verified, whatever an older card file says
        loaded = model.card
        card = card.replace(repo_id=src["repo_id"], revision=src["revision"], weights_sha256=loaded.weights_sha256,
                            config_sha256=loaded.config_sha256)
        checkpoint_id, checkpoint_sha = f"{src['repo_id']}@{src['revision']}", loaded.weights_sha256
    evaluation = {"split": "test", "n": n, "eps": eps, **({"norm": norm} if norm != "Linf" else {}),
                  **({"order": order} if order != "balanced" else {}),
                  "batch_size": batch_size, "seed": seed,
                  "checkpoint": checkpoint_id, "checkpoint_sha256": checkpoint_sha, "versions": software_versions()}
    return card.with_results(list(results), evaluation).save(card_path)
