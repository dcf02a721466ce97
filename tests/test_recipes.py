"""Every shipped recipe loads, and states the published settings it claims."""
from pathlib import Path

import pytest

from robustzoo import Fixed, PGDAT, load_recipe

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.py"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads(path):
    recipe, sha = load_recipe(path)
    assert len(sha) == 64 and recipe.name


def test_rice_settings():
    r, _ = load_recipe(Path(__file__).parents[1] / "recipes" / "pgdat_prn18_cifar10.py")
    assert (r.model, r.dataset, r.epochs, r.batch_size, r.lr, r.weight_decay) == (
        "cifar_preact_resnet18", "cifar10", 200, 128, 0.1, 5e-4)
    assert isinstance(r.policy, Fixed) and isinstance(r.defense, PGDAT)
    assert (r.policy.eps, r.policy.step_size, r.policy.steps) == (8 / 255, 2 / 255, 10)
    assert [r.schedule(e / 200) for e in (0, 99, 100, 149, 150, 199)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    assert r.val_size == 1000
