"""The trainer: loss goes down, files are written, resume after a crash ends with identical weights."""
import json

import pytest
import torch

from robustzoo import AWP, PGDAT, TRADES, Fixed, Piecewise, Recipe, Trainer, load_model
from robustzoo.checkpoint import flatten_state, load_checkpoint, save_checkpoint, unflatten_state, write_json
from robustzoo.errors import CheckpointError, InvalidValueError, RunExistsError


def _recipe(**kw):
    base = dict(name="t", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits", val_size=64,
                policy=Fixed(eps=32 / 255, step_size=8 / 255, steps=3), defense=PGDAT(), eps=32 / 255,
                epochs=3, batch_size=64, lr=0.05, schedule=Piecewise((0.5,)), val_steps=3)
    base.update(kw)
    return Recipe(**base)


def test_training_lowers_the_loss_and_writes_the_run(tmp_path, digits_small):
    record = Trainer(_recipe(epochs=4), tmp_path, data=digits_small, progress=False, device="cpu").fit()
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2, 3, 4]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert lines[-1]["mean_steps"] == 3 and lines[-1]["mean_eps"] == pytest.approx(32 / 255)
    assert lines[-1]["lr"] == pytest.approx(0.005)  # piecewise drop at half of the run
    for name in ("config.json", "last.safetensors", "last.json", "best.safetensors"):
        assert (tmp_path / name).is_file()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    model = load_model(tmp_path)
    assert not model.training and model.config["architecture"] == "cifar_small_cnn"
    assert record["val_robust_acc"] <= record["val_clean_acc"]


class Crash(Exception):
    pass


def crash_at(policy, call: int = 6):
    """`policy`, made to raise Crash at its `call`-th batch (the default: epoch 2 of 4 steps, mid-way)."""
    original, calls = policy.strategy, {"n": 0}

    def strategy(model, x, y):
        calls["n"] += 1
        if calls["n"] == call:
            raise Crash
        return original(model, x, y)

    policy.strategy = strategy
    return policy


@pytest.mark.parametrize("precision", [{}, dict(amp="bf16", channels_last=True), dict(amp="fp16")],
                         ids=["fp32", "bf16+channels_last", "fp16"])  # fp16: the grad scaler's state resumes too
@pytest.mark.parametrize("defense", [PGDAT, lambda: AWP(TRADES(), gamma=0.01, warmup=1)], ids=["PGDAT", "AWP(TRADES)"])
def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, digits_small, defense, precision):
    full = Trainer(_recipe(defense=defense()), tmp_path / "full", data=digits_small, progress=False, device="cpu",
                   **precision)
    full.fit()

    policy = crash_at(Fixed(eps=32 / 255, step_size=8 / 255, steps=3))
    crashed = Trainer(_recipe(policy=policy, defense=defense()), tmp_path / "run", data=digits_small,
                      progress=False, device="cpu", **precision)
    with pytest.raises(Crash):
        crashed.fit()
    assert load_checkpoint(tmp_path / "run" / "last.safetensors")[1]["epoch"] == 1
    torch.manual_seed(12345)  # a new process would start from another RNG state: resume must restore it
    resumed = Trainer(_recipe(defense=defense()), tmp_path / "run", data=digits_small, progress=False, device="cpu",
                      **precision)
    resumed.fit(resume=True)
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert resumed.step == full.step
    assert resumed.optimizer.param_groups[0]["base_lr"] == 0.05  # what policies following the LR read
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2, 3]


def test_resume_refuses_another_model(tmp_path, digits_small):
    Trainer(_recipe(epochs=1), tmp_path, data=digits_small, progress=False, device="cpu").fit()
    other = Trainer(_recipe(model_kwargs={"width": 4}), tmp_path, data=digits_small, progress=False, device="cpu")
    with pytest.raises(RunExistsError, match=r"cannot resume .*model_kwargs.width: 8 → 4"):
        other.fit(resume=True)


def test_attack_runs_in_eval_mode_by_default(tmp_path, digits_small):
    modes = []

    class Spy(PGDAT):
        def attack(self, model, x, y, strategy):
            modes.append(model.training)
            return super().attack(model, x, y, strategy)

    Trainer(_recipe(epochs=1, defense=Spy()), tmp_path / "a", data=digits_small, progress=False,
            device="cpu").fit()
    Trainer(_recipe(epochs=1, defense=Spy(), attack_train_mode=True), tmp_path / "b", data=digits_small,
            progress=False, device="cpu").fit()
    assert modes == [False] * 4 + [True] * 4


def test_bf16_autocast_and_channels_last_train_on_cpu(tmp_path, digits_small):
    t = Trainer(_recipe(epochs=2), tmp_path, data=digits_small, progress=False, device="cpu", amp="bf16",
                channels_last=True)
    t.fit()
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    with pytest.raises(InvalidValueError, match="amp='fp8'"):
        Trainer(_recipe(), tmp_path, data=digits_small, amp="fp8")


def test_recipe_validation():
    with pytest.raises(InvalidValueError, match="eps=0"):
        _recipe(eps=0)
    with pytest.raises(InvalidValueError, match="epochs=0"):
        _recipe(epochs=0)


def test_state_flattening_round_trip(tmp_path):
    opt_state = {"state": {0: {"momentum_buffer": torch.ones(3)}, 1: {"step": torch.tensor(4.0)}},
                 "param_groups": [{"lr": 0.1, "params": [0, 1], "nesterov": False, "foreach": None}]}
    tensors = {}
    skeleton = flatten_state(opt_state, "optimizer", tensors)
    save_checkpoint(tmp_path / "c.safetensors", tensors, {"optimizer": skeleton})
    loaded, meta = load_checkpoint(tmp_path / "c.safetensors")
    back = unflatten_state(meta["optimizer"], loaded)
    assert back["param_groups"] == opt_state["param_groups"]
    assert torch.equal(back["state"][0]["momentum_buffer"], torch.ones(3))
    assert set(back["state"]) == {0, 1}


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    write_json(tmp_path / "r.json", {"a": 1})

    class Unserializable:
        pass

    with pytest.raises(TypeError):
        write_json(tmp_path / "r.json", {"a": Unserializable()})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    import os
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_a_pickle_is_never_loaded(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a valid safetensors checkpoint"):
        load_checkpoint(tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_bad_training_setups_fail_clearly(tmp_path, digits_small):
    from robustzoo.data import Split

    tiny = load_digits_subset(digits_small, 10)
    with pytest.raises(InvalidValueError, match="10 training images make no full batch of 64"):
        Trainer(_recipe(), tmp_path, data=tiny, progress=False, device="cpu").fit()
    with pytest.raises(InvalidValueError, match=r"does not take \['depth_of_field'\]"):
        Trainer(_recipe(model_kwargs={"depth_of_field": 3}), tmp_path, data=digits_small, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidValueError, match="no CUDA device"):
            Trainer(_recipe(), tmp_path, data=digits_small, device="cuda")


def load_digits_subset(data, n):
    from robustzoo.data import Data, Split

    return Data(data.name, Split(data.train.x[:n], data.train.y[:n]), data.val, data.test, data.classes,
                data.mean, data.std, data.augment)


def test_weights_only_checkpoint_of_a_momentum_free_run_loads(tmp_path, digits_small):
    Trainer(_recipe(epochs=1, momentum=0.0), tmp_path, data=digits_small, progress=False, device="cpu").fit()
    for name in ("last.safetensors", "best.safetensors"):
        model = load_model(tmp_path / name)
        assert model.config["architecture"] == "cifar_small_cnn"


@pytest.mark.parametrize("make_policy", [
    lambda: __import__("robustzoo").policies.LearnedLAS(
        eps_options=(16 / 255, 32 / 255), step_options=(8 / 255,), steps_options=(1, 2, 3),
        backbone="cifar_small_cnn", backbone_kwargs={"width": 4}, hidden=8, update_every=2),
    lambda: __import__("robustzoo").policies.CyclicEntropyECAS(
        eps_space=(16 / 255, 24 / 255, 32 / 255), steps=2, scheduler="cyclic-batch"),
], ids=["LearnedLAS", "ECAS"])
def test_resume_restores_learning_policies(tmp_path, digits_small, make_policy):
    """The strategy network, its optimizer and the policy's counters come back: bit-identical weights."""
    full = Trainer(_recipe(policy=make_policy()), tmp_path / "full", data=digits_small, progress=False, device="cpu")
    full.fit()
    crashing = crash_at(make_policy())
    with pytest.raises(Crash):
        Trainer(_recipe(policy=crashing), tmp_path / "run", data=digits_small, progress=False, device="cpu").fit()
    torch.manual_seed(999)
    resumed = Trainer(_recipe(policy=make_policy()), tmp_path / "run", data=digits_small, progress=False,
                      device="cpu")
    resumed.fit(resume=True)
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    full_state, resumed_state = full.recipe.policy.state_dict(), resumed.recipe.policy.state_dict()
    if "net" in full_state:
        for k, v in full_state["net"].items():
            assert torch.equal(v, resumed_state["net"][k]), k


def test_recipe_optimizer_adamw_and_no_decay_on_norms_and_biases():
    from robustzoo.errors import InvalidValueError
    from robustzoo.models import create_model
    from robustzoo.trainer import build_optimizer

    model = create_model("cifar_small_cnn", num_classes=10, mean=(0.5,), std=(0.5,), in_chans=1, width=4)
    base = Recipe(name="o", model="cifar_small_cnn", dataset="digits", weight_decay=0.05)
    sgd = build_optimizer(model, base)
    assert type(sgd) is torch.optim.SGD and len(sgd.param_groups) == 1 and sgd.param_groups[0]["weight_decay"] == 0.05
    adamw = build_optimizer(model, base.replace(optimizer="adamw", betas=(0.9, 0.95), decay_norm_and_bias=False))
    assert type(adamw) is torch.optim.AdamW and adamw.param_groups[0]["betas"] == (0.9, 0.95)
    decays = {p.ndim <= 1: g["weight_decay"] for g in adamw.param_groups for p in g["params"]}
    assert decays == {True: 0.0, False: 0.05}  # biases and BatchNorm weights undecayed, kernels decayed
    assert base.replace(optimizer="adamw").summary()["optimizer"] == "adamw" and "optimizer" not in base.summary()
    with pytest.raises(InvalidValueError, match="optimizer='lamb'"):
        base.replace(optimizer="lamb")


def test_wide_resnet_takes_a_timm_activation():
    from robustzoo.models import create_model

    torch.manual_seed(0)
    relu = create_model("cifar_wrn_28_10", num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3)
    torch.manual_seed(0)
    silu = create_model("cifar_wrn_28_10", num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3,
                        act_layer="silu")
    assert relu.state_dict().keys() == silu.state_dict().keys()  # checkpoints keep their keys
    x = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(relu.eval()(x), silu.eval()(x))
