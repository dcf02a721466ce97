"""Per-sample PGD: projection, clamp, per-sample budgets, steps=0, loss ascent, CW margin."""
import pytest
import torch
import torch.nn.functional as F

from robustzoo.attacks import cross_entropy, cw_margin, pgd
from robustzoo.attacks.pgd import _step_counts
from robustzoo.strategy import Strategy


def _batch(n=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 4, (n,), generator=g)


def _strategy(n, seed=2):
    g = torch.Generator().manual_seed(seed)
    eps = torch.randint(3, 16, (n,), generator=g).double() / 255
    step = torch.randint(1, 7, (n,), generator=g).double() / 255
    steps = torch.randint(0, 9, (n,), generator=g)
    return Strategy(eps, step, steps)


def test_projection_and_clamp_per_sample(tiny_net):
    x, y = _batch()
    x[0] = 0.0  # at the lower pixel bound
    x[1] = 1.0  # at the upper pixel bound
    s = _strategy(len(x))
    s.steps[:] = 5
    x_adv = pgd(tiny_net, x, y, s, random_start=True)
    dist = (x_adv - x).abs().flatten(1).amax(1)
    assert torch.all(dist <= s.eps + 1e-12)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    # large steps push every pixel to the border of its own ball (or of [0,1])
    big = Strategy(s.eps, torch.full_like(s.eps, 0.5), torch.full((len(x),), 3))
    x_adv = pgd(tiny_net, x, y, big, random_start=False)
    lo, hi = (x - s.eps.view(-1, 1, 1, 1)).clamp(min=0), (x + s.eps.view(-1, 1, 1, 1)).clamp(max=1)
    on_border = torch.isclose(x_adv, lo) | torch.isclose(x_adv, hi)
    assert on_border.float().mean() > 0.99


def test_per_sample_budgets_equal_one_at_a_time(tiny_net):
    x, y = _batch(16)
    s = _strategy(16)
    assert len(set(s.steps.tolist())) > 3  # a real mix of step counts
    batched = pgd(tiny_net, x, y, s, random_start=False)
    for i in range(len(x)):
        one = Strategy(s.eps[i:i + 1], s.step_size[i:i + 1], s.steps[i:i + 1])
        alone = pgd(tiny_net, x[i:i + 1], y[i:i + 1], one, random_start=False)
        torch.testing.assert_close(batched[i:i + 1], alone, rtol=0, atol=1e-12)


def test_hand_computed_single_step():
    """One step on a linear model: x_adv = clip(x + step * sign(grad)), grad of CE is w_other - w_true."""
    w = torch.tensor([[1.0, -2.0], [-1.0, 3.0]], dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2, bias=False).double())
    model[1].weight.data = w
    x = torch.tensor([[[[0.5, 0.99]]]], dtype=torch.float64)
    y = torch.tensor([0])
    s = Strategy(torch.tensor([0.1], dtype=torch.float64), torch.tensor([0.05], dtype=torch.float64),
                 torch.tensor([1]))
    x_adv = pgd(model, x, y, s, random_start=False)
    # d CE / d x = sum_j (p_j - 1[j=y]) w_j  ∝ (w_1 - w_0) = [-2, 5]  → signs [-1, +1]
    expected = torch.tensor([[[[0.45, 1.0]]]], dtype=torch.float64)  # 0.99 + 0.05 clamped to 1
    torch.testing.assert_close(x_adv, expected)


def test_zero_steps_leave_sample_untouched(tiny_net):
    x, y = _batch(8)
    s = _strategy(8)
    s.steps[:] = torch.tensor([0, 4, 0, 2, 7, 0, 1, 3])
    for start in (True, False):
        x_adv = pgd(tiny_net, x, y, s, random_start=start)
        untouched = s.steps == 0
        assert torch.equal(x_adv[untouched], x[untouched])
        assert not torch.equal(x_adv[~untouched], x[~untouched])
    all_zero = Strategy(s.eps, s.step_size, torch.zeros(8, dtype=torch.long))
    assert torch.equal(pgd(tiny_net, x, y, all_zero), x)


def test_pgd_raises_the_loss(tiny_net):
    x, y = _batch(32)
    s = Strategy.uniform(32, 8 / 255, 2 / 255, 10)
    s.eps, s.step_size = s.eps.double(), s.step_size.double()
    before = F.cross_entropy(tiny_net(x), y, reduction="none")
    after = F.cross_entropy(tiny_net(pgd(tiny_net, x, y, s)), y, reduction="none")
    assert (after > before).float().mean() > 0.9
    assert after.mean() > before.mean() + 0.05


def test_cw_margin_hand_computed():
    logits = torch.tensor([[2.0, 5.0, 1.0], [0.0, -1.0, 3.0]])
    y = torch.tensor([0, 2])
    torch.testing.assert_close(cw_margin(logits, y), torch.tensor([3.0, -3.0]))
    torch.testing.assert_close(cross_entropy(logits, y), F.cross_entropy(logits, y, reduction="none"))


def test_custom_loss_and_tensor_targets(tiny_net):
    """A pluggable loss gets targets of any shape sliced with the active set (TRADES passes clean probs)."""
    x, y = _batch(10)
    s = _strategy(10)
    s.steps = torch.randint(1, 6, (10,))
    p_clean = tiny_net(x).softmax(1).detach()
    seen = []

    def kl(logits, target):
        seen.append(len(target))
        return F.kl_div(logits.log_softmax(1), target, reduction="none").sum(1)

    x_adv = pgd(tiny_net, x, p_clean, s, loss=kl, random_start=False)
    assert sum(seen) == int(s.steps.sum())  # cost ∝ Σ steps_i: one row per sample-step
    kl_after = F.kl_div(tiny_net(x_adv).log_softmax(1), p_clean, reduction="none").sum(1)
    assert torch.all(kl_after > 0)


def test_active_set_shrinks():
    order, counts = _step_counts(torch.tensor([3, 0, 5, 3, 1]))
    assert counts == [4, 3, 3, 1, 1]
    assert order.tolist()[:2] == [2, 0]
    assert _step_counts(torch.tensor([4, 4])) == (None, [2, 2, 2, 2])
    assert _step_counts(torch.zeros(3, dtype=torch.long)) == (None, [])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_autocast_cpu_bounds(tiny_net, dtype):
    net = tiny_net.float()
    x, y = _batch(6)
    x = x.float()
    s = Strategy.uniform(6, 8 / 255, 2 / 255, 3)
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        x_adv = pgd(net, x, y, s)
    assert x_adv.dtype == torch.float32
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6


def test_the_attack_freezes_parameters_and_puts_their_flags_back(tiny_net):
    """Compiled backward graphs compute every weight gradient unless the weights need none (pgd docstring)."""
    x, y = _batch()
    tiny_net.fc.bias.requires_grad_(False)  # a parameter frozen by the caller stays frozen
    seen = []
    hook = tiny_net.conv.register_forward_hook(lambda m, i, o: seen.append(m.weight.requires_grad))
    try:
        pgd(tiny_net, x, y, _strategy(len(x)))
    finally:
        hook.remove()
    assert seen and not any(seen)  # no weight needed a gradient inside the attack
    assert tiny_net.conv.weight.requires_grad and tiny_net.fc.weight.requires_grad
    assert not tiny_net.fc.bias.requires_grad
    assert all(p.grad is None for p in tiny_net.parameters())
