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
    kw = {"update_every": 1, **kw}
    las = LearnedLAS(backbone="cifar_small_cnn", backbone_kwargs={"width": 4}, **kw)
    las.setup(_target())
    return las


def test_heads_give_valid_options_and_the_joint_log_prob_is_the_sum():
    las = _las(beta_options=(1.0, 6.0))
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    s = las.strategy(None, x, y)
    assert set(torch.round(s.eps * 255).long().tolist()) <= set(range(3, 16))  # the code's LAS-PGD ranges
    assert set(torch.round(s.step_size * 255).long().tolist()) <= set(range(1, 6))
    assert set(s.steps.tolist()) <= set(range(3, 15)) and set(s.extras["beta"].tolist()) <= {1.0, 6.0}
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
    las = _las(lr=0.05, grad_clip=None)
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


def _look_ahead_by_hand(model, lr, wd):
    hat = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p, q in zip(hat.parameters(), model.parameters()):
            p -= lr * (q.grad + wd * q)
    return hat


def test_paper_reward_uses_the_look_ahead_weights_and_leaves_w_untouched():
    model = _target().train()
    las = _las(reward="paper", alpha=2.0, beta=4.0, eval_steps=3)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    loss = F.cross_entropy(model(x), y, reduction="none")
    loss.mean().backward()
    w_before = copy.deepcopy(model.state_dict())
    torch.manual_seed(3)
    reward = las.reward(Feedback(model, x, y, x, None, loss.detach(), 0.5, weight_decay=5e-4))
    for k, v in model.state_dict().items():
        assert torch.equal(v, w_before[k]), k  # w (and BN statistics) untouched
    assert model.training  # mode restored
    hat = _look_ahead_by_hand(model, 0.5, 5e-4)  # ŵ = w − lr·(∇L1 + wd·w): the code's fresh SGD step
    l3 = -F.cross_entropy(hat(x), y, reduction="none")
    from robustzoo.attacks import pgd
    from robustzoo.strategy import Strategy
    torch.manual_seed(3)
    x_eval = pgd(hat, x, y, Strategy.uniform(16, 8 / 255, 2 / 255, 3))
    l2 = -F.cross_entropy(hat(x_eval), y, reduction="none")
    torch.testing.assert_close(reward, loss.detach() + 2.0 * l2 + 4.0 * l3, rtol=1e-5, atol=1e-5)
    l3_at_w = -F.cross_entropy(model.eval()(x), y, reduction="none")
    assert not torch.allclose(l3, l3_at_w)  # ŵ really differs from w


class Scores(torch.nn.Module):
    """A 'model' whose predictions are fixed by the input: class = round(10·x[0, 0, 0]) (no gradient use)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        cls = (x[:, 0, 0, 0] * 10).round().long().clamp(0, 9)
        return F.one_hot(cls, 10).float() * 5 * self.w + 0 * x.flatten(1).sum(1, keepdim=True)


def test_code_reward_is_clamped_ce_plus_weighted_batch_accuracies():
    """R = clamp(mean CE(x_adv), 0, 10) + α·robust acc(ŵ) + β·clean acc(ŵ), one scalar (LAS_AT_train_cifar10.py:365-411)."""
    model = Scores()
    x = torch.zeros(8, 1, 2, 2)
    x[:, 0, 0, 0] = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])  # predicts 1..8
    y = torch.tensor([1, 2, 3, 4, 0, 0, 0, 0])  # 4 of 8 correct on clean images
    x_adv = x.clone()
    x_adv[:, 0, 0, 0] = 0.0  # predicts 0: the 4 samples of class 0 are right, the rest wrong
    model.w.grad = torch.zeros(())
    las = LearnedLAS(alpha=4.0, beta=2.0, eval_eps=1e-6, eval_step_size=1e-6, eval_steps=1)
    las.net = object()  # the reward needs no strategy network
    fb = Feedback(model, x, y, x_adv, None, torch.zeros(8), 0.1)
    ce = F.cross_entropy(model(x_adv), y).item()  # classes at one-hot·5: CE per sample is known
    expected = min(max(ce, 0.0), 10.0) + 4.0 * 0.5 + 2.0 * 0.5  # eval PGD moves x by 1e-6: still 4/8 robust
    reward = las.reward(fb)
    assert reward.shape == (8,) and torch.allclose(reward, torch.full((8,), expected), atol=1e-5)
    robust_quarter = F.one_hot(torch.tensor([1, 2, 9, 9, 9, 9, 9, 9]), 10).float() * 5  # 2 of 8 right
    las._worst_logits = lambda model, x, y: robust_quarter  # robust acc 0.25 ≠ clean 0.5: the weights tell apart
    assert torch.allclose(las.reward(fb), torch.full((8,), min(ce, 10.0) + 4.0 * 0.25 + 2.0 * 0.5), atol=1e-5)
    model.w.data.fill_(10.0)  # logits ×10: CE on x_adv ≈ 50 > 10
    assert F.cross_entropy(model(x_adv), y).item() > 10
    assert torch.allclose(las.reward(fb), torch.full((8,), 10.0 + 4.0 * 0.25 + 2.0 * 0.5), atol=1e-5)  # R1 clamped
    step = LearnedLAS(r1="step-loss", r1_clip=20.0)
    step.net = object()
    fb_loss = Feedback(model, x, y, x_adv, None, torch.full((8,), 30.0), 0.1)
    assert torch.allclose(step.reward(fb_loss), torch.full((8,), 20.0 + 4.0 * 0.5 + 2.0 * 0.5), atol=1e-5)


def test_gradient_clipping_bounds_the_strategy_gradient_norm():
    las = _las(grad_clip=1.0, lr=0.0)  # lr 0: θ stays, the clipped gradient is left in .grad
    las.reward = lambda feedback: torch.full((32,), 1e4)  # a huge reward: a huge raw gradient
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    las.strategy(None, x, y)
    las.update(Feedback(None, x, y, x, None, torch.zeros(32), 0.1))
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in las.net.parameters() if p.grad is not None))
    assert norm <= 1.0 + 1e-4
    unclipped = _las(grad_clip=None, lr=0.0)
    unclipped.reward = las.reward
    unclipped.strategy(None, x, y)
    unclipped.update(Feedback(None, x, y, x, None, torch.zeros(32), 0.1))
    assert torch.sqrt(sum((p.grad ** 2).sum() for p in unclipped.net.parameters() if p.grad is not None)) > 10


def test_strategy_lr_follows_the_target_schedule_when_asked():
    las = _las(lr=1e-4, follow_target_lr=True)
    las.reward = lambda feedback: torch.ones(32)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    las.strategy(None, x, y)
    las.update(Feedback(None, x, y, x, None, torch.zeros(32), 0.01, base_lr=0.1))  # target at 1/10 of its LR
    assert las.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_the_code_strategy_network_reads_pooled_features_from_raw_pixels():
    las = _las()
    assert all(h.in_features == las.net.backbone.model.num_features for h in las.net.heads.values())
    assert torch.equal(las.net.backbone.mean, torch.zeros_like(las.net.backbone.mean))
    assert torch.equal(las.net.backbone.std, torch.ones_like(las.net.backbone.std))
    paper = _las(hidden=16, normalize_input=True)
    assert all(h.in_features == 16 for h in paper.net.heads.values())


@pytest.mark.parametrize("k, expected", [(1, [1, 2, 3, 4, 5, 6, 7, 8]), (3, [3, 6]), (20, [])])
def test_theta_updates_every_k_target_steps(tmp_path, digits_small, k, expected):
    """The code updates at steps k, 2k, ... (1-based; LAS_AT_train_cifar10.py:595-596): LAS-TR k=1, A100 10, PGD 20."""
    las = LearnedLAS(eps_options=(16 / 255, 32 / 255), step_options=(8 / 255,), steps_options=(1, 2),
                     backbone="cifar_small_cnn", backbone_kwargs={"width": 4}, update_every=k)
    updates = []
    original = las.reward
    las.reward = lambda fb: updates.append(las.counter) or original(fb)
    recipe = Recipe(name="l", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits", val_size=64,
                    policy=las, eps=32 / 255, epochs=2, batch_size=64, lr=0.05, val_steps=2)
    Trainer(recipe, tmp_path, data=digits_small, progress=False, device="cpu").fit()
    assert updates == expected  # the counter after the step: steps k, 2k, ... of 8


def test_bad_options():
    with pytest.raises(InvalidValueError, match="eps_options value=0"):
        LearnedLAS(eps_options=(0, 8 / 255))
    with pytest.raises(InvalidValueError, match="update_every=0"):
        LearnedLAS(update_every=0)
