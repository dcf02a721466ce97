"""SA-PGD / LossConstrainedSAAT: first budget reaching ρ, ε_max cap, untouched samples, cost."""
import math

import pytest
import torch
from torch import nn

from robustzoo import PGDAT, TRADES
from robustzoo.errors import InvalidValueError
from robustzoo.policies.saat import LossConstrainedSAAT


class Margin(nn.Module):
    """Logits [z, 0] with z = 100·(mean pixel − 0.5): CE(y=0) ≥ log 2 exactly when the margin is ≤ 0."""

    def __init__(self):
        super().__init__()
        self.rows = 0

    def forward(self, x):
        self.rows += len(x)
        z = 100 * (x.flatten(1).mean(1) - 0.5)
        return torch.stack([z, torch.zeros_like(z)], 1)


def _batch():
    means = torch.tensor([0.45, 0.505, 0.53, 0.565, 0.7], dtype=torch.float64)
    return means.view(5, 1, 1, 1).expand(5, 1, 2, 2).clone(), torch.zeros(5, dtype=torch.long)


def test_each_sample_stops_at_the_first_budget_reaching_rho():
    model, (x, y) = Margin(), _batch()
    policy = LossConstrainedSAAT(rho=math.log(2), eps_max=0.1, tau=0.02, step_size=0.02, steps_per_budget=3)
    s = policy.strategy(model, x, y)
    x_adv = PGDAT().attack(model, x, y, s)
    # the margin drops by 100·ε: first level l with mean − 0.5 − 0.02·l ≤ 0, reached after step 1 of it
    levels = [0, 1, 2, 4, None]  # 0.45 is already past ρ; 0.7 needs ε = 0.2 > ε_max
    expected_eps = [0.0, 0.02, 0.04, 0.08, 0.1]
    expected_steps = [0, 1, 4, 10, 15]
    torch.testing.assert_close(s.eps, torch.tensor(expected_eps, dtype=torch.float64))
    assert s.steps.tolist() == expected_steps
    assert s.extras["reached"].tolist() == [True, True, True, True, False]
    assert torch.equal(x_adv[0], x[0])  # clean loss ≥ ρ: untouched
    dist = (x_adv - x).abs().flatten(1).amax(1)
    assert torch.all(dist <= s.eps + 1e-12) and dist.max() <= 0.1 + 1e-12
    assert levels[1:4] == [1, 2, 4]


def test_cost_follows_the_steps_taken():
    model, (x, y) = Margin(), _batch()
    policy = LossConstrainedSAAT(rho=math.log(2), eps_max=0.1, tau=0.02, step_size=0.02, steps_per_budget=3)
    PGDAT().attack(model, x, y, policy.strategy(model, x, y))
    # clean check 5; then per level (3 gradient steps + 1 check) × samples still searching: 4, 3, 2, 2, 1
    assert model.rows == 5 + 4 * (4 + 3 + 2 + 2 + 1) == 53
    assert model.rows < 5 + 5 * 5 * 4  # without the active set


def test_runs_with_the_trades_kl_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()
    x, y = torch.rand(8, 3, 2, 2, dtype=torch.float64), torch.randint(0, 3, (8,))
    policy = LossConstrainedSAAT(rho=0.05, eps_max=16 / 255, tau=4 / 255, step_size=4 / 255, steps_per_budget=2)
    s = policy.strategy(model, x, y)
    x_adv = TRADES().attack(model, x, y, s)
    assert torch.all((x_adv - x).abs().flatten(1).amax(1) <= s.eps + 1e-12)
    assert s.eps.max() <= 16 / 255 + 1e-6 and s.steps.max() <= 8


@pytest.mark.parametrize("kwargs,name", [({"rho": 0}, "rho"), ({"eps_max": 2}, "eps_max"), ({"tau": 0}, "tau"),
                                         ({"steps_per_budget": 0}, "steps_per_budget")])
def test_bad_settings(kwargs, name):
    with pytest.raises(InvalidValueError, match=name):
        LossConstrainedSAAT(**kwargs)
