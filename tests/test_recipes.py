"""Every shipped recipe loads, and states the published settings it claims."""
from pathlib import Path

import dataclasses

import numpy as np
import pytest
import torch

from robustzoo import Fixed, PGDAT, Trainer, load_recipe

ROOT = Path(__file__).parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.py"))


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
    ("las_at_wrn34_cifar10", "LearnedLAS", "PGDAT", 3, 15, 110),
    ("las_trades_wrn34_cifar10", "LearnedLAS", "TRADES", 5, 9, 100),
    ("las_awp_wrn34", "LearnedLAS", "AWP", 7, 15, 200),
    ("las_awp_wrn34_cifar100", "LearnedLAS", "AWP", 7, 15, 200),
    ("las_awp_prn18_tinyimagenet", "LearnedLAS", "AWP", 7, 15, 200),
    ("ecas_pgdat_wrn34_cifar10", "CyclicEntropyECAS", "PGDAT", 3, 12, 110),
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


def lr_factors(stem: str, epochs: list[int]) -> list[float]:
    """The recipe's LR factor at the first step of each 0-based epoch."""
    r, _ = load_recipe(ROOT / "recipes" / f"{stem}.py")
    return [r.schedule(e / r.epochs) for e in epochs]


@pytest.mark.parametrize("stem,epochs,factors", [
    # LAS-PGD and ECAS-PGD code: MultiStepLR per iteration at lr_steps*99/110 and *104/110 (0-based epochs)
    ("las_at_wrn34_cifar10", [98, 99, 103, 104, 109], [1, 0.1, 0.1, 0.01, 0.01]),
    ("ecas_pgdat_wrn34_cifar10", [98, 99, 103, 104, 109], [1, 0.1, 0.1, 0.01, 0.01]),
    # LAS-TRADES code: lr_steps*75/100 and *90/100
    ("las_trades_wrn34_cifar10", [74, 75, 89, 90, 99], [1, 0.1, 0.1, 0.01, 0.01]),
    # ECAS-TRADES code: the second milestone (104/100 of the run) never fires — one drop, as the code ran
    ("ecas_trades_wrn34_cifar10", [98, 99, 104, 109], [1, 0.1, 0.1, 0.1]),
    # MART code: 1-based epoch >= 75: ×0.1, >= 90: ×0.01 (90 epochs)
    ("mart_wrn34_cifar10", [73, 74, 88, 89], [1, 0.1, 0.1, 0.01]),
])
def test_schedules_drop_at_the_codes_epochs(stem, epochs, factors):
    assert lr_factors(stem, epochs) == pytest.approx(factors)


def test_fast_at_recipes_run_one_triangle_of_lr_and_their_attacks():
    fgsm, _ = load_recipe(ROOT / "recipes" / "fgsm_rs_prn18_cifar10.py")
    nfgsm, _ = load_recipe(ROOT / "recipes" / "nfgsm_prn18_cifar10.py")
    # CyclicLR(0, 0.2) per batch: 0 at the start, 0.2 half-way, 0 at the end, linear between
    assert [fgsm.lr * fgsm.schedule(p) for p in (0, 0.25, 0.5, 0.75, 1.0)] == pytest.approx([0, 0.1, 0.2, 0.1, 0])
    assert (fgsm.epochs, nfgsm.epochs, fgsm.attack_train_mode, fgsm.val_size) == (15, 30, True, 0)
    assert fgsm.policy.config() == {"eps": 8 / 255, "step_size": 10 / 255, "steps": 1, "start_scale": 1.0,
                                    "project": True}
    assert nfgsm.policy.config() == {"eps": 8 / 255, "step_size": 8 / 255, "steps": 1, "start_scale": 2.0,
                                     "project": False}


def test_las_trades_and_tinyimagenet_code_settings():
    r, _ = load_recipe(ROOT / "recipes" / "las_trades_wrn34_cifar10.py")
    assert (r.weight_decay, r.epochs) == (5e-4, 100)
    p = r.policy
    assert [round(v * 255) for v in p.step_options] == [2, 3, 4] and p.steps_options == list(range(7, 15))
    assert p.beta_options == [5.0, 6.0, 7.0, 8.0, 9.0] and p.update_every == 1
    t, _ = load_recipe(ROOT / "recipes" / "las_awp_prn18_tinyimagenet.py")
    assert t.defense.warmup == 10 and t.augment is False and t.policy.steps_options == list(range(8, 16))
    assert all(load_recipe(path)[0].augment for path in RECIPES if path.stem != "las_awp_prn18_tinyimagenet")


# a derived recipe differs from its base in exactly the fields its file names (so the file shows the difference)
DERIVED = {
    "las_awp_wrn70_16_cifar10": ("las_awp_wrn34", {"model": "cifar_wrn_70_16"}),
    "las_awp_wrn34_20_cifar100": ("las_awp_wrn34_cifar100", {"model": "cifar_wrn_34_20"}),
    "las_at_resnet18_cifar10": ("las_at_wrn34_cifar10", {"model": "cifar_resnet18", "policy": None}),
    "ecas_pgdat_resnet18_cifar10": ("ecas_pgdat_wrn34_cifar10", {"model": "cifar_resnet18"}),
    "ecas_trades_resnet18_cifar10": ("ecas_trades_wrn34_cifar10", {"model": "cifar_resnet18"}),
    "ecas_awp_resnet18_cifar10": ("ecas_awp_wrn34_cifar10", {"model": "cifar_resnet18"}),
    "ecas_pgdat_wrn34_cifar100": ("ecas_pgdat_wrn34_cifar10", {"dataset": "cifar100", "policy": None}),
    "ecas_trades_wrn34_cifar100": ("ecas_trades_wrn34_cifar10", {"dataset": "cifar100", "policy": None,
                                                                 "defense": None}),
    "ecas_awp_wrn34_cifar100": ("ecas_awp_wrn34_cifar10", {"dataset": "cifar100", "policy": None}),
    "saat_down_prn18_cifar10": ("saat_prn18_cifar10", {"policy": None}),
    "saat_wrn34_cifar10": ("saat_prn18_cifar10", {"model": "cifar_wrn_34_10"}),
    "saat_prn18_cifar100": ("saat_prn18_cifar10", {"dataset": "cifar100"}),
    "saat_trades_prn18_cifar10": ("saat_prn18_cifar10", {"defense": None, "attack_train_mode": False}),
    "nfgsm_prn18_cifar10": ("fgsm_rs_prn18_cifar10", {"epochs": 30, "policy": None}),
    "pgdat_l2_prn18_cifar10": ("pgdat_prn18_cifar10", {"norm": "L2", "eps": 128 / 255, "policy": None}),
    **{f"las_at_resnet18_cifar10_{s}": ("las_at_resnet18_cifar10", {"policy": None})
       for s in ("l1", "l1_l2", "l1_l3", "k1", "k10", "k20", "k60")},
}
SAME_ANYWAY = {"name", "reported", "description"}


def _fields(r):
    import dataclasses

    return {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}


@pytest.mark.parametrize("stem", sorted(DERIVED))
def test_derived_recipes_differ_from_their_base_only_where_they_say(stem):
    base_stem, changed = DERIVED[stem]
    r, _ = load_recipe(ROOT / "recipes" / f"{stem}.py")
    base, _ = load_recipe(ROOT / "recipes" / f"{base_stem}.py")
    mine, theirs = _fields(r), _fields(base)
    for name, value in mine.items():
        if name in SAME_ANYWAY:
            continue
        if name in ("policy", "defense"):  # objects: compare their type and settings
            same = type(value) is type(theirs[name]) and value.config() == theirs[name].config()
        else:
            same = value == theirs[name]
        assert same is (name not in changed), (stem, name)
        if name in changed and changed[name] is not None:
            assert value == changed[name]
    assert (r.reported is None or r.reported.as_dict()["source"]) and r.name != base.name


def test_las_ablation_and_k_sweep_rows():
    rows = {s: load_recipe(ROOT / "recipes" / f"las_at_resnet18_cifar10{s}.py")[0].policy
            for s in ("", "_l1", "_l1_l2", "_l1_l3", "_k1", "_k10", "_k20", "_k60")}
    assert {s: (p.alpha, p.beta) for s, p in rows.items() if not s.startswith("_k")} == {
        "": (4.0, 2.0), "_l1": (0.0, 0.0), "_l1_l2": (4.0, 0.0), "_l1_l3": (0.0, 2.0)}
    assert {s: p.update_every for s, p in rows.items()} == {
        "": 40, "_l1": 40, "_l1_l2": 40, "_l1_l3": 40, "_k1": 1, "_k10": 10, "_k20": 20, "_k60": 60}


def _synthetic(recipe, n=8):
    from robustzoo.data import Split
    from robustzoo.data.datasets import Data

    classes = {"cifar10": 10, "cifar100": 100, "tiny_imagenet": 200, "digits": 10, "imagenet": 1000}[recipe.dataset]
    size, chans = (64, 3) if recipe.dataset in ("tiny_imagenet", "imagenet") else (8, 1) if recipe.dataset == "digits" \
        else (32, 3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, chans, size, size), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % classes
    split = Split(x, y)
    return Data(recipe.dataset, split, Split(x[:4], y[:4]), Split(x[:4], y[:4]), [str(c) for c in range(classes)],
                (0.5,) * chans, (0.5,) * chans)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_trains_a_step_on_a_small_override(path, tmp_path):
    """Its policy, defense and options run end to end (model: a width-4 small CNN; 8 images, 1 epoch)."""
    recipe, _ = load_recipe(path)
    small = recipe.replace(model="cifar_small_cnn", model_kwargs={"width": 4}, epochs=1, batch_size=8, val_size=4,
                           val_steps=1)
    if hasattr(small.policy, "backbone"):  # LAS's strategy net: the same small CNN
        small.policy.backbone, small.policy.backbone_kwargs = "cifar_small_cnn", {"width": 4}
    if small.aux is not None:  # generated data: a small file of the same format in its place
        np.savez(tmp_path / "aux.npz", image=np.zeros((16, 32, 32, 3), np.uint8), label=np.arange(16) % 10)
        small.aux = dataclasses.replace(small.aux, path=str(tmp_path / "aux.npz"), num_batches=None)
        small.batch_size = 16  # a batch keeps real images at the recipe's fraction
    data = _synthetic(recipe, n=16 if small.aux else 8)
    record = Trainer(small, tmp_path / "run", data=data, progress=False, device="cpu").fit()
    assert record["epoch"] == 1 and record["step"] == 1 and record["train_loss"] == record["train_loss"]


def test_past_cifar_recipes_state_their_code_settings():
    from robustzoo.data import Stream

    dm, _ = load_recipe(ROOT / "recipes" / "dm_trades_wrn28_cifar10_1m.py")
    assert (dm.model, dm.model_kwargs, dm.batch_size, dm.epochs, dm.lr, dm.nesterov) == (
        "cifar_wrn_28_10", {"act_layer": "silu"}, 512, 400, 0.2, True)
    assert dm.aux.fraction == 0.7 and dm.aux.per_batch(512) == 358 and dm.aux.num_batches == 98
    assert (dm.defense.beta, dm.defense.label_smoothing, dm.ema.decay, dm.val_size) == (5.0, 0.1, 0.995, 1024)
    assert not dm.decay_norm_and_bias and dm.reported.aa == 63.35
    r50, _ = load_recipe(ROOT / "recipes" / "pgdat_resnet50_imagenet.py")
    assert (r50.model, r50.dataset, r50.eps, r50.policy.steps, r50.epochs, r50.weight_decay) == (
        "resnet50", "imagenet", 4 / 255, 3, 90, 1e-4)
    assert isinstance(r50.stream, Stream) and r50.stream.crop_pct == 0.875 and r50.reported.aa == 34.96
    vit, _ = load_recipe(ROOT / "recipes" / "pgdat_vit_s_imagenet.py")
    assert (vit.optimizer, vit.betas, vit.weight_decay, vit.epochs, vit.ema.decay) == (
        "adamw", (0.9, 0.95), 0.05, 300, 0.9999)
    assert vit.stream.interpolation == "bicubic" and vit.stream.auto_augment == "rand-m9-mstd0.5-inc1"
