"""TRADES and AWP: hand-computed losses, KL ascent, AWP's perturbation and restore, warmup, training."""
import json
import math

import pytest
import torch
from torch import nn

from robustzoo import AWP, PGDAT, TRADES, Fixed, Piecewise, Recipe, Strategy, Trainer, pgd
from robustzoo.defenses import kl_divergence, perturbed_weights
from robustzoo.errors import InvalidValueError


def _linear(weight):
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False)).double()
    model[1].weight.data = torch.tensor(weight, dtype=torch.float64)
    return model


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_trades_loss_equals_hand_computed_value():
    w = [[1.0, -2.0], [0.5, 1.5]]
    model = _linear(w)
    x = torch.tensor([[[[0.2, 0.6]]], [[[0.9, 0.1]]]], dtype=torch.float64)
    x_adv = torch.tensor([[[[0.25, 0.55]]], [[[0.85, 0.15]]]], dtype=torch.float64)
    y = torch.tensor([1, 0])
    expected = []
    for xi, ai, yi in zip(x.view(2, 2).tolist(), x_adv.view(2, 2).tolist(), y.tolist()):
        p = _softmax([sum(wr[k] * xi[k] for k in range(2)) for wr in w])
        q = _softmax([sum(wr[k] * ai[k] for k in range(2)) for wr in w])
        ce = -math.log(p[yi])
        kl = sum(pc * (math.log(pc) - math.log(qc)) for pc, qc in zip(p, q))
        expected.append(ce + 6.0 * kl)
    s = Strategy.uniform(2, 8 / 255, 2 / 255, 10)
    loss, logits_adv = TRADES(beta=6.0).loss(model, x, x_adv, y, s)
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(logits_adv, model(x_adv))
    # the gradient flows through the clean softmax too (as in the original, which does not detach it)
    x_req = x.clone().requires_grad_(True)
    grad_full, = torch.autograd.grad(TRADES().loss(model, x_req, x_adv, y, s)[0].sum(), x_req)
    grad_ce, = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    assert not torch.allclose(grad_full, grad_ce)
    # a per-sample beta from the strategy (LAS-TRADES) replaces the defense's beta
    s.extras["beta"] = torch.tensor([0.0, 1.0])
    loss, _ = TRADES(beta=6.0).loss(model, x, x_adv, y, s)
    p0 = _softmax([sum(wr[k] * x.view(2, 2)[0, k].item() for k in range(2)) for wr in w])
    assert loss[0].item() == pytest.approx(-math.log(p0[1]), rel=1e-12)


def test_kl_divergence_matches_definition_and_is_zero_at_x():
    logits, p = torch.randn(5, 4), torch.randn(5, 4).softmax(1)
    q = logits.softmax(1)
    torch.testing.assert_close(kl_divergence(logits, p), (p * (p.log() - q.log())).sum(1))
    assert kl_divergence(logits, logits.softmax(1)).abs().max() < 1e-6


def test_trades_attack_increases_the_kl(tiny_net):
    torch.manual_seed(0)
    x = torch.rand(32, 3, 8, 8, dtype=torch.float64)
    y = torch.randint(0, 4, (32,))
    s = Strategy(torch.full((32,), 8 / 255, dtype=torch.float64), torch.full((32,), 2 / 255, dtype=torch.float64),
                 torch.full((32,), 10))
    p = tiny_net(x).softmax(1).detach()
    torch.manual_seed(1)
    start = torch.clamp(x + 0.001 * torch.randn_like(x), 0, 1)
    torch.manual_seed(1)
    x_adv = TRADES().attack(tiny_net, x, y, s)
    # exactly PGD on the KL from the 0.001·N(0,1) start (same noise), not on CE nor from a uniform start
    torch.manual_seed(1)
    assert torch.equal(x_adv, pgd(tiny_net, x, p, s, loss=kl_divergence, start_std=0.001))
    torch.manual_seed(1)
    assert not torch.equal(x_adv, pgd(tiny_net, x, y, s, start_std=0.001))
    torch.manual_seed(1)
    assert not torch.equal(x_adv, pgd(tiny_net, x, p, s, loss=kl_divergence))  # uniform start
    kl_start, kl_adv = kl_divergence(tiny_net(start), p), kl_divergence(tiny_net(x_adv), p)
    assert torch.all(kl_adv > kl_start) and kl_adv.mean() > 100 * kl_start.mean()
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-12


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def _awp_setup(gamma=0.01):
    torch.manual_seed(0)
    model = BNNet().train()
    x = torch.rand(16, 1, 8, 8)
    y = torch.randint(0, 3, (16,))
    s = Strategy.uniform(16, 8 / 255, 2 / 255, 3)
    return model, x, model and PGDAT().attack(model, x, y, s), y, s, AWP(PGDAT(), gamma=gamma)


def test_awp_perturbation_has_norm_gamma_w_and_spares_biases_and_batchnorm():
    model, x, x_adv, y, s, awp = _awp_setup(gamma=0.01)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with awp.perturb_weights(model, x, x_adv, y, s):
        now = model.state_dict()
        for name in ("conv.weight", "fc.weight"):
            v = now[name] - before[name]
            assert v.norm().item() == pytest.approx(0.01 * before[name].norm().item(), rel=1e-4)
        for name in ("conv.bias", "fc.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                     "bn.num_batches_tracked"):
            assert torch.equal(now[name], before[name]), name
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # restored bit for bit
    assert [p.dim() for p in perturbed_weights(model)] == [4, 2]


def test_awp_direction_is_the_loss_ascent_and_the_step_uses_the_perturbed_gradient():
    model, x, x_adv, y, s, awp = _awp_setup(gamma=0.02)
    w0 = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        clean_loss = PGDAT().loss(model, x, x_adv, y, s)[0].mean()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    with awp.perturb_weights(model, x, x_adv, y, s):
        loss = PGDAT().loss(model, x, x_adv, y, s)[0].mean()
        loss.backward()
    assert loss.item() > clean_loss.item()  # the weights moved uphill
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, w, g in zip(model.parameters(), w0, grads):
        assert torch.equal(p.detach(), torch.add(w, g, alpha=-0.1))  # the step starts from w exactly, not from (w + v) - v


def test_awp_warmup_and_validation():
    model, x, x_adv, y, s, _ = _awp_setup()
    awp = AWP(PGDAT(), gamma=0.01, warmup=2)
    before = [p.clone() for p in model.parameters()]
    for epoch, perturbed in ((0, False), (1, False), (2, True), (5, True)):
        awp.start_epoch(epoch, 10)
        with awp.perturb_weights(model, x, x_adv, y, s):
            changed = not torch.equal(model.fc.weight, before[-2])
        assert changed is perturbed, epoch
    with pytest.raises(InvalidValueError, match="gamma=-1"):
        AWP(PGDAT(), gamma=-1)
    with pytest.raises(InvalidValueError, match="AWP wraps a Defense"):
        AWP("PGDAT")
    with pytest.raises(InvalidValueError, match="beta=-1"):
        TRADES(beta=-1)


@pytest.mark.parametrize("defense", [PGDAT(), TRADES(), AWP(PGDAT()), AWP(TRADES(), gamma=0.005)],
                         ids=["PGDAT", "TRADES", "AWP(PGDAT)", "AWP(TRADES)"])
def test_every_defense_trains_with_fixed_and_lowers_its_loss(tmp_path, digits_small, defense):
    recipe = Recipe(name="d", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits", val_size=64,
                    policy=Fixed(eps=32 / 255, step_size=8 / 255, steps=3), defense=defense, eps=32 / 255,
                    epochs=4, batch_size=32, lr=0.05, schedule=Piecewise((0.75,)), val_steps=3)
    Trainer(recipe, tmp_path, data=digits_small, progress=False, device="cpu").fit()
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert json.loads((tmp_path / "config.json").read_text())["recipe"]["defense"] == type(defense).__name__


def _train(tmp_path, digits_small, defense, epochs=2):
    recipe = Recipe(name="d", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits", val_size=64,
                    policy=Fixed(eps=32 / 255, step_size=8 / 255, steps=2), defense=defense, eps=32 / 255,
                    epochs=epochs, batch_size=64, lr=0.05, val_steps=2)
    trainer = Trainer(recipe, tmp_path, data=digits_small, progress=False, device="cpu")
    trainer.fit()
    return trainer.model.state_dict()


def test_the_trainer_applies_awp_and_its_warmup(tmp_path, digits_small):
    plain = _train(tmp_path / "a", digits_small, PGDAT())
    zero = _train(tmp_path / "b", digits_small, AWP(PGDAT(), gamma=0.0))
    warm = _train(tmp_path / "c", digits_small, AWP(PGDAT(), gamma=0.01, warmup=2))  # never active in 2 epochs
    awp = _train(tmp_path / "d", digits_small, AWP(PGDAT(), gamma=0.01, warmup=1))   # active in epoch 2
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert same(plain, zero) and same(plain, warm)
    assert not same(plain, awp)


def test_true_prob_smoothing_is_the_las_at_codes_form():
    """LAS-AT's `_label_smoothing(factor=0.7)`: true class 0.7, every other class 0.3/(C − 1)."""
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5], [0.0, 1.0, 0.0, 0.0]])
    y = torch.tensor([0, 3])
    target = torch.full((2, 4), 0.3 / 3)
    target[0, 0] = target[1, 3] = 0.7
    by_hand = -(target * torch.log_softmax(logits, 1)).sum(1)
    model = nn.Identity()
    loss, _ = PGDAT(true_prob=0.7).loss(model, logits, logits, y, None)
    torch.testing.assert_close(loss, by_hand)
    assert PGDAT(true_prob=0.7).smoothing(10) == pytest.approx(1 / 3)  # CIFAR-10: torch's ε = 1/3
    assert PGDAT(true_prob=0.7).smoothing(100) == pytest.approx(0.3 * 100 / 99)
    torch_form, _ = PGDAT(label_smoothing=0.3).loss(model, logits, logits, y, None)
    assert not torch.allclose(torch_form, by_hand)  # torch's 0.3 gives the true class 0.775, not 0.7
    with pytest.raises(InvalidValueError, match="both given"):
        PGDAT(label_smoothing=0.1, true_prob=0.7)


def test_trades_with_a_ce_inner_attack_attacks_the_labels_from_a_uniform_start():
    trades = TRADES(inner="ce")
    x, y = torch.rand(4, 2, 1, 1, dtype=torch.float64), torch.tensor([0, 1, 0, 1])
    model = _linear([[1.0, -2.0], [0.5, 1.0]])
    assert torch.equal(trades.attack_target(model, x, y), y) and trades.start_std is None
    s = Strategy.uniform(4, 8 / 255, 2 / 255, 0)
    s.steps[:] = 1
    torch.manual_seed(0)
    x_adv = trades.attack(model, x, y, s)
    torch.manual_seed(0)
    expected = pgd(model, x, y, s)  # CE-PGD, uniform start: the same draw
    torch.testing.assert_close(x_adv, expected)
    assert TRADES().attack_loss is kl_divergence and TRADES(inner="ce").config()["inner"] == "ce"


def test_the_final_clip_keeps_the_training_perturbation_in_the_recipe_ball(tmp_path, digits_small):
    """LAS-AWP / ECAS-AWP: the attack may use 15/255; the loss only ever sees x_adv within 8/255."""
    seen = []

    class Spy(PGDAT):
        def loss(self, model, x, x_adv, y, strategy):
            seen.append(((x_adv - x).abs().amax().item(), strategy.eps.max().item()))
            return super().loss(model, x, x_adv, y, strategy)

    for clip in (False, True):
        seen.clear()
        recipe = Recipe(name="c", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits", val_size=64,
                        policy=Fixed(eps=15 / 255, step_size=8 / 255, steps=3), defense=Spy(), eps=8 / 255,
                        epochs=1, batch_size=64, val_steps=1, final_clip=clip)
        Trainer(recipe, tmp_path / str(clip), data=digits_small, progress=False, device="cpu").fit()
        distance = max(d for d, _ in seen)
        assert max(e for _, e in seen) == pytest.approx(15 / 255)  # the strategy picked 15/255
        if clip:
            assert distance <= 8 / 255 + 1e-6 and distance == pytest.approx(8 / 255, abs=1e-6)
        else:
            assert distance > 8 / 255 + 1e-3


def test_trades_label_smoothing_smooths_the_clean_term_only():
    class Const(torch.nn.Module):
        def forward(self, x):  # logits log(1), log(3) whatever the input: p = (1/4, 3/4)
            return torch.log(torch.tensor([[1.0, 3.0]])).expand(len(x), 2)

    x = torch.zeros(1, 1, 2, 2)
    strategy = Strategy.uniform(1, 0.1, 0.1, 1)
    plain, _ = TRADES(beta=1.0).loss(Const(), x, x, torch.tensor([1]), strategy)
    smooth, _ = TRADES(beta=1.0, label_smoothing=0.2).loss(Const(), x, x, torch.tensor([1]), strategy)
    assert math.isclose(float(plain), -math.log(0.75), rel_tol=1e-6)  # KL(p || p) = 0
    # (1 - 0.2) * CE(y) + 0.2 * mean over classes of CE(c) = 0.8 * -log .75 + 0.1 * (-log .25 - log .75)
    assert math.isclose(float(smooth), 0.9 * -math.log(0.75) + 0.1 * -math.log(0.25), rel_tol=1e-6)
    assert TRADES(label_smoothing=0.1).config()["label_smoothing"] == 0.1 and "label_smoothing" not in TRADES().config()
