"""MART (Wang et al. 2020): the loss on a hand-computed case, the inner attack, and its composition."""
import math

import pytest
import torch
from torch import nn

from robustzoo import AWP, MART, Fixed, Recipe, Trainer
from robustzoo.defenses import create_defense
from robustzoo.errors import InvalidValueError
from robustzoo.strategy import Strategy


def test_mart_loss_equals_a_hand_computation():
    """Logits are the inputs (identity model): clean (0, 0, 0) -> p = 1/3 each; adversarial (0, ln 2, 0) ->
    p_adv = (1/4, 1/2, 1/4). Sample 1 (y = 0): the most likely wrong class is 1 (p 1/2); sample 2 (y = 1):
    the true class is the most likely, so the wrong one has p 1/4."""
    x = torch.zeros(2, 3)
    x_adv = torch.tensor([[0.0, math.log(2), 0.0]] * 2)
    y = torch.tensor([0, 1])
    kl = (1 / 3) * (math.log((1 / 3) / 0.25) * 2 + math.log((1 / 3) / 0.5))  # KL(p_clean || p_adv)
    weight = 1.0000001 - 1 / 3
    expected = [-math.log(0.25) - math.log(1.0001 - 0.5 + 1e-12) + 6 * kl * weight,
                -math.log(0.5) - math.log(1.0001 - 0.25 + 1e-12) + 6 * kl * weight]
    loss, logits = MART(beta=6.0).loss(nn.Identity(), x, x_adv, y, Strategy.uniform(2, 8 / 255, 2 / 255, 10))
    torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-6, atol=1e-6)
    assert torch.equal(logits, x_adv)
    # a correctly classified clean sample weighs its KL term less: p_y(x) = 0.9 -> weight 0.1
    x_sure = torch.tensor([[math.log(9 * 2), 0.0, 0.0]])  # p = (18/20, 1/20, 1/20) = (0.9, 0.05, 0.05)
    loss_sure, _ = MART(beta=1.0).loss(nn.Identity(), x_sure, x_adv[:1], y[:1], Strategy.uniform(1, 8 / 255, 2 / 255, 1))
    p_adv = (0.25, 0.5, 0.25)
    kl_sure = sum(p * math.log(p / q) for p, q in zip((0.9, 0.05, 0.05), p_adv))
    assert loss_sure.item() == pytest.approx(-math.log(0.25) - math.log(0.5001 + 1e-12) + kl_sure * (0.1 + 1e-7), rel=1e-5)


def test_mart_per_sample_beta_and_bad_values():
    x, x_adv, y = torch.zeros(2, 3), torch.tensor([[0.0, 1.0, 0.0]] * 2), torch.tensor([0, 0])
    strategy = Strategy.uniform(2, 8 / 255, 2 / 255, 1)
    base, _ = MART(beta=0.0).loss(nn.Identity(), x, x_adv, y, strategy)
    one, _ = MART(beta=1.0).loss(nn.Identity(), x, x_adv, y, strategy)
    strategy.extras["beta"] = torch.tensor([0.0, 2.0])
    mixed, _ = MART(beta=1.0).loss(nn.Identity(), x, x_adv, y, strategy)
    torch.testing.assert_close(mixed, torch.stack([base[0], base[1] + 2 * (one[1] - base[1])]))
    with pytest.raises(InvalidValueError, match="beta=-1"):
        MART(beta=-1)
    with pytest.raises(InvalidValueError, match="start_std=0"):
        MART(start_std=0)
    assert create_defense("MART", beta=5.0).config() == {"beta": 5.0, "start_std": 0.001}


def test_mart_inner_attack_is_ce_pgd_from_a_small_gaussian_start():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x, y = torch.rand(6, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    strategy = Strategy.uniform(6, 8 / 255, 2 / 255, 0)  # no steps: x itself
    assert torch.equal(MART().attack(model, x, y, strategy), x)
    strategy = Strategy.uniform(6, 8 / 255, 2 / 255, 5)
    x_adv = MART().attack(model, x, y, strategy)
    ce = nn.functional.cross_entropy
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6 and ce(model(x_adv), y) > ce(model(x), y)


@pytest.mark.parametrize("defense", [MART(), AWP(MART(), gamma=0.01)], ids=["MART", "AWP(MART)"])
def test_mart_trains_alone_and_under_awp(tmp_path, defense):
    recipe = Recipe(name="mart", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits", val_size=32,
                    policy=Fixed(eps=0.1, step_size=0.05, steps=2), defense=defense, epochs=1, batch_size=64, lr=0.05)
    record = Trainer(recipe, tmp_path / "run", device="cpu", progress=False).fit()
    assert math.isfinite(record["train_loss"]) and record["mean_steps"] == 2.0
    config = (tmp_path / "run" / "config.json").read_text()
    assert '"MART"' in config
