"""Weight averaging (timm's ModelEmaV3): the hand-computed average, what is validated and saved, exact resume."""
import json

import pytest
import torch
from torch import nn

from robustzoo import EMA, PGDAT, Fixed, Piecewise, Recipe, Trainer, load_model
from robustzoo.checkpoint import load_checkpoint
from robustzoo.ema import as_ema
from robustzoo.errors import InvalidValueError, RunExistsError
from robustzoo.zoo.catalog import card_from_run


def _recipe(**kw):
    base = dict(name="ema", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits", val_size=64,
                policy=Fixed(eps=32 / 255, step_size=8 / 255, steps=2), defense=PGDAT(), eps=32 / 255, epochs=2,
                batch_size=64, lr=0.05, schedule=Piecewise((0.5,)), val_steps=2, ema=EMA(decay=0.5))
    base.update(kw)
    return Recipe(**base)


def test_the_average_equals_a_hand_computation_and_is_what_the_run_saves(tmp_path, digits_small):
    trainer = Trainer(_recipe(epochs=1), tmp_path, data=digits_small, progress=False, device="cpu")
    after_steps, step = [], trainer.optimizer.step

    def recording_step(*a, **kw):  # the raw weights after each optimizer step
        out = step(*a, **kw)
        after_steps.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
        return out

    trainer.optimizer.step = recording_step
    trainer.fit()
    assert len(after_steps) == 4  # 256 images, batch 64
    # timm: decay 0 at the first update (the average starts as the weights), then 0.5
    expected = dict(after_steps[0])
    for w in after_steps[1:]:
        expected = {k: 0.5 * e + 0.5 * w[k] if e.is_floating_point() else w[k] for k, e in expected.items()}
    average = trainer.ema.module.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(average[k], v, rtol=1e-6, atol=1e-7, msg=k)
    assert not torch.equal(average["model.fc.weight"], trainer.model.state_dict()["model.fc.weight"])
    # best.safetensors and load_model(last.safetensors) are the average; the training state keeps the raw weights
    best, _ = load_checkpoint(tmp_path / "best.safetensors")
    state, _ = load_checkpoint(tmp_path / "last.safetensors")
    for k, v in average.items():
        assert torch.equal(best[k], v) and torch.equal(state[f"ema.{k}"], v), k
        assert torch.equal(state[f"model.{k}"], trainer.model.state_dict()[k]), k
    loaded = load_model(tmp_path / "last.safetensors").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in average.items())
    # validation ran on the average: the epoch's record equals validating the average again
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert trainer.validate() == {"val_clean_acc": record["val_clean_acc"], "val_robust_acc": record["val_robust_acc"]}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["recipe"]["ema"]["decay"] == 0.5
    card = card_from_run(tmp_path, config)
    assert card.weight_averaging["decay"] == 0.5 and "weight averaging: EMA, decay 0.5" in card.render()


class Crash(Exception):
    pass


def test_a_crashed_run_resumes_the_average_exactly(tmp_path, digits_small):
    full = Trainer(_recipe(epochs=3), tmp_path / "full", data=digits_small, progress=False, device="cpu")
    full.fit()
    policy, calls = Fixed(eps=32 / 255, step_size=8 / 255, steps=2), {"n": 0}
    original = policy.strategy

    def strategy(model, x, y):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2, batch 2
            raise Crash
        return original(model, x, y)

    policy.strategy = strategy
    with pytest.raises(Crash):
        Trainer(_recipe(epochs=3, policy=policy), tmp_path / "run", data=digits_small, progress=False,
                device="cpu").fit()
    torch.manual_seed(999)
    resumed = Trainer(_recipe(epochs=3), tmp_path / "run", data=digits_small, progress=False, device="cpu")
    resumed.fit(resume=True)
    for (k, a), (_, b) in zip(full.ema.module.state_dict().items(), resumed.ema.module.state_dict().items()):
        assert torch.equal(a, b), k
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_resume_refuses_to_add_or_drop_the_average(tmp_path, digits_small):
    Trainer(_recipe(epochs=1, ema=None), tmp_path / "plain", data=digits_small, progress=False, device="cpu").fit()
    with pytest.raises(RunExistsError, match="keeps no weight average"):
        Trainer(_recipe(epochs=2), tmp_path / "plain", data=digits_small, progress=False, device="cpu").fit(resume=True)
    Trainer(_recipe(epochs=1), tmp_path / "avg", data=digits_small, progress=False, device="cpu").fit()
    with pytest.raises(RunExistsError, match="ema"):
        Trainer(_recipe(epochs=2, ema=None), tmp_path / "avg", data=digits_small, progress=False,
                device="cpu").fit(resume=True)


def test_train_ema_option_overrides_the_recipe(tmp_path):
    from click.testing import CliRunner

    from robustzoo.cli import main

    (tmp_path / "recipe.py").write_text(
        "from robustzoo import Fixed, Recipe\n"
        "def recipe():\n"
        "    return Recipe(name='e', model='cifar_small_cnn', model_kwargs={'width': 4}, dataset='digits',\n"
        "                  val_size=32, policy=Fixed(eps=0.1, step_size=0.05, steps=1), epochs=1, batch_size=64)\n")
    result = CliRunner().invoke(main, ["train", str(tmp_path / "recipe.py"), "--ema", "0.9", "--out",
                                       str(tmp_path / "run"), "--device", "cpu", "--quiet", "--train-subset", "128"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["recipe"]["ema"]["decay"] == 0.9
    bad = CliRunner().invoke(main, ["train", str(tmp_path / "recipe.py"), "--ema", "1.5", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--ema" in bad.output


def test_ema_settings_and_bad_values():
    assert as_ema(0.999) == EMA(decay=0.999) and as_ema(None) is None
    assert _recipe(ema=0.9).ema == EMA(decay=0.9)
    ema = EMA(decay=0.99, warmup=True).build(nn.Linear(2, 2))
    assert ema.get_decay(1) == 0.0 and ema.get_decay(11) == pytest.approx(1 - (1 + 10) ** (-2 / 3))
    assert ema.get_decay(10 ** 6) == 0.99  # capped at decay
    for bad in (1.0, 0.0, -0.5):
        with pytest.raises(InvalidValueError, match="ema decay"):
            EMA(decay=bad)
    with pytest.raises(InvalidValueError, match="ema='yes'"):
        as_ema("yes")
    assert "ema" not in _recipe(ema=None).summary()  # runs without averaging keep their old records
