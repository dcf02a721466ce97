"""The CUDA path: every policy × defense in fp32/bf16/fp16, channels_last + compile, exact resume, device
equality of the attack and of `evaluate`, and the host-device syncs per attack.

Skipped without a CUDA device (CI); `benchmarks/gpu_check.py` runs them on a GPU.
`ROBUSTZOO_TEST_DEVICE=cpu pytest tests/test_cuda.py` runs the same tests on the CPU (all but the sync
counts, which need CUDA's sync debug mode) to check the tests themselves where no GPU is at hand.
"""
import contextlib
import copy
import math
import os
import warnings

import pytest
import torch
from torch import nn

from test_policies import DEFENSES, POLICY_KWARGS
from test_trainer import Crash, _recipe, crash_at

from robustzoo import PGDAT, Fixed, Recipe, Trainer, evaluate, load_model
from robustzoo.attacks import pgd
from robustzoo.attacks.pgd import cross_entropy
from robustzoo.data import Loader
from robustzoo.policies import create_policy
from robustzoo.strategy import Strategy
from robustzoo.trainer import adversarial_step

DEVICE = os.environ.get("ROBUSTZOO_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(),
    reason="needs a CUDA device (benchmarks/gpu_check.py runs these on a GPU; ROBUSTZOO_TEST_DEVICE=cpu runs "
           "them on the CPU)")]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA's sync debug mode needs a CUDA device")

PRECISIONS = {"fp32": "none", "bf16": "bf16", "fp16": "fp16"}


@pytest.fixture
def fp32_exact():
    """fp32 as fp32: no TF32 in cuDNN convolutions or cuBLAS matrix products (device-equality tests)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def deterministic():
    """Deterministic algorithms (warn only where an op has none) and no cuDNN benchmarking."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]


def attacked_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean CE after a fixed, deterministic attack (PGD-2 at 16/255 from x), in fp32 with batch statistics
    (BatchNorm's running statistics lag behind a dozen steps); the model's buffers are put back."""
    buffers = [b.clone() for b in model.buffers()]
    x_adv = pgd(model, x, y, Strategy.uniform(len(x), 16 / 255, 8 / 255, 2, x.device), random_start=False)
    with torch.no_grad():
        value = float(cross_entropy(model(x_adv).float(), y).mean())
        for b, saved in zip(model.buffers(), buffers):
            b.copy_(saved)
    return value


# first: compiling takes longest, so pytest-xdist starts it while the others run
def test_channels_last_and_compile_train_like_eager_on_the_device(tmp_path, digits_small):
    x, y = (t.to(DEVICE) for t in (digits_small.train.x.float() / 255, digits_small.train.y))
    runs = {}
    for name, options in (("eager", {}), ("compiled", dict(channels_last=True, compile=True))):
        trainer = Trainer(_recipe(epochs=3), tmp_path / name, data=digits_small, progress=False, device=DEVICE,
                          amp="bf16", **options)
        before = attacked_loss(trainer.model.train(), x, y)
        record = trainer.fit()
        runs[name] = (trainer, record, before, attacked_loss(trainer.model.train(), x, y))
    compiled, record, before, after = runs["compiled"]
    assert compiled.model._compiled_call_impl is not None
    assert after < before - 0.1, f"attacked loss {before:.4f} -> {after:.4f}"
    assert record["train_loss"] == pytest.approx(runs["eager"][1]["train_loss"], rel=0.02)  # bf16 kernels differ
    reloaded = load_model(tmp_path / "compiled" / "last.safetensors", device=DEVICE)  # keys: no _orig_mod
    for (k, a), (_, b) in zip(reloaded.state_dict().items(), compiled.model.state_dict().items()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("defense", DEFENSES, ids=list(DEFENSES))
@pytest.mark.parametrize("policy", POLICY_KWARGS, ids=list(POLICY_KWARGS))
def test_policy_times_defense_trains_on_the_device_and_lowers_its_loss(tmp_path, digits_small, policy, defense,
                                                                      precision):
    recipe = Recipe(name="p", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits", val_size=64,
                    policy=create_policy(policy, **POLICY_KWARGS[policy]), defense=DEFENSES[defense](),
                    eps=32 / 255, epochs=3, batch_size=64, lr=0.1, val_steps=2)
    trainer = Trainer(recipe, tmp_path, data=digits_small, progress=False, device=DEVICE, amp=PRECISIONS[precision])
    assert trainer.model.mean.device.type == DEVICE
    x, y = (t.to(trainer.device) for t in (digits_small.train.x.float() / 255, digits_small.train.y))
    trainer.model.train()
    before = attacked_loss(trainer.model, x, y)
    record = trainer.fit()
    after = attacked_loss(trainer.model.train(), x, y)
    assert trainer.step == 12
    assert after < before - 0.1, f"attacked loss {before:.4f} -> {after:.4f}"
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert torch.isfinite(torch.tensor(record["train_loss"])) and record["strategy"]["n"] == 256
    assert trainer.scaler.is_enabled() == (precision == "fp16")


@pytest.mark.parametrize("setting", [
    ("PGDAT", "none", lambda: PGDAT()),
    ("AWP(TRADES)", "bf16", lambda: DEFENSES["AWP(TRADES)"]()),
], ids=["PGDAT-fp32", "AWP(TRADES)-bf16"])
def test_resume_on_the_device_ends_equal_to_an_uninterrupted_run(tmp_path, digits_small, deterministic, setting):
    """Bit-exact under deterministic algorithms; an op without a deterministic kernel would only warn, and
    is then allowed 1e-6 (stated tolerance; the test reports which ops warned)."""
    _, amp, defense = setting
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        full = Trainer(_recipe(defense=defense()), tmp_path / "full", data=digits_small, progress=False,
                       device=DEVICE, amp=amp)
        full.fit()
        policy = crash_at(Fixed(eps=32 / 255, step_size=8 / 255, steps=3))
        with pytest.raises(Crash):
            Trainer(_recipe(policy=policy, defense=defense()), tmp_path / "run", data=digits_small, progress=False,
                    device=DEVICE, amp=amp).fit()
        torch.manual_seed(12345)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(12345)  # resume must restore the device's RNG too
        resumed = Trainer(_recipe(defense=defense()), tmp_path / "run", data=digits_small, progress=False,
                          device=DEVICE, amp=amp)
        resumed.fit(resume=True)
    nondeterministic = sorted({str(w.message).splitlines()[0] for w in caught
                               if "deterministic" in str(w.message)})
    assert not torch.backends.cudnn.benchmark  # the trainer keeps benchmarking off in deterministic mode
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        if nondeterministic:
            assert torch.allclose(a.float(), b.float(), rtol=0, atol=1e-6), (k, nondeterministic)
        else:
            assert torch.equal(a, b), k
    assert resumed.step == full.step


class SmallConv(nn.Module):
    """A float32 conv net without BatchNorm (per-sample results do not depend on the batch)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def test_per_sample_pgd_on_the_device_equals_the_cpu(fp32_exact):
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(64, 3, 8, 8, generator=g), torch.randint(0, 5, (64,), generator=g)
    strategy = Strategy(eps=torch.randint(3, 16, (64,), generator=g) / 255,
                        step_size=torch.randint(1, 5, (64,), generator=g) / 255,
                        steps=torch.randint(0, 8, (64,), generator=g))
    cpu_model = SmallConv().eval()
    device_model = SmallConv().to(DEVICE).eval()
    on_cpu = pgd(cpu_model, x, y, strategy, generator=torch.Generator().manual_seed(7))
    device_strategy = Strategy(strategy.eps.to(DEVICE), strategy.step_size.to(DEVICE), strategy.steps.to(DEVICE))
    on_device = pgd(device_model, x.to(DEVICE), y.to(DEVICE), device_strategy,
                    generator=torch.Generator().manual_seed(7)).cpu()  # a CPU generator: the same start
    differ = ((on_device - on_cpu).abs() > 1e-5).float().mean().item()
    assert differ <= 1e-3, f"{differ:.2%} of the pixels differ"  # a gradient sign can flip at rounding level
    assert torch.equal(on_device[strategy.steps == 0], x[strategy.steps == 0])
    with torch.no_grad():
        assert torch.allclose(cross_entropy(cpu_model(on_device), y), cross_entropy(cpu_model(on_cpu), y),
                              atol=1e-3)


def test_evaluate_on_the_device_gives_the_cpu_numbers(digits_linear, fp32_exact):
    model, data = digits_linear
    options = dict(attacks=("clean", "pgd10"), eps=4 / 255, n=400, batch_size=128, seed=0, sanity=False)
    on_cpu = evaluate(model, data.test, **options)
    on_device = evaluate(copy.deepcopy(model).to(DEVICE), data.test, **options)
    assert on_device.indices == on_cpu.indices
    assert on_device.outcomes["clean"] == on_cpu.outcomes["clean"]
    agree = sum(a == b for a, b in zip(on_device.outcomes["pgd10"], on_cpu.outcomes["pgd10"])) / on_cpu.n
    assert agree >= 0.99 and abs(on_device.accuracy["pgd10"] - on_cpu.accuracy["pgd10"]) <= 0.01
    assert 0.05 < on_cpu.accuracy["pgd10"] < on_cpu.accuracy["clean"]  # a case where the attack matters


def test_the_loader_copies_the_split_once_and_yields_the_cpu_batches(digits_small):
    split = digits_small.train
    on_cpu = list(Loader(split, 64, shuffle=True, seed=3))
    on_device = list(Loader(split, 64, shuffle=True, seed=3, device=DEVICE))
    assert all(xd.device.type == DEVICE for xd, _ in on_device)
    for (xc, yc), (xd, yd) in zip(on_cpu, on_device):
        assert torch.equal(xc, xd.cpu()) and torch.equal(yc, yd.cpu())


# -- host-device syncs (CUDA's sync debug mode warns at every synchronizing call) --------------------------
@contextlib.contextmanager
def count_syncs():
    counter = {"n": 0, "where": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield counter
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    counter["n"] = len(syncs)
    counter["where"] = [f"{w.filename}:{w.lineno}" for w in syncs]


def _trainer(tmp_path, digits_small, policy, defense=None, amp="bf16"):
    recipe = _recipe(policy=policy, defense=defense or PGDAT(), epochs=1)
    return Trainer(recipe, tmp_path, data=digits_small, progress=False, device="cuda", amp=amp)


def _step(trainer, x, y):
    return adversarial_step(trainer.model, x, y, trainer.recipe.policy, trainer.recipe.defense, trainer.optimizer,
                            scaler=trainer.scaler, amp_dtype=trainer.amp_dtype, train_model=trainer.train_model)


@needs_cuda
@pytest.mark.parametrize("policy, expected", [
    ("Fixed", 0), ("CyclicEntropyECAS", 0), ("LearnedLAS", 1)])
def test_syncs_per_training_step_are_the_readmes(tmp_path, digits_small, policy, expected):
    """README: the step counts are read on the host once per attack (LAS), none when they come from the CPU
    (Fixed, ECAS); the rest of the step (defense loss, backward, LAS's REINFORCE update, SGD) reads nothing."""
    kwargs = dict(POLICY_KWARGS[policy], update_every=2) if policy == "LearnedLAS" else POLICY_KWARGS[policy]
    trainer = _trainer(tmp_path, digits_small, create_policy(policy, **kwargs))
    x, y = next(iter(trainer.loader))
    trainer.model.train()
    _step(trainer, x, y)  # warm up (cuDNN handles, lazy inits)
    for _ in range(2):  # one step without and one with LAS's strategy update
        with count_syncs() as syncs:
            _step(trainer, x, y)
        assert syncs["n"] == expected, syncs["where"]


@needs_cuda
def test_saat_reads_the_host_once_per_budget_level(tmp_path, digits_small):
    kwargs = dict(POLICY_KWARGS["LossConstrainedSAAT"], rho=float("inf"))  # no sample stops: every level runs
    policy = create_policy("LossConstrainedSAAT", **kwargs)
    trainer = _trainer(tmp_path, digits_small, policy)
    x, y = next(iter(trainer.loader))
    _step(trainer, x, y)
    with count_syncs() as syncs:
        _step(trainer, x, y)
    levels = math.ceil((policy.eps_max - policy.base_eps) / policy.tau - 1e-6)  # SAAT_up: from the base 8/255
    assert syncs["n"] == levels + 3, syncs["where"]  # levels bound, active set, one per level, steps to host


@needs_cuda
def test_fixed_pgd_reads_nothing_and_device_step_counts_are_read_once(fp32_exact):
    model = SmallConv().cuda().eval()
    x, y = torch.rand(32, 3, 8, 8, device="cuda"), torch.randint(0, 5, (32,), device="cuda")
    pgd(model, x, y, Strategy.uniform(32, 8 / 255, 2 / 255, 3, "cuda"))
    with count_syncs() as fixed:
        pgd(model, x, y, Strategy.uniform(32, 8 / 255, 2 / 255, 10, "cuda"))
    per_sample = Strategy(torch.full((32,), 8 / 255, device="cuda"), torch.full((32,), 2 / 255, device="cuda"),
                          torch.randint(1, 10, (32,), device="cuda"))
    with count_syncs() as learned:
        pgd(model, x, y, per_sample)
    assert fixed["n"] == 0, fixed["where"]
    assert learned["n"] == 1, learned["where"]


@needs_cuda
def test_fp16_grad_scaler_is_the_only_extra_read(tmp_path, digits_small):
    trainer = _trainer(tmp_path, digits_small, Fixed(eps=32 / 255, step_size=8 / 255, steps=3), amp="fp16")
    x, y = next(iter(trainer.loader))
    _step(trainer, x, y)
    with count_syncs() as syncs:
        _step(trainer, x, y)
    assert trainer.scaler.is_enabled() and 1 <= syncs["n"] <= 2, syncs["where"]  # found-inf check in step()


@needs_cuda
def test_sync_batchnorm_trains_on_one_device(tmp_path, digits_small):
    trainer = Trainer(_recipe(epochs=1), tmp_path, data=digits_small, progress=False, device="cuda", sync_bn=True)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in trainer.model.modules())
    record = trainer.fit()
    assert torch.isfinite(torch.tensor(record["train_loss"]))
