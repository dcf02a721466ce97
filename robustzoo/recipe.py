"""Recipes are Python: a file with a `recipe()` function that returns a `Recipe`."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .data import Aux, Stream
from .defenses import PGDAT, Defense
from .ema import EMA, as_ema
from .errors import InvalidValueError, RecipeError
from .policies import AttackPolicy, Fixed
from .schedules import Piecewise
from .strategy import check_budget


OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class Reported:
    """Accuracies (%) a paper reports for a recipe's setting: the targets of a reproduction."""

    source: str  # paper, table and row
    clean: float | None = None
    pgd20: float | None = None
    cw: float | None = None
    aa: float | None = None
    pgd10: float | None = None  # where the paper reports PGD-10 instead of PGD-20 (LAS-AT Tables 1, 6)
    pgd50: float | None = None  # the fast-AT papers' PGD-50 (theirs with 10 restarts; `evaluate`'s pgd50 has 1)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class Recipe:
    """Everything a training run needs: model, data, policy, defense, optimizer, schedule, threat model."""

    name: str
    model: str
    dataset: str
    policy: AttackPolicy = field(default_factory=Fixed)
    defense: Defense = field(default_factory=PGDAT)
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    optimizer: str = "sgd"  # or "adamw" (with `betas`); `momentum` and `nesterov` are SGD's
    betas: tuple[float, float] = (0.9, 0.999)
    decay_norm_and_bias: bool = True  # False: no weight decay on 1-D parameters (norms, biases)
    schedule: Callable[[float], float] = field(default_factory=Piecewise)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    download: bool = False
    val_size: int = 1000
    train_subset: int | None = None
    eps: float = 8 / 255
    val_steps: int = 10
    attack_train_mode: bool = False
    final_clip: bool = False  # project x_adv onto the `eps` ball before the loss (LAS-AWP, ECAS-AWP code)
    augment: bool = True  # the dataset's crop/flip augmentation (False: none, as LAS-AWP's Tiny-ImageNet code)
    ema: EMA | float | None = None  # weight averaging (`EMA`, or a decay): validated, selected and saved
    stream: Stream | bool | None = None  # the data path: None chooses by size, False in memory, a Stream: files
    aux: Aux | None = None  # generated images mixed into every batch at a fixed fraction (DM-Improves-AT)
    norm: str = "Linf"  # the threat model: `eps` is an L∞ or an L2 radius (training attack, validation, cards)
    seed: int = 0
    reported: Reported | None = None
    description: str = ""

    def __post_init__(self) -> None:
        check_budget(self.eps, self.norm)
        if self.norm != "Linf" and self.eps == 8 / 255:
            raise InvalidValueError(f"norm={self.norm!r} with eps=8/255 (the L∞ default); expected an {self.norm} "
                                    f"radius, e.g. eps=0.5 on CIFAR-10")
        policy_norm = getattr(self.policy, "norm", "Linf")
        if policy_norm != self.norm:
            raise InvalidValueError(
                f"norm={self.norm!r}, but policy {type(self.policy).__name__} attacks in {policy_norm}; expected a "
                f"policy with {self.norm} budgets (e.g. Fixed(eps, step_size, steps, norm={self.norm!r}))"
                + ("; its budgets are L∞-specific" if not hasattr(type(self.policy), "norms") else ""))
        self.ema = as_ema(self.ema)
        if self.stream is True:
            self.stream = Stream()
        if self.aux is not None:
            self.aux.per_batch(self.batch_size)  # a batch keeps at least one real image
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise InvalidValueError(f"{name}={getattr(self, name)!r}; expected a positive integer")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidValueError(f"optimizer={self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if self.lr <= 0:
            raise InvalidValueError(f"lr={self.lr!r}; expected > 0")

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with some fields changed (what the CLI's overrides use)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def summary(self) -> dict[str, Any]:
        """A JSON record of the recipe (for run folders and cards)."""
        return {"name": self.name, "model": self.model, "model_kwargs": self.model_kwargs,
                "dataset": self.dataset, "policy": type(self.policy).__name__,
                "policy_config": self.policy.config(), "defense": type(self.defense).__name__,
                "defense_config": self.defense.config(), "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov,
                **({"optimizer": self.optimizer, "betas": list(self.betas)} if self.optimizer != "sgd" else {}),
                **({} if self.decay_norm_and_bias else {"decay_norm_and_bias": False}),
                "schedule": repr(self.schedule), "val_size": self.val_size, "train_subset": self.train_subset, "eps": self.eps,
                "attack_train_mode": self.attack_train_mode, "final_clip": self.final_clip,
                **({} if self.augment else {"augment": False}),
                **({"ema": self.ema.config()} if self.ema else {}),
                **({"stream": self.stream.config() if isinstance(self.stream, Stream) else self.stream}
                   if self.stream is not None else {}),
                **({"aux": self.aux.config()} if self.aux else {}),
                **({"norm": self.norm} if self.norm != "Linf" else {}), "seed": self.seed,
                "reported": self.reported.as_dict() if self.reported else None}


def load_recipe(path: str | Path) -> tuple[Recipe, str]:
    """Import a recipe file and call its `recipe()`; returns the Recipe and the file's sha256."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {str(path)!r} not found; expected a Python file such as "
                          f"recipes/quickstart.py")
    source = path.read_bytes()
    module_name = f"robustzoo_recipe_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise RecipeError(f"recipe file {str(path)!r} cannot be imported; expected a .py file")
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        build = getattr(module, "recipe", None)
        if not callable(build):
            raise RecipeError(f"recipe file {str(path)!r} defines no recipe() function")
        recipe = build()
    except RecipeError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise RecipeError(f"recipe {str(path)!r} raised {type(e).__name__}: {first}") from e
    finally:
        sys.modules.pop(module_name, None)
    if not isinstance(recipe, Recipe):
        raise RecipeError(f"recipe() in {str(path)!r} returned {type(recipe).__name__}; expected a Recipe")
    return recipe, hashlib.sha256(source).hexdigest()
