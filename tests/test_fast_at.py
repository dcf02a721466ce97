"""One-step fast AT in the per-sample kernel: FGSM-RS (Wong et al. 2020) and N-FGSM (de Jorge et al. 2022)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustzoo import Fixed, Recipe, Trainer
from robustzoo.attacks.pgd import pgd
from robustzoo.errors import InvalidValueError

EPS = 8 / 255


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 10))
    x = 0.3 + 0.4 * torch.rand(64, 3, 4, 4)  # away from 0 and 1: the [0, 1] clamp never binds
    return model, x, torch.randint(0, 10, (64,))


def _one_step(model, x, y, start, step, ball):
    """FGSM from a given start, by hand: x0 + step·sign(∇CE(x0)), projected onto `ball` (or not)."""
    x0 = start.clone().requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(model(x0), y, reduction="sum"), x0)
    out = start + step * grad.sign()
    if ball is not None:
        out = torch.min(torch.max(out, x - ball), x + ball)
    return out.clamp(0, 1)


def test_nfgsm_starts_in_two_eps_steps_eps_and_is_not_projected():
    model, x, y = _setup()
    policy = Fixed(eps=EPS, step_size=EPS, steps=1, start_scale=2.0, project=False)
    x_adv = pgd(model, x, y, policy.strategy(model, x, y), generator=torch.Generator().manual_seed(1))
    noise = (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) - 1) * 2 * EPS
    torch.testing.assert_close(x_adv, _one_step(model, x, y, x + noise, EPS, None))
    delta = (x_adv - x).abs()
    assert delta.max() > 2 * EPS and delta.max() <= 3 * EPS + 1e-6  # beyond the eps ball, as specified
    assert (delta > EPS + 1e-6).float().mean() > 0.3


def test_fgsm_rs_starts_uniform_steps_one_and_a_quarter_eps_and_stays_in_the_ball():
    model, x, y = _setup()
    policy = Fixed(eps=EPS, step_size=1.25 * EPS, steps=1)
    x_adv = pgd(model, x, y, policy.strategy(model, x, y), generator=torch.Generator().manual_seed(1))
    noise = (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) - 1) * EPS
    torch.testing.assert_close(x_adv, _one_step(model, x, y, x + noise, 1.25 * EPS, EPS))
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert ((x_adv - x).abs() > EPS - 1e-6).float().mean() > 0.5  # most pixels end on the ball's surface


def test_unprojected_iterates_stay_in_the_image_range_and_bad_start_scale_is_refused():
    model, _, y = _setup()
    x = torch.rand(64, 3, 4, 4)  # pixels at both ends: the clamp binds
    x_adv = pgd(model, x, y, Fixed(eps=EPS, step_size=EPS, steps=3, start_scale=2.0, project=False).strategy(model, x, y))
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and (x_adv - x).abs().max() > EPS
    with pytest.raises(InvalidValueError, match="start_scale=-1"):
        Fixed(start_scale=-1)
    assert Fixed().config() == {"eps": EPS, "step_size": 2 / 255, "steps": 10, "start_scale": 1.0, "project": True}
    assert Fixed(start_scale=2, project=False).config()["project"] is False


def test_resuming_an_fgsm_rs_run_as_nfgsm_is_refused(tmp_path):
    from robustzoo.errors import RunExistsError

    def recipe(policy, epochs):
        return Recipe(name="fast", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits", val_size=0,
                      policy=policy, epochs=epochs, batch_size=64, lr=0.05, train_subset=128)

    Trainer(recipe(Fixed(eps=0.1, step_size=0.125, steps=1), 1), tmp_path, device="cpu", progress=False).fit()
    nfgsm = Fixed(eps=0.1, step_size=0.1, steps=1, start_scale=2.0, project=False)
    with pytest.raises(RunExistsError, match="start_scale"):
        Trainer(recipe(nfgsm, 2), tmp_path, device="cpu", progress=False).fit(resume=True)


def test_nfgsm_recipe_trains_a_step(tmp_path):
    recipe = Recipe(name="nfgsm", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits", val_size=32,
                    policy=Fixed(eps=0.1, step_size=0.1, steps=1, start_scale=2.0, project=False), epochs=1,
                    batch_size=64, lr=0.05)
    record = Trainer(recipe, tmp_path / "run", device="cpu", progress=False).fit()
    assert record["mean_steps"] == 1.0 and record["mean_eps"] == pytest.approx(0.1)
