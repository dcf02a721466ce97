"""The zoo's catalog: one card per entry in `zoo_cards/`, and cards made from recipes and run folders."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import InvalidValueError, UnknownNameError
from ..recipe import Recipe
from .card import RobustnessCard

ZOO_OWNER = "robustzoo"  # the Hub namespace of the zoo's repos
DATASET_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "tiny_imagenet": 200, "digits": 10, "imagenet": 1000}
REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def zoo_dir() -> Path:
    """`$ROBUSTZOO_ZOO_DIR`, else the cards shipped with the package (the repository's `zoo_cards/`)."""
    return Path(os.environ.get("ROBUSTZOO_ZOO_DIR") or Path(__file__).resolve().parents[1] / "zoo_cards")


def zoo_names() -> list[str]:
    """The zoo's entries: one card `zoo_cards/<name>.md` each."""
    return sorted(p.stem for p in zoo_dir().glob("*.md") if p.name != "README.md")


def zoo_card(name: str) -> RobustnessCard:
    """The card of the zoo entry `name` (e.g. `las-awp-cifar10`); unknown names list the close ones."""
    if name not in zoo_names():
        raise UnknownNameError("zoo model", name, zoo_names())
    path = zoo_dir() / f"{name}.md"
    card = RobustnessCard.load(path)
    if card.name != name:
        raise InvalidValueError(f"{path} holds the card of {card.name!r}; a zoo card's name must be its file name")
    return card


def list_zoo() -> list[RobustnessCard]:
    """Every zoo entry's card, sorted by name."""
    return [zoo_card(name) for name in zoo_names()]


def is_repo_id(name: str) -> bool:
    """`owner/name`, as the Hub spells repo ids."""
    return bool(REPO_ID.match(name))


def card_from_recipe(recipe: Recipe, recipe_path: str, recipe_sha256: str, *, name: str,
                     repo_id: str | None = None, num_classes: int | None = None) -> RobustnessCard:
    """A zoo entry's card before any run: the setting and the paper's numbers as targets, nothing measured."""
    summary = recipe.summary()
    classes = num_classes or DATASET_CLASSES.get(recipe.dataset)
    if classes is None:
        raise InvalidValueError(f"dataset {recipe.dataset!r}: pass num_classes (known: {sorted(DATASET_CLASSES)})")
    return RobustnessCard(
        name=name, architecture=recipe.model, dataset=recipe.dataset, num_classes=classes,
        threat_model={"norm": recipe.norm, "eps": recipe.eps}, policy=summary["policy"],
        policy_config=summary["policy_config"], defense=summary["defense"], defense_config=summary["defense_config"],
        recipe=recipe_path, recipe_sha256=recipe_sha256, repo_id=repo_id or f"{ZOO_OWNER}/{name}",
        weight_averaging=summary.get("ema"), paper=recipe.reported.as_dict() if recipe.reported else {},
        description=recipe.description.strip())


def card_from_run(run_dir: str | Path, run_info: dict[str, Any], *, name: str | None = None) -> RobustnessCard:
    """The card of a trained run: its config and training time; results stay empty until evaluated."""
    run_dir = Path(run_dir)
    recipe, model = run_info.get("recipe"), run_info.get("model")
    if not (recipe and model and run_info.get("dataset")):
        raise InvalidValueError(f"{run_dir} does not record its recipe, model and dataset; expected a robustzoo run")
    from ..reproduce import training_summary

    epochs, seconds, steps = training_summary(run_dir)
    return RobustnessCard(
        name=name or recipe.get("name") or run_dir.name, architecture=model["architecture"],
        dataset=run_info["dataset"]["name"], num_classes=int(model["num_classes"]),
        threat_model=run_info.get("threat_model", {"norm": "Linf", "eps": recipe.get("eps")}),
        policy=recipe["policy"], policy_config=recipe.get("policy_config", {}),
        defense=recipe["defense"], defense_config=recipe.get("defense_config", {}),
        recipe=run_info.get("recipe_path"), recipe_sha256=run_info.get("recipe_sha256"),
        epochs=epochs or None, train_seconds=seconds if epochs else None, mean_attack_steps=steps,
        weight_averaging=recipe.get("ema"), paper=recipe.get("reported") or {})

