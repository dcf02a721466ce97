"""`robustzoo.evaluate`: any model, any data form, numbers equal to direct computations."""
import json

import pytest
import torch

import robustzoo
from robustzoo import RobustnessResult, evaluate
from robustzoo.errors import InvalidValueError
from robustzoo.evaluation import balanced_order


def test_balanced_order_interleaves_classes_and_keeps_their_own_order():
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    assert balanced_order(y).tolist() == [0, 3, 5, 1, 4, 2]
    sorted_by_class = torch.arange(10).repeat_interleave(100)  # like the shared CIFAR-10 tree
    first = sorted_by_class[balanced_order(sorted_by_class)[:95]]
    assert first.bincount().tolist() == [10] * 5 + [9] * 5


def test_clean_accuracy_equals_a_direct_computation_and_pgd_breaks_a_non_robust_model(digits_linear):
    model, data = digits_linear
    result = evaluate(model, data.test, attacks=("clean", "pgd20"), eps=64 / 255, n=300)
    x, y = data.test.x.float() / 255, data.test.y
    idx = balanced_order(y)[:300]
    with torch.no_grad():
        direct = (model(x[idx]).argmax(1) == y[idx]).float().mean().item()
    assert result.n == 300 and result.indices == idx.tolist()
    assert result.accuracy["clean"] == pytest.approx(direct) and direct > 0.85
    assert result.accuracy["pgd20"] <= result.accuracy["clean"]
    assert result.accuracy["pgd20"] < 0.05  # a model never trained against attacks falls to ~0
    assert y[idx].bincount().tolist() == [30] * 10  # class-balanced prefix


def test_autoattack_equals_a_direct_pyautoattack_run(digits_linear):
    from pyautoattack import AutoAttack

    model, data = digits_linear
    eps = 4 / 255
    result = evaluate(model, data.test, attacks=("aa",), eps=eps, n=64, batch_size=32, seed=3)
    idx = balanced_order(data.test.y)[:64]
    x, y = (data.test.x[idx].float() / 255).contiguous(), data.test.y[idx].contiguous()
    adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=3, device="cpu")
    adversary.verbose = False
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=32)
    with torch.no_grad():
        direct = (model(x_adv).argmax(1) == y).float().mean().item()
    assert result.accuracy["aa"] == pytest.approx(direct)
    again = evaluate(model, data.test, attacks=("aa",), eps=eps, n=64, batch_size=32, seed=3)
    assert again.accuracy == result.accuracy  # same seed, same images, same numbers


def test_every_data_form_gives_the_same_numbers(digits_linear, tmp_path):
    model, data = digits_linear
    x, y = data.test.x.float() / 255, data.test.y
    forms = [data, data.test, (x, y), (data.test.x, y), torch.utils.data.TensorDataset(x, y),
             torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=50)]
    results = [evaluate(model, f, attacks=("clean", "pgd10"), eps=16 / 255, n=100) for f in forms]
    assert all(r.accuracy == results[0].accuracy for r in results)
    path = results[0].save(tmp_path / "r.json")
    loaded = RobustnessResult.load(path)
    assert loaded.accuracy == results[0].accuracy and loaded.indices == results[0].indices
    assert json.loads(path.read_text())["threat_model"] == {"norm": "Linf", "eps": 16 / 255}
    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(results[0])
    assert "pgd10" in console.export_text()
    assert robustzoo.evaluate is evaluate


def test_bad_inputs(digits_linear):
    model, data = digits_linear
    with pytest.raises(InvalidValueError, match="n=0"):
        evaluate(model, data.test, n=0)
    with pytest.raises(InvalidValueError, match="data of type str"):
        evaluate(model, "cifar10")
    with pytest.raises(InvalidValueError, match="3 images but 2 labels"):
        evaluate(model, (torch.rand(3, 1, 8, 8), torch.zeros(2, dtype=torch.long)))


def test_amp_runs_the_model_under_autocast_and_is_recorded(digits_linear):
    model, data = digits_linear
    calls = []
    hook = model[1].register_forward_hook(lambda m, i, o: calls.append(o.dtype))
    try:
        fp32 = evaluate(model, data.test, attacks=("clean", "pgd10"), eps=4 / 255, n=200, sanity=False)
        assert set(calls) == {torch.float32}
        calls.clear()
        bf16 = evaluate(model, data.test, attacks=("clean", "pgd10"), eps=4 / 255, n=200, sanity=False, amp="bf16")
    finally:
        hook.remove()
    assert set(calls) == {torch.bfloat16}  # every pass (guards, attack, re-scoring) ran under autocast
    assert bf16.record["amp"] == "bf16" and fp32.record["amp"] is None
    agree = sum(a == b for a, b in zip(bf16.outcomes["clean"], fp32.outcomes["clean"])) / 200
    assert agree >= 0.97 and abs(bf16.accuracy["pgd10"] - fp32.accuracy["pgd10"]) <= 0.05
    assert not model.training
    with pytest.raises(InvalidValueError, match="amp='fp8'; expected none, bf16 or fp16"):
        evaluate(model, data.test, n=10, amp="fp8")


def test_cuda_rng_states_are_restored_in_device_order():
    from robustzoo.checkpoint import cuda_states

    state = {"cpu": torch.zeros(1), **{f"cuda{i}": torch.tensor([i]) for i in range(12)}}
    assert [int(t) for t in cuda_states(state)] == list(range(12))  # cuda10 after cuda9, not after cuda1
