"""The L2 threat model end to end: the per-sample L2 kernel, policies, recipes, the trainer and `evaluate`."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustzoo import PGDAT, Fixed, Recipe, Trainer, evaluate, pgd
from robustzoo.attacks.pgd import l2_norm
from robustzoo.errors import EvaluationError, InvalidValueError
from robustzoo.evaluation import balanced_order, check_adversarial
from robustzoo.policies import LearnedLAS
from robustzoo.strategy import Strategy
from robustzoo.trainer import adversarial_step


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 10))


def test_l2_budgets_per_sample_equal_one_at_a_time_runs_and_stay_in_each_ball():
    model = _model()
    x, y = 0.3 + 0.4 * torch.rand(5, 3, 4, 4), torch.tensor([0, 1, 2, 3, 4])
    strategy = Strategy(eps=torch.tensor([0.25, 0.5, 1.0, 0.5, 2.0]), step_size=torch.tensor([0.1, 0.2, 0.5, 0.3, 1.0]),
                        steps=torch.tensor([3, 5, 7, 0, 2]), norm="L2")
    together = pgd(model, x, y, strategy, random_start=False)
    for i in range(5):
        alone = Strategy(strategy.eps[i:i + 1], strategy.step_size[i:i + 1], strategy.steps[i:i + 1], norm="L2")
        torch.testing.assert_close(together[i:i + 1], pgd(model, x[i:i + 1], y[i:i + 1], alone, random_start=False))
    radius = l2_norm(together - x)
    assert (radius <= strategy.eps + 1e-6).all() and radius[3] == 0  # 0 steps: untouched
    assert (radius[[0, 1, 2]] > 0.99 * strategy.eps[[0, 1, 2]]).all()  # enough steps reach the sphere
    ce = F.cross_entropy(model(together), y, reduction="none")
    assert (ce[[0, 1, 2, 4]] > F.cross_entropy(model(x), y, reduction="none")[[0, 1, 2, 4]]).all()  # loss rose


def test_one_l2_step_is_the_normalized_gradient_and_the_projection_rescales_onto_the_sphere():
    model = _model()
    x, y = 0.3 + 0.4 * torch.rand(4, 3, 4, 4), torch.tensor([1, 2, 3, 4])
    x0 = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(model(x0), y, reduction="sum"), x0)
    unit = grad / l2_norm(grad).view(-1, 1, 1, 1)
    small = pgd(model, x, y, Strategy.uniform(4, 0.5, 0.1, 1, norm="L2"), random_start=False)
    torch.testing.assert_close(small, x + 0.1 * unit)  # inside the ball: no projection
    big = pgd(model, x, y, Strategy.uniform(4, 0.05, 0.2, 1, norm="L2"), random_start=False)
    torch.testing.assert_close(big, x + 0.05 * unit)  # beyond it: rescaled onto the sphere (not clipped per pixel)
    assert not torch.allclose(big, torch.min(torch.max(x + 0.2 * unit, x - 0.05), x + 0.05))


def test_l2_random_start_is_inside_each_samples_ball():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 10))
    nn.init.zeros_(model[1].weight)  # zero gradient: x_adv is the random start itself
    nn.init.zeros_(model[1].bias)
    x, y = 0.3 + 0.4 * torch.rand(256, 3, 4, 4), torch.zeros(256, dtype=torch.long)
    eps = torch.full((256,), 0.2)
    start = pgd(model, x, y, Strategy(eps, eps, torch.ones(256, dtype=torch.long), norm="L2"))
    radius = l2_norm(start - x)
    assert (radius <= 0.2 + 1e-6).all() and radius.max() > 0.19 and radius.min() < 0.02  # radius ~ U[0, eps]


def test_l2_policies_recipes_and_bad_values():
    assert Fixed(eps=3.0, step_size=0.5, norm="L2").config()["norm"] == "L2"  # an ImageNet-size L2 radius
    with pytest.raises(InvalidValueError, match="eps=3.0 is out of range"):
        Fixed(eps=3.0)
    with pytest.raises(InvalidValueError, match="norm='L1'"):
        Fixed(norm="L1")
    with pytest.raises(InvalidValueError, match=r"Fixed\(norm='L2'\) needs eps and step_size"):
        Fixed(norm="L2")
    with pytest.raises(InvalidValueError, match="eps=inf is out of range"):
        Fixed(eps=float("inf"), step_size=0.1, norm="L2")
    kw = dict(name="l2", model="cifar_small_cnn", dataset="digits")
    with pytest.raises(InvalidValueError, match="policy Fixed attacks in Linf"):
        Recipe(**kw, norm="L2", eps=0.5)
    with pytest.raises(InvalidValueError, match="policy LearnedLAS attacks in Linf.*L∞-specific"):
        Recipe(**kw, norm="L2", eps=0.5, policy=LearnedLAS())
    with pytest.raises(InvalidValueError, match="eps=8/255 \\(the L∞ default\\)"):
        Recipe(**kw, norm="L2", policy=Fixed(eps=0.5, step_size=0.125, norm="L2"))
    recipe = Recipe(**kw, norm="L2", eps=0.5, policy=Fixed(eps=0.5, step_size=0.125, norm="L2"))
    assert recipe.summary()["norm"] == "L2" and "norm" not in Recipe(**kw).summary()


def test_final_clip_projects_onto_the_l2_ball():
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    x, y = 0.3 + 0.4 * torch.rand(4, 3, 4, 4), torch.tensor([0, 1, 2, 3])
    policy = Fixed(eps=1.0, step_size=0.5, steps=4, norm="L2")  # attacks up to 1.0, trains at 0.25
    _, x_adv, _, _ = adversarial_step(model, x, y, policy, PGDAT(), optimizer, final_eps=0.25)
    torch.testing.assert_close(l2_norm(x_adv - x), torch.full((4,), 0.25))


def test_an_l2_recipe_trains_and_validates_in_l2(tmp_path, digits_small):
    recipe = Recipe(name="l2", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits", val_size=64,
                    norm="L2", eps=0.5, policy=Fixed(eps=0.5, step_size=0.125, steps=3, norm="L2"), epochs=1,
                    batch_size=64, lr=0.05, val_steps=3)
    trainer = Trainer(recipe, tmp_path, data=digits_small, progress=False, device="cpu")
    record = trainer.fit()
    assert trainer.run_info["threat_model"] == {"norm": "L2", "eps": 0.5}
    assert record["mean_eps"] == pytest.approx(0.5) and record["val_robust_acc"] <= record["val_clean_acc"]


def test_evaluate_l2_checks_the_l2_ball_and_autoattack_equals_a_direct_pyautoattack_run(digits_linear):
    from pyautoattack import AutoAttack

    model, data = digits_linear
    result = evaluate(model, data.test, attacks=("clean", "pgd20", "cw", "aa"), eps=0.5, norm="L2", n=64,
                      batch_size=32, seed=3, sanity=False)
    assert result.threat_model == {"norm": "L2", "eps": 0.5}
    assert result.accuracy["aa"] <= result.accuracy["pgd20"] <= result.accuracy["clean"]
    idx = balanced_order(data.test.y)[:64]
    x, y = (data.test.x[idx].float() / 255).contiguous(), data.test.y[idx].contiguous()
    adversary = AutoAttack(model, norm="L2", eps=0.5, version="standard", seed=3, device="cpu")
    adversary.verbose = False
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=32)
    with torch.no_grad():
        direct = (model(x_adv).argmax(1) == y).float().mean().item()
    assert result.accuracy["aa"] == pytest.approx(direct)
    linf = evaluate(model, data.test, attacks=("pgd20",), eps=0.5 / 8, n=64, batch_size=32, seed=3)
    assert linf.threat_model["norm"] == "Linf"
    with pytest.raises(InvalidValueError, match="norm='L2' without eps"):
        evaluate(model, data.test, attacks=("clean",), norm="L2", n=8)
    with pytest.raises(EvaluationError, match="‖x_adv - x‖₂ = .*L2"):
        check_adversarial(x, (x + 0.2).clamp(0, 1), 0.5, "pgd20", norm="L2")  # within L∞ 0.2, far outside L2 0.5
