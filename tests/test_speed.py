"""The fast path: AMP resolution, torch.compile, the throughput measurement and `train --benchmark`."""
import json

import pytest
import torch
from click.testing import CliRunner

from test_trainer import _recipe as trainer_recipe

from robustzoo import Fixed, Trainer, load_model
from robustzoo.benchmark import Throughput, measure
from robustzoo.cli import main
from robustzoo.errors import InvalidValueError
from robustzoo.trainer import resolve_amp


def _recipe(**kw):
    return trainer_recipe(**{"epochs": 1, "val_steps": 2, **kw})


def test_amp_auto_is_bf16_where_supported_fp16_on_older_gpus_and_fp32_on_the_cpu(monkeypatch):
    assert resolve_amp("auto", torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_amp("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_amp("auto", torch.device("cuda")) == "fp16"
    assert resolve_amp("none", torch.device("cuda")) is None and resolve_amp("fp16", torch.device("cpu")) == "fp16"
    with pytest.raises(InvalidValueError, match="amp='fp8'; expected auto, bf16, fp16 or none"):
        resolve_amp("fp8", torch.device("cpu"))


def test_fast_path_options_are_checked(tmp_path, digits_small):
    with pytest.raises(InvalidValueError, match="compile='fast'; expected one of default"):
        Trainer(_recipe(), tmp_path, data=digits_small, device="cpu", compile="fast")
    with pytest.raises(InvalidValueError, match="sync_bn=True on cpu"):
        Trainer(_recipe(), tmp_path, data=digits_small, device="cpu", sync_bn=True)


def test_a_compiled_model_trains_like_the_eager_one(tmp_path, digits_small):
    eager = Trainer(_recipe(), tmp_path / "eager", data=digits_small, device="cpu", progress=False).fit()
    compiled = Trainer(_recipe(), tmp_path / "compiled", data=digits_small, device="cpu", progress=False,
                       compile=True)
    assert compiled.model._compiled_call_impl is not None  # compiled in place: the attack and loss use it
    record = compiled.fit()
    assert record["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-4)
    assert record["val_robust_acc"] == pytest.approx(eager["val_robust_acc"], abs=2 / 64)
    reloaded = load_model(tmp_path / "compiled")  # state_dict keys are the model's own, no _orig_mod
    assert json.loads((tmp_path / "compiled" / "config.json").read_text())["compile"] == "default"
    for (k, a), (_, b) in zip(reloaded.state_dict().items(), compiled.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_throughput_arithmetic_on_a_hand_computed_case():
    t = Throughput(batch_size=100, world_size=2, full_pass_s=0.1, input_grad_pass_s=0.05, step_s=0.4,
                   mean_steps=4.0)
    assert t.full_images_per_s == pytest.approx(2000)       # 2 ranks × 100 images / 0.1 s
    assert t.images_per_s == pytest.approx(500)             # 200 / 0.4
    assert t.limit_images_per_s == pytest.approx(400)       # 200 / (0.1 × (4 + 1))
    assert t.limit_ratio == pytest.approx(1.25)
    assert t.floor_ratio == pytest.approx(0.4 / (4 * 0.05 + 0.1))
    assert t.epoch_seconds() == pytest.approx(100)          # 50,000 / 500
    assert t.to_dict()["limit_ratio"] == pytest.approx(1.25)


def test_measure_counts_the_policy_steps_and_writes_nothing(tmp_path, digits_small):
    trainer = Trainer(_recipe(policy=Fixed(eps=32 / 255, step_size=8 / 255, steps=4)), tmp_path / "run",
                      data=digits_small, device="cpu", progress=False)
    result = measure(trainer, steps=2, warmup=1)
    assert result.mean_steps == 4 and result.batch_size == 64 and result.world_size == 1
    assert 0 < result.input_grad_pass_s and 0 < result.full_pass_s < result.step_s
    assert not (tmp_path / "run").exists()


def test_cli_benchmark_mode_reports_images_per_second_and_the_limit_ratio(tmp_path):
    recipe = tmp_path / "r.py"
    recipe.write_text("from robustzoo import Fixed, PGDAT, Recipe\n"
                      "def recipe():\n"
                      "    return Recipe(name='b', model='cifar_small_cnn', model_kwargs={'width': 4},\n"
                      "                  dataset='digits', val_size=64, policy=Fixed(eps=32/255, step_size=8/255,\n"
                      "                  steps=2), defense=PGDAT(), eps=32/255, batch_size=32)\n")
    result = CliRunner().invoke(main, ["train", str(recipe), "--benchmark", "--benchmark-steps", "1",
                                       "--device", "cpu", "--out", str(tmp_path / "run")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "adversarial training step (K = 2.00)" in result.output
    assert "ratio to the (K+1) limit" in result.output and "CIFAR-10 epoch" in result.output
    assert not (tmp_path / "run").exists()
