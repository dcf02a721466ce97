"""ECAS: Eq. 2 schedules, entropy routing (Algorithm 1), step-size rule, resume state, validation, training."""
import json
import math

import pytest
import torch
from torch import nn

import robustzoo
from robustzoo.errors import InvalidValueError
from robustzoo.policies.ecas import CyclicEntropyECAS, mean_entropy

SPACE = [i / 255 for i in range(3, 13)]  # the PGD-AT eps space


class FixedLogits(nn.Module):
    """Returns the logits stored for each sample, looked up by the sample's first pixel (its index)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.bn = nn.BatchNorm1d(1)  # running stats must not move

    def forward(self, x):
        self.bn(x.flatten(1)[:, :1])
        return self.logits[x.flatten(1)[:, 0].long()]


def _batch(kinds):
    """Logits per kind: 'high' uniform (entropy log 10 = 2.303), 'low' one-hot-ish (≈0), 'mid' ≈1.8."""
    rows = {"high": torch.zeros(10), "low": torch.tensor([20.0] + [0.0] * 9),
            "mid": torch.tensor([2.0] + [0.0] * 9)}
    logits = torch.stack([rows[k] for k in kinds])
    x = torch.arange(len(kinds), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    return FixedLogits(logits), x, torch.zeros(len(kinds), dtype=torch.long)


def test_cyclic_schedule_is_eq2_with_wrap_around():
    p = CyclicEntropyECAS(entropy=False)
    e_min, e_max, length = 3 / 255, 12 / 255, 10
    for epoch in (0, 1, 5, 9, 10, 13, 27, 109):
        p.start_epoch(epoch, 110)
        by_hand = e_min + (e_max - e_min) / (length - 1) * (epoch % length)  # Eq. 2, alpha = 1 epoch
        assert p.base_eps == pytest.approx(by_hand, abs=1e-12)
        assert p.strategy(nn.Identity(), torch.zeros(3, 1), None).eps.tolist() == pytest.approx([by_hand] * 3)
    p.start_epoch(10, 110)
    assert p.base_eps == 3 / 255  # wraps to the smallest


def test_linear_fixed_and_cyclic_batch_schedules():
    lin = CyclicEntropyECAS(scheduler="linear", entropy=False)
    for epoch, want in ((0, 3), (5, 3 + 9 * 5 / 10), (10, 12)):
        lin.start_epoch(epoch, 11)
        assert lin.base_eps == pytest.approx(want / 255)
    fixed = CyclicEntropyECAS(scheduler="fixed", fixed_eps=6 / 255, entropy=False)
    for epoch in (0, 3, 7):
        fixed.start_epoch(epoch, 8)
        assert fixed.base_eps == 6 / 255
    cb = CyclicEntropyECAS(scheduler="cyclic-batch", entropy=False)
    x = torch.zeros(2, 1)
    seen = []
    for epoch in range(2):
        cb.start_epoch(epoch, 2)
        seen += [cb.strategy(nn.Identity(), x, None).eps[0].item() for _ in range(7)]
    assert seen == pytest.approx([SPACE[i % 10] for i in range(14)])  # one step per batch, across epochs


def test_entropy_routing_per_sample_in_eval_mode():
    kinds = ["high"] * 3 + ["low"] * 300 + ["mid"] * 4
    model, x, y = _batch(kinds)
    model.train()
    p = CyclicEntropyECAS(seed=1, entropy_mode="eval", big_eps="sample")
    p.start_epoch(4, 10)  # base 7/255
    s = p.strategy(model, x, y)
    assert model.training and model.bn.num_batches_tracked == 0  # mode restored, BN untouched
    eps = s.eps
    assert torch.equal(eps[:3], torch.full((3,), 3 / 255))
    low = eps[3:303]
    assert set(low.tolist()) == {torch.tensor(v).item() for v in SPACE[-3:]}  # all three largest appear
    assert torch.equal(eps[303:], torch.full((4,), 7 / 255))
    assert s.extras["adjusted"].dtype == torch.bool
    assert s.extras["adjusted"].tolist() == [True] * 303 + [False] * 4
    assert s.steps.tolist() == [10] * len(kinds) and s.steps.device.type == "cpu"
    assert s.steps.dtype == torch.long
    assert s.step_size.tolist() == pytest.approx([2 * (7 / 255) / 10] * len(kinds))  # code: eps/iters*2


class BNDropoutNet(nn.Module):
    """Logits = Dropout(BN(500·x)): in eval mode (running mean 0, var 1) the logits are huge, so the entropy
    is ≈ 0; in train mode BN standardizes them over the batch and dropout zeroes half: a high entropy."""

    def __init__(self):
        super().__init__()
        self.bn, self.drop = nn.BatchNorm1d(10, affine=False), nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.bn(500 * x.flatten(1)))


def test_code_routing_uses_train_mode_entropy_and_one_big_eps_per_batch():
    torch.manual_seed(0)
    model, x = BNDropoutNet(), torch.rand(64, 10, 1, 1)
    model.eval()  # the trainer's mode, restored after
    code = CyclicEntropyECAS(h_high=1.2, h_low=0.5, seed=4)  # defaults: entropy_mode="train", big_eps="batch"
    code.start_epoch(4, 10)  # base 7/255
    torch.manual_seed(5)
    s = code.strategy(model, x, None)
    assert not model.training and model.bn.num_batches_tracked == 1  # ran in train mode: BN moved, as the code
    model.bn.reset_running_stats()
    torch.manual_seed(5)  # the same dropout mask: the code's entropy, by hand
    with torch.no_grad():
        h = torch.distributions.Categorical(logits=model.train()(x)).entropy()
    model.eval()
    high, low = h > 1.2, h < 0.5
    assert high.any() and (~high & ~low).any()
    expected = torch.where(high, 3 / 255, torch.where(low, s.eps, 7 / 255))
    assert torch.allclose(s.eps, expected) and torch.equal(s.extras["adjusted"], high | low)
    if low.any():
        assert len(set(s.eps[low].tolist())) == 1  # one big eps for the whole batch
    model.bn.reset_running_stats()  # mean 0, var 1: eval-mode logits are 500·x, the entropy ≈ 0
    evaluated = CyclicEntropyECAS(h_high=1.2, h_low=0.5, seed=4, entropy_mode="eval")
    evaluated.start_epoch(4, 10)
    e = evaluated.strategy(model, x, None)
    assert model.bn.num_batches_tracked == 0  # eval mode: BN untouched
    assert e.extras["adjusted"].float().mean() > 0.9 and (e.eps[e.extras["adjusted"]] >= 10 / 255).all()
    assert not torch.equal(e.eps, s.eps)


def test_one_big_eps_per_batch_varies_across_batches():
    model, x, y = _batch(["low"] * 50)
    p = CyclicEntropyECAS(seed=2, big_options=(8 / 255, 9 / 255))  # ECAS-TRADES's {8, 9}
    draws = [p.strategy(model, x, y).eps for _ in range(20)]
    assert all(len(set(d.tolist())) == 1 for d in draws)
    assert {round(d[0].item() * 255) for d in draws} == {8, 9}


def test_thresholds_and_no_entropy():
    model, x, y = _batch(["high", "low", "mid"])
    p = CyclicEntropyECAS(h_high=5.0, h_low=0.0)  # nothing crosses: all scheduled
    assert p.strategy(model, x, y).eps.tolist() == pytest.approx([3 / 255] * 3)
    p = CyclicEntropyECAS(h_high=1.0, h_low=0.5)  # mid (≈1.8) now counts as high entropy
    assert p.strategy(model, x, y).eps[2].item() == pytest.approx(3 / 255)
    off = CyclicEntropyECAS(entropy=False, step_size=2 / 255, steps=7)
    off.start_epoch(2, 10)
    s = off.strategy(model, x, y)
    assert s.eps.tolist() == pytest.approx([5 / 255] * 3) and not s.extras["adjusted"].any()
    assert s.step_size.tolist() == pytest.approx([2 / 255] * 3) and s.steps.tolist() == [7] * 3


def test_mean_entropy():
    model, x, _ = _batch(["high", "low"])
    assert mean_entropy(model, x, batch_size=1) == pytest.approx(math.log(10) / 2, abs=1e-4)
    assert mean_entropy(model, [(x[:1], None), (x[1:], None)]) == pytest.approx(math.log(10) / 2, abs=1e-4)


@pytest.mark.parametrize("scheduler", ["cyclic", "cyclic-batch"])
def test_state_dict_round_trip(scheduler):
    model, x, y = _batch(["low"] * 64 + ["high", "mid"])
    a = CyclicEntropyECAS(scheduler=scheduler, seed=3, big_eps="sample")
    a.start_epoch(6, 10)
    for _ in range(3):
        a.strategy(model, x, y)
    b = CyclicEntropyECAS(scheduler=scheduler, seed=99, big_eps="sample")
    b.load_state_dict({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in a.state_dict().items()})
    b.load_local_state_dict({"rng": a.local_state_dict()["rng"].clone()})  # the generator is per rank
    assert "rng" not in a.state_dict()
    for _ in range(3):
        sa, sb = a.strategy(model, x, y), b.strategy(model, x, y)
        assert torch.equal(sa.eps, sb.eps) and torch.equal(sa.extras["adjusted"], sb.extras["adjusted"])
        assert torch.equal(sa.step_size, sb.step_size)
    c = CyclicEntropyECAS(scheduler=scheduler, seed=99, big_eps="sample")  # a different seed must differ: the state matters
    c.start_epoch(6, 10)
    assert not torch.equal(c.strategy(model, x, y).eps, a.strategy(model, x, y).eps)


@pytest.mark.parametrize("kwargs, named", [
    (dict(eps_space=[]), "eps_space=[]"), (dict(eps_space=[3 / 255, 300 / 255]), "eps_space[1]"),
    (dict(scheduler="cosine"), "'cosine'"), (dict(h_high=1.0, h_low=2.0), "h_low=2.0"),
    (dict(steps=0), "steps=0"), (dict(fixed_eps=2.0), "fixed_eps=2.0")])
def test_bad_inputs(kwargs, named):
    with pytest.raises(InvalidValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        CyclicEntropyECAS(**kwargs)


def test_config_is_json_and_rebuilds():
    p = CyclicEntropyECAS(eps_space=[9 / 255, 5 / 255, 7 / 255], scheduler="linear", seed=2)
    cfg = json.loads(json.dumps(p.config()))
    assert cfg["eps_space"] == [5 / 255, 7 / 255, 9 / 255] and cfg["h_high"] == 2.274 and cfg["h_low"] == 1.3
    assert CyclicEntropyECAS(**cfg).config() == cfg


def test_trains_two_epochs_with_telemetry(tmp_path, digits_small):
    recipe = robustzoo.Recipe(name="e", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits",
                              val_size=64, policy=CyclicEntropyECAS(h_high=2.0, h_low=1.0), eps=32 / 255,
                              epochs=2, batch_size=64, lr=0.05, val_steps=2)
    robustzoo.Trainer(recipe, tmp_path, progress=False, device="cpu", data=digits_small).fit()
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2]
    for ln in lines:
        assert 0.0 <= ln["strategy"]["mean"]["adjusted"] <= 1.0 and ln["mean_steps"] == 10
    assert lines[0]["strategy"]["hist"]["step_size"] == {"1": 4 * 64}  # 2·3/255/10 = 0.6/255 → bin 1
