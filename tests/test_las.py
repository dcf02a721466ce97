"""LearnedLAS: valid options, joint log-prob, REINFORCE direction, look-ahead ŵ, k-step updates."""
import copy

import pytest
import torch
import torch.nn.functional as F

from robustzoo import PGDAT, Fixed, Recipe, Trainer, create_model
from robustzoo.errors import InvalidValueError
from robustzoo.policies import Feedback
from robustzoo.policies.las import LearnedLAS


def _target():
    torch.manual_seed(0)
    return create_model("cifar_small_cnn", num_classes=10, mean=(0.3,), std=(0.4,), in_chans=1, width=4)


def _las(**kw):
    las = LearnedLAS(backbone="cifar_small_cnn", backbone_kwargs={"width": 4}, hidden=16, **kw)
    las.setup(_target())
    return las


def test_heads_give_valid_options_and_the_joint_log_prob_is_the_sum():
    las = _las(beta_options=(1.0, 6.0))
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    s = las.strategy(None, x, y)
    assert set(torch.round(s.eps * 255).long().tolist()) <= set(range(3, 16))
    assert set(torch.round(s.step_size * 255).long().tolist()) <= set(range(1, 7))
    assert set(s.steps.tolist()) <= set(range(3, 16)) and set(s.extras["beta"].tolist()) <= {1.0, 6.0}
    assert len(set(s.eps.tolist())) > 3  # sampled, not a constant
    dists = las.distributions(x)
    index = {"eps": (s.eps.unsqueeze(1) - las.options["eps"]).abs().argmin(1),
             "step_size": (s.step_size.unsqueeze(1) - las.options["step_size"]).abs().argmin(1),
             "steps": (s.steps.unsqueeze(1) - las.options["steps"]).abs().argmin(1),
             "beta": (s.extras["beta"].unsqueeze(1) - las.options["beta"]).abs().argmin(1)}
    joint = sum(dists[k].log_prob(index[k]) for k in dists)
    by_hand = sum(F.log_softmax(las.net(x)[k], 1).gather(1, index[k][:, None]).squeeze(1) for k in dists)
    torch.testing.assert_close(las._log_prob, joint)
    torch.testing.assert_close(joint, by_hand)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_reinforce_step_follows_the_sign_of_the_reward(sign):
    las = _las(lr=0.05)
    las.reward = lambda feedback: torch.full((32,), sign)  # a fixed per-sample reward
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    torch.manual_seed(1)
    las.net.eval()  # fixed BatchNorm statistics: the same x gives the same distribution before and after
    las.strategy(None, x, y)
    log_prob_before = las._log_prob.detach().clone()
    las.update(Feedback(None, x, y, x, None, torch.zeros(32), 0.1))
    with torch.no_grad():
        las.counter = 0
        torch.manual_seed(1)
        las.strategy(None, x, y)  # the same sampled actions (same RNG), new θ
    change = (las._log_prob.detach() - log_prob_before).mean()
    assert change * sign > 0


def test_reward_uses_the_look_ahead_weights_and_leaves_w_untouched():
    model = _target().train()
    las = _las(alpha=2.0, beta=4.0, eval_steps=3)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    loss = F.cross_entropy(model(x), y, reduction="none")
    loss.mean().backward()
    w_before = copy.deepcopy(model.state_dict())
    torch.manual_seed(3)
    reward = las.reward(Feedback(model, x, y, x, None, loss.detach(), 0.5))
    for k, v in model.state_dict().items():
        assert torch.equal(v, w_before[k]), k  # w (and BN statistics) untouched
    assert model.training  # mode restored
    hat = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p, q in zip(hat.parameters(), model.parameters()):
            p -= 0.5 * q.grad
    l3 = -F.cross_entropy(hat(x), y, reduction="none")
    from robustzoo.attacks import pgd
    from robustzoo.strategy import Strategy
    torch.manual_seed(3)
    x_eval = pgd(hat, x, y, Strategy.uniform(16, 8 / 255, 2 / 255, 3))
    l2 = -F.cross_entropy(hat(x_eval), y, reduction="none")
    torch.testing.assert_close(reward, loss.detach() + 2.0 * l2 + 4.0 * l3, rtol=1e-5, atol=1e-5)
    l3_at_w = -F.cross_entropy(model.eval()(x), y, reduction="none")
    assert not torch.allclose(l3, l3_at_w)  # ŵ really differs from w


def test_theta_updates_every_k_target_steps(tmp_path, digits_small):
    las = LearnedLAS(eps_options=(16 / 255, 32 / 255), step_options=(8 / 255,), steps_options=(1, 2),
                     backbone="cifar_small_cnn", backbone_kwargs={"width": 4}, hidden=8, update_every=3)
    updates = []
    original = las.reward
    las.reward = lambda fb: updates.append(las.counter) or original(fb)
    recipe = Recipe(name="l", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits", val_size=64,
                    policy=las, eps=32 / 255, epochs=2, batch_size=64, lr=0.05, val_steps=2)
    Trainer(recipe, tmp_path, data=digits_small, progress=False, device="cpu").fit()
    assert updates == [1, 4, 7]  # steps 0, 3, 6 of 8 (counter already advanced)


def test_bad_options():
    with pytest.raises(InvalidValueError, match="eps_options value=0"):
        LearnedLAS(eps_options=(0, 8 / 255))
    with pytest.raises(InvalidValueError, match="update_every=0"):
        LearnedLAS(update_every=0)
