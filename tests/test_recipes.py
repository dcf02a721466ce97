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
    assert r.val_size == 1000 and r.attack_train_mode


@pytest.mark.parametrize("stem,defense,inner,gamma,warmup,eps,step,wd,epochs", [
    ("trades_wrn34_cifar10", "TRADES", None, None, None, 0.031, 0.007, 2e-4, 76),
    ("awp_wrn34_cifar10", "AWP", "PGDAT", 0.01, 0, 8 / 255, 2 / 255, 5e-4, 200),
    ("trades_awp_wrn34_cifar10", "AWP", "TRADES", 0.005, 9, 8 / 255, 2 / 255, 5e-4, 200),
    ("trades_prn18_cifar10", "TRADES", None, None, None, 8 / 255, 2 / 255, 5e-4, 200),
    ("awp_prn18_cifar10", "AWP", "PGDAT", 0.01, 0, 8 / 255, 2 / 255, 5e-4, 200),
    ("trades_awp_prn18_cifar10", "AWP", "TRADES", 0.005, 9, 8 / 255, 2 / 255, 5e-4, 200),
])
def test_defense_recipes_state_the_published_settings(stem, defense, inner, gamma, warmup, eps, step, wd, epochs):
    r, _ = load_recipe(Path(__file__).parents[1] / "recipes" / f"{stem}.py")
    assert type(r.defense).__name__ == defense
    if inner:
        assert type(r.defense.defense).__name__ == inner
        assert (r.defense.gamma, r.defense.warmup) == (gamma, warmup)
    trades = r.defense.defense if inner == "TRADES" else r.defense
    if "TRADES" in (defense, inner):
        assert trades.beta == 6.0 and trades.start_std == 0.001
    assert (r.policy.eps, r.policy.step_size, r.policy.steps) == (eps, step, 10)
    assert (r.weight_decay, r.epochs, r.lr, r.batch_size) == (wd, epochs, 0.1, 128)
    assert "Reported" in r.description and "AA" in r.description
    # attacks in train mode where the reference code (Rice et al.'s) does, in eval mode for TRADES's
    assert r.attack_train_mode is ("TRADES" not in (defense, inner))
    if stem.startswith("trades_wrn34"):  # the TRADES code: lr ×0.1 for 1-based epochs >= 75
        assert [r.schedule(e / 76) for e in (73, 74, 75)] == [1, pytest.approx(0.1), pytest.approx(0.1)]
    if stem.startswith("trades_awp"):  # the AWP code: lr ×0.1 for 1-based epochs >= 100, ×0.01 >= 150
        assert [r.schedule(e / 200) for e in (98, 99, 148, 149)] == pytest.approx([1, 0.1, 0.1, 0.01])


# (robust weight, clean weight, k, strategy momentum, LR follows the target) per script of the LAS-AT code
LAS_CODE = {"las_at_wrn34_cifar10": (4.0, 2.0, 20, 0.0, False), "las_trades_wrn34_cifar10": (8.0, 4.0, 1, 0.9, True),
            "las_awp_wrn34": (1.0, 1.0, 1, 0.0, True), "las_awp_wrn34_cifar100": (4.0, 2.0, 10, 0.9, True),
            "las_awp_prn18_tinyimagenet": (8.0, 2.0, 10, 0.0, True)}


@pytest.mark.parametrize("stem,policy,defense,low,high,epochs", [
    ("las_at_wrn34_cifar10", "LearnedLAS", "PGDAT", 3, 15, 200),
    ("las_trades_wrn34_cifar10", "LearnedLAS", "TRADES", 5, 9, 76),
    ("las_awp_wrn34", "LearnedLAS", "AWP", 7, 15, 200),
    ("las_awp_wrn34_cifar100", "LearnedLAS", "AWP", 7, 15, 200),
    ("las_awp_prn18_tinyimagenet", "LearnedLAS", "AWP", 7, 15, 200),
    ("ecas_pgdat_wrn34_cifar10", "CyclicEntropyECAS", "PGDAT", 3, 12, 200),
    ("ecas_awp_wrn34_cifar10", "CyclicEntropyECAS", "AWP", 6, 15, 200),
])
def test_adaptive_policy_recipes(stem, policy, defense, low, high, epochs):
    r, _ = load_recipe(Path(__file__).parents[1] / "recipes" / f"{stem}.py")
    assert (type(r.policy).__name__, type(r.defense).__name__, r.epochs) == (policy, defense, epochs)
    space = r.policy.eps_options if policy == "LearnedLAS" else r.policy.eps_space
    assert (round(min(space) * 255), round(max(space) * 255)) == (low, high)
    if policy == "LearnedLAS":
        p = r.policy
        assert (p.alpha, p.beta, p.update_every, p.momentum, p.follow_target_lr) == LAS_CODE[stem]
        assert (p.lr, p.grad_clip, p.baseline, p.reward_form, p.hidden) == (1e-4, 1.0, False, "code", None)
        assert p.backbone == "cifar_resnet18"
        assert (p.beta_options is not None) == (defense == "TRADES")
    assert r.final_clip is (defense == "AWP")  # LAS-AWP and ECAS-AWP train on delta clamped to 8/255
    if defense == "PGDAT":
        assert r.defense.true_prob == 0.7  # the LAS-AT / ECAS code's label smoothing
    assert "Reported" in r.description and "AA" in r.description


@pytest.mark.parametrize("stem,defense,rho,eps_max", [("saat_prn18_cifar10", "PGDAT", 1.7, 14 / 255),
                                                      ("saat_awp_prn18_cifar10", "AWP", 1.7, 9 / 255)])
def test_saat_recipes(stem, defense, rho, eps_max):
    r, _ = load_recipe(Path(__file__).parents[1] / "recipes" / f"{stem}.py")
    assert type(r.policy).__name__ == "LossConstrainedSAAT" and type(r.defense).__name__ == defense
    assert (r.policy.rho, r.policy.eps_max, r.policy.tau, r.policy.step_size, r.policy.steps_per_budget) == (
        rho, eps_max, 2 / 255, 2 / 255, 3)
    assert (r.policy.mode, r.policy.base_eps, r.policy.base_steps) == ("up", 8 / 255, 10)  # Table 1: SAAT_up
    assert r.attack_train_mode  # the SAAT code is a fork of the AWP code: attacks in train mode
    assert r.model == "cifar_preact_resnet18" and "Reported" in r.description
