"""SA-PGD / LossConstrainedSAAT: first budget reaching ρ, the per-step check, the ε_max cap, untouched samples,
cost ∝ steps taken, PGD-AT and TRADES searches, training under the trainer, bad settings."""
import json
import math

import pytest
import torch
from torch import nn

from robustzoo import PGDAT, TRADES, Recipe, Trainer
from robustzoo.attacks.sapgd import sa_pgd
from robustzoo.errors import InvalidValueError
from robustzoo.policies.saat import LossConstrainedSAAT
from robustzoo.strategy import Strategy

RHO = 1.0  # CE(y=0) of logits [z, 0] is softplus(-z) ≥ 1  ⇔  z ≤ -log(e - 1) = -0.5413
Z_MIN = math.log(math.e - 1)


class Margin(nn.Module):
    """Logits [z, 0], z = 100·(mean pixel − 0.5): for y = 0, CE rises monotonically as the image darkens.

    The input gradient of CE(y=0) is negative in every pixel, so a sign step lowers each pixel by α (until
    the ball's edge). Counts the rows its forward sees, with and without gradient.
    """

    def __init__(self):
        super().__init__()
        self.grad_rows = self.nograd_rows = 0

    def forward(self, x):
        if torch.is_grad_enabled():
            self.grad_rows += len(x)
        else:
            self.nograd_rows += len(x)
        z = 100 * (x.flatten(1).mean(1) - 0.5)
        return torch.stack([z, torch.zeros_like(z)], 1)


def _images(means):
    """Constant 1×2×2 images (float64), labels 0."""
    m = torch.tensor(means, dtype=torch.float64)
    return m.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone(), torch.zeros(len(m), dtype=torch.long)


def _by_hand(mean, tau, alpha, k, eps_max):
    """Walk Algorithm 1 for one Margin sample by hand: (eps, steps, reached, levels visited)."""
    if -100 * (mean - 0.5) >= Z_MIN:
        return 0.0, 0, True, 0
    d, steps, level = 0.0, 0, 0
    while True:
        level += 1
        eps = min(level * tau, eps_max)
        for _ in range(k):
            d, steps = min(d + alpha, eps), steps + 1
            if -100 * (mean - d - 0.5) >= Z_MIN + 1e-6:
                return eps, steps, True, level
        if eps >= eps_max:
            return eps, steps, False, level


# means chosen so that the needed perturbation never sits within 1e-4 of a step boundary
MEANS = [0.40, 0.505, 0.52, 0.535, 0.56, 0.62]


def test_each_sample_stops_at_the_first_budget_reaching_rho():
    """α = τ/K: after s steps the perturbation is s·α, so the budget is the first level k with loss ≥ ρ."""
    model, (x, y) = Margin(), _images(MEANS)
    policy = LossConstrainedSAAT(rho=RHO, eps_max=0.12, tau=0.03, step_size=0.01, steps_per_budget=3, mode="both")
    s = policy.strategy(model, x, y)
    x_adv = PGDAT().attack(model, x, y, s)
    # needed perturbation 100(m − 0.5) + 0.5413 in units of 0.01 → steps s* = ⌈·⌉, budget level k = ⌈s*/3⌉
    expected_eps = [0.0, 0.03, 0.03, 0.06, 0.09, 0.12]
    expected_steps = [0, 2, 3, 5, 7, 12]  # 0.52 stops at step K of budget 1 (3 = K·1); 0.62 hits ε_max
    by_hand = [_by_hand(m, 0.03, 0.01, 3, 0.12) for m in MEANS]
    assert [h[1] for h in by_hand] == expected_steps and [h[0] for h in by_hand] == pytest.approx(expected_eps)
    torch.testing.assert_close(s.eps, torch.tensor(expected_eps, dtype=s.eps.dtype), rtol=0, atol=1e-7)
    assert s.steps.dtype == torch.long and s.steps.device.type == "cpu"
    assert s.steps.tolist() == expected_steps
    assert s.extras["reached"].tolist() == [True, True, True, True, True, False]
    # the perturbation itself is exactly `steps` sign steps of α down
    torch.testing.assert_close((x - x_adv).flatten(1).amax(1), s.steps.double() * 0.01, rtol=0, atol=1e-7)


def test_loss_is_checked_after_every_step_not_only_after_k():
    """A sample that passes ρ at step 1 of a budget stops there (Algorithm 1, line 11), not after K steps."""
    model, (x, y) = Margin(), _images([0.505, 0.525, 0.545])  # need a perturbation ≥ 0.0104, 0.0304, 0.0504
    policy = LossConstrainedSAAT(rho=RHO, eps_max=0.1, tau=0.02, step_size=0.02, steps_per_budget=3, mode="both")
    s = policy.strategy(model, x, y)
    PGDAT().attack(model, x, y, s)
    # α = τ: each budget's first step reaches its edge, so the sample stops at step 1 of its first good budget
    assert s.steps.tolist() == [1, 4, 7] == [_by_hand(m, 0.02, 0.02, 3, 0.1)[1] for m in (0.505, 0.525, 0.545)]
    torch.testing.assert_close(s.eps, torch.tensor([0.02, 0.04, 0.06]), rtol=0, atol=1e-7)


def test_never_exceeds_eps_max():
    """ε_max = 0.1 is no multiple of τ = 0.03: the last budget is 0.1, not 0.12, and never more."""
    means = [0.59, 0.6, 0.9]  # 0.59 reaches ρ at step 10 (budget 0.1), 0.6 and 0.9 never
    model, (x, y) = Margin(), _images(means)
    policy = LossConstrainedSAAT(rho=RHO, eps_max=0.1, tau=0.03, step_size=0.01, steps_per_budget=3, mode="both")
    s = policy.strategy(model, x, y)
    x_adv = PGDAT().attack(model, x, y, s)
    dist = (x_adv - x).abs().flatten(1).amax(1)
    assert torch.all(dist <= s.eps.double() + 1e-7) and torch.all(dist <= 0.1 + 1e-7)
    assert torch.all(s.eps <= 0.1 + 1e-7)
    torch.testing.assert_close(s.eps, torch.full((3,), 0.1), rtol=0, atol=1e-7)
    assert s.steps.tolist() == [10, 12, 12]
    assert s.extras["reached"].tolist() == [True, False, False]
    assert [_by_hand(m, 0.03, 0.01, 3, 0.1)[2] for m in means] == [True, False, False]


def test_per_sample_eps_max_tau_and_k():
    """Budgets and K are per sample: each is capped at its own ε_max on its own τ-grid, with its own K;
    a sample with K = 0 is left clean."""
    model, (x, y) = Margin(), _images([0.7, 0.7, 0.7, 0.7, 0.52])  # 0.7 never reaches ρ within 0.1
    s = Strategy(eps=torch.tensor([0.05, 0.1, 0.1, 0.1, 0.1]), step_size=torch.tensor([0.05, 0.05, 0.05, 0.05, 0.03]),
                 steps=torch.tensor([1, 3, 2, 0, 1]), extras={"tau": torch.tensor([0.05, 0.05, 0.1, 0.05, 0.03]),
                                                             "rho": torch.full((5,), RHO)})
    x_adv = sa_pgd(model, x, y, s)
    # 1 level × 1, 2 levels × 3, 1 level × 2, none; 0.52 passes ρ at its only step of budget 1
    assert s.steps.tolist() == [1, 6, 2, 0, 1]
    assert s.extras["reached"].tolist() == [False, False, False, False, True]
    torch.testing.assert_close(s.eps, torch.tensor([0.05, 0.1, 0.1, 0.0, 0.03]), rtol=0, atol=1e-7)
    torch.testing.assert_close((x - x_adv).flatten(1).amax(1), s.eps.double(), rtol=0, atol=1e-7)
    assert torch.equal(x_adv[3], x[3])


def test_samples_already_past_rho_are_untouched():
    model, (x, y) = Margin(), _images([0.3, 0.45, 0.52])
    policy = LossConstrainedSAAT(rho=RHO, eps_max=0.1, tau=0.02, step_size=0.02, steps_per_budget=3, mode="both")
    s = policy.strategy(model, x, y)
    x_adv = PGDAT().attack(model, x, y, s)
    assert torch.equal(x_adv[:2], x[:2]) and not torch.equal(x_adv[2], x[2])
    assert s.eps[:2].tolist() == [0.0, 0.0] and s.steps[:2].tolist() == [0, 0]
    assert s.extras["reached"].tolist() == [True, True, True]
    # nothing to search: one clean forward, no gradient pass
    model, (x, y) = Margin(), _images([0.3, 0.45])
    s = policy.strategy(model, x, y)
    assert torch.equal(PGDAT().attack(model, x, y, s), x)
    assert (model.grad_rows, model.nograd_rows) == (0, 2) and s.steps.tolist() == [0, 0]


def test_cost_follows_the_steps_taken():
    """Rows the model sees: the clean check (B), then per budget level, for the samples still searching,
    K gradient passes and one no-grad loss check; not B × (levels·(K+1)) as without the active set."""
    model, (x, y) = Margin(), _images(MEANS)
    policy = LossConstrainedSAAT(rho=RHO, eps_max=0.12, tau=0.03, step_size=0.01, steps_per_budget=3, mode="both")
    s = policy.strategy(model, x, y)
    PGDAT().attack(model, x, y, s)
    levels = [_by_hand(m, 0.03, 0.01, 3, 0.12)[3] for m in MEANS]  # 0, 1, 1, 2, 3, 4
    active_per_level = [sum(lv >= level for lv in levels) for level in range(1, 5)]
    assert active_per_level == [5, 3, 2, 1]
    assert model.grad_rows == 3 * sum(active_per_level) == 33  # Σ steps taken is 29: 4 frozen rows ride along
    assert model.nograd_rows == len(x) + sum(active_per_level) == 17
    assert model.grad_rows >= int(s.steps.sum())
    assert model.grad_rows + model.nograd_rows < len(x) * (1 + 4 * (3 + 1))


def test_no_random_start_and_no_parameter_gradients(tiny_net):
    torch.manual_seed(0)
    x, y = torch.rand(6, 3, 8, 8, dtype=torch.float64), torch.randint(0, 4, (6,))
    policy = LossConstrainedSAAT(rho=2.0, eps_max=16 / 255, tau=4 / 255, step_size=4 / 255, steps_per_budget=2, mode="both")
    runs = []
    for _ in range(2):
        s = policy.strategy(tiny_net, x, y)
        runs.append((PGDAT().attack(tiny_net, x, y, s), s))
    assert torch.equal(runs[0][0], runs[1][0])  # x' ← x: deterministic
    assert torch.equal(runs[0][1].steps, runs[1][1].steps)
    assert all(p.grad is None for p in tiny_net.parameters()) and not tiny_net.training


def test_runs_as_the_search_of_pgdat_and_trades(tiny_net):
    torch.manual_seed(0)
    x, y = torch.rand(8, 3, 8, 8, dtype=torch.float64), torch.randint(0, 4, (8,))
    for defense, rho in ((PGDAT(), 2.0), (TRADES(), 0.01)):
        policy = LossConstrainedSAAT(rho=rho, eps_max=16 / 255, tau=4 / 255, step_size=4 / 255, steps_per_budget=2, mode="both")
        s = policy.strategy(tiny_net, x, y)
        x_adv = defense.attack(tiny_net, x, y, s)
        dist = (x_adv - x).abs().flatten(1).amax(1)
        assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
        assert torch.all(dist <= s.eps.double() + 1e-7) and s.eps.max() <= 16 / 255 + 1e-7
        assert s.steps.max() <= 8 and s.steps.sum() > 0 and s.extras["reached"].dtype == torch.bool
        loss, _ = defense.loss(tiny_net, x, x_adv, y, s)
        assert loss.shape == (8,) and torch.isfinite(loss).all()
    # TRADES: KL is 0 at x for every sample, so all search; they move from the 0.001·N(0, 1) start
    assert s.steps.min() >= 1 and torch.all(dist > 0)


def test_trains_two_epochs_under_the_trainer(tmp_path, digits_small):
    policy = LossConstrainedSAAT(rho=1.0, eps_max=32 / 255, tau=8 / 255, step_size=8 / 255, mode="both")
    recipe = Recipe(name="s", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits", val_size=64,
                    policy=policy, eps=32 / 255, epochs=2, batch_size=64, lr=0.05, val_steps=2)
    Trainer(recipe, tmp_path, data=digits_small, progress=False, device="cpu").fit()
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2]
    stats = lines[-1]["strategy"]
    assert 0.0 <= stats["mean"]["reached"] <= 1.0
    hist = stats["hist"]["eps"]
    assert sum(hist.values()) == stats["n"] and set(hist) <= {"0", "8", "16", "24", "32"}
    assert lines[-1]["mean_steps"] <= 3 * 4 and lines[-1]["mean_eps"] <= 32 / 255 + 1e-6


def test_config_round_trips():
    kwargs = dict(rho=1.7, eps_max=14 / 255, tau=2 / 255, step_size=2 / 255, steps_per_budget=3, mode="both",
                  base_eps=8 / 255, base_step_size=2 / 255, base_steps=10)
    assert LossConstrainedSAAT(**kwargs).config() == kwargs
    s = LossConstrainedSAAT(**kwargs).strategy(None, torch.zeros(4, 3, 2, 2), torch.zeros(4, dtype=torch.long))
    assert s.search is sa_pgd and s.steps.tolist() == [3] * 4 and s.steps.device.type == "cpu"
    assert s.extras["rho"].tolist() == pytest.approx([1.7] * 4) and s.eps.tolist() == pytest.approx([14 / 255] * 4)


def test_saat_up_keeps_the_standard_attack_and_strengthens_exactly_the_samples_below_rho():
    """Margin model, y = 0: a pixel step of α lowers the mean by α. Base PGD-2 at 0.02 (steps 0.01, from x so
    that it is hand-computable): every sample ends 0.02 darker; those whose loss there is still < ρ grow by
    τ = 0.03 per level (3 steps of 0.01) up to ε_max = 0.11 (levels 0.05, 0.08, 0.11)."""
    model, (x, y) = Margin(), _images(MEANS)
    policy = LossConstrainedSAAT(rho=RHO, eps_max=0.11, tau=0.03, step_size=0.01, steps_per_budget=3,
                                 base_eps=0.02, base_step_size=0.01, base_steps=2)
    assert policy.mode == "up"  # the default: the Table 1 rows
    s = policy.strategy(model, x, y)
    x_adv = PGDAT(random_start=False).attack(model, x, y, s)
    # needed darkening 100(m − 0.5) + 0.5413 (in 0.01): 0.40 → none (past ρ at x), 0.505 → 1.04, 0.52 → 2.54,
    # 0.535 → 4.04, 0.56 → 6.54, 0.62 → 12.54 (beyond ε_max)
    delta = (x - x_adv).flatten(1).mean(1)
    assert (delta >= 0.02 - 1e-9).all()  # every sample at least at the standard attack's point
    assert s.eps.tolist() == pytest.approx([0.02, 0.02, 0.05, 0.05, 0.08, 0.11])
    assert s.steps.tolist() == [2, 2, 3, 5, 7, 11]  # 2 base steps + the ones SA-PGD took
    assert delta.tolist() == pytest.approx([0.02, 0.02, 0.03, 0.05, 0.07, 0.11])
    assert s.extras["reached"].tolist() == [True, True, True, True, True, False]
    assert ((x - x_adv).abs().flatten(1).amax(1) <= 0.11 + 1e-9).all()  # never past ε_max


def test_saat_down_never_exceeds_the_base_budget():
    model, (x, y) = Margin(), _images(MEANS)
    policy = LossConstrainedSAAT(rho=RHO, eps_max=0.12, tau=0.03, step_size=0.01, steps_per_budget=3, mode="down",
                                 base_eps=0.06)
    s = policy.strategy(model, x, y)
    x_adv = PGDAT().attack(model, x, y, s)
    assert ((x - x_adv).abs().flatten(1).amax(1) <= 0.06 + 1e-9).all()
    assert s.eps.tolist() == pytest.approx([0.0, 0.03, 0.03, 0.06, 0.06, 0.06])  # easy ones get less, or none
    assert s.steps.tolist() == [0, 2, 3, 5, 6, 6]
    assert torch.equal(x_adv[0], x[0])  # already past ρ at x: untouched


@pytest.mark.parametrize("kwargs,name", [({"rho": 0}, "rho=0"), ({"rho": float("nan")}, "rho=nan"),
                                         ({"eps_max": 2}, "eps_max=2"), ({"eps_max": 0}, "eps_max=0"),
                                         ({"tau": 0}, "tau=0"), ({"tau": -0.1}, "tau=-0.1"),
                                         ({"steps_per_budget": 0}, "steps_per_budget=0"),
                                         ({"steps_per_budget": 1.5}, "steps_per_budget=1.5"),
                                         ({"mode": "sideways"}, "mode='sideways'"), ({"base_steps": 0}, "base_steps=0")])
def test_bad_settings(kwargs, name):
    with pytest.raises(InvalidValueError, match=name) as info:
        LossConstrainedSAAT(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_tau_in_a_strategy():
    model, (x, y) = Margin(), _images([0.6])
    s = Strategy(eps=torch.tensor([0.1]), step_size=torch.tensor([0.01]), steps=torch.tensor([3]),
                 extras={"tau": torch.tensor([0.0]), "rho": torch.tensor([RHO])})
    with pytest.raises(InvalidValueError, match="tau"):
        sa_pgd(model, x, y, s)
