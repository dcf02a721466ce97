"""Runs nothing can silently destroy: no overwrite, no mixed recipes, bad --out, NaN stops, mid-epoch
checkpoints, preemption (SIGTERM) and failed writes — through the CLI, where a user meets them."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from robustzoo import Trainer, load_recipe
from robustzoo.checkpoint import load_checkpoint
from robustzoo.cli import main
from robustzoo.errors import RunExistsError
from robustzoo.runs import differences

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

RECIPE = '''
import os, signal, time
from dataclasses import dataclass
from robustzoo import Fixed, PGDAT, Piecewise, Recipe


class Scripted(Fixed):
    """Fixed PGD; sends its own process $SIGNAL at its $AT-th batch (on rank $ONLY_RANK if set)."""
    calls = 0

    def strategy(self, model, x, y):
        Scripted.calls += 1
        sig, rank = os.environ.get("SIGNAL"), os.environ.get("ONLY_RANK")
        if sig and str(Scripted.calls) == os.environ.get("AT") and rank in (None, os.environ.get("RANK", "0")):
            os.kill(os.getpid(), getattr(signal, sig))
        time.sleep(float(os.environ.get("SLEEP", "0")))  # a slower run, to be signalled from outside
        return super().strategy(model, x, y)


@dataclass(frozen=True)
class Explode:
    """LR factor 1 for the first half of the run, then 1e30: a run that diverges in its second half."""

    def __call__(self, progress):
        return 1.0 if progress < 0.5 else 1e30


def recipe():
    return Recipe(name="r", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits", val_size=64,
                  train_subset=256, policy=Scripted(eps=32 / 255, step_size=8 / 255, steps=2), defense=PGDAT(),
                  eps=32 / 255, epochs=3, batch_size=64, lr=float(os.environ.get("LR", "0.05")),
                  schedule=Explode() if os.environ.get("EXPLODE") else Piecewise((0.5,)), val_steps=2)
'''

LAS_RECIPE = '''
from robustzoo import PGDAT, Piecewise, Recipe
from robustzoo.policies import LearnedLAS


def recipe():
    return Recipe(name="r", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits", val_size=64,
                  train_subset=256, policy=LearnedLAS(eps_options=(16 / 255, 32 / 255), step_options=(8 / 255,),
                                                      steps_options=(1, 2), backbone="cifar_small_cnn",
                                                      backbone_kwargs={"width": 4}, hidden=8),
                  defense=PGDAT(), eps=32 / 255, epochs=3, batch_size=64, lr=0.05, schedule=Piecewise((0.5,)),
                  val_steps=2)
'''


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "recipe.py"
    path.write_text(RECIPE)
    return path


def train(*args, env=None):
    """`robustzoo train` in this process (CliRunner), on the CPU without a progress bar."""
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        return CliRunner().invoke(main, ["train", *map(str, args), "--device", "cpu", "--quiet"])
    finally:
        os.environ.clear()
        os.environ.update(old)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[0]


def strict(text: str):
    """json.loads that refuses NaN / Infinity (what strict JSON readers do)."""
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def strict_lines(path: Path) -> list[dict]:
    return [strict(line) for line in path.read_text().splitlines()]


def test_a_finished_run_is_never_replaced_without_overwrite(tmp_path, recipe):
    out = tmp_path / "done"
    assert train(recipe, "--out", out, "--epochs", "2").exit_code == 0
    before = snapshot(out)
    again = train(recipe, "--out", out, "--epochs", "1")
    assert again.exit_code == 2 and "Traceback" not in again.output
    assert "already holds a run (last.safetensors (epoch 2 of 2)" in again.output
    assert "--resume" in again.output and "--overwrite" in again.output
    assert snapshot(out) == before  # byte-identical
    recipe_obj, _ = load_recipe(recipe)
    with pytest.raises(RunExistsError, match="already holds a run"):  # the Python API refuses the same way
        Trainer(recipe_obj.replace(epochs=1), out, device="cpu", progress=False).fit()
    assert snapshot(out) == before
    replaced = train(recipe, "--out", out, "--epochs", "1", "--overwrite")
    assert replaced.exit_code == 0 and "--overwrite: deleted the run" in replaced.output
    assert [r["epoch"] for r in strict_lines(out / "metrics.jsonl")] == [1]


def test_resume_refuses_another_recipe_and_allows_more_epochs(tmp_path, recipe):
    out = tmp_path / "run"
    assert train(recipe, "--out", out, "--epochs", "1").exit_code == 0
    before = snapshot(out)
    las = tmp_path / "las.py"
    las.write_text(LAS_RECIPE)
    mixed = train(las, "--out", out, "--epochs", "1", "--resume")
    assert mixed.exit_code == 2 and "Traceback" not in mixed.output
    assert 'cannot resume' in mixed.output and 'policy: "Scripted" → "LearnedLAS"' in mixed.output
    assert "policy_config." in mixed.output
    other_batch = train(recipe, "--out", out, "--epochs", "1", "--resume", "--batch-size", "32")
    assert other_batch.exit_code == 2 and "batch_size: 64 → 32" in other_batch.output
    assert snapshot(out) == before
    longer = train(recipe, "--out", out, "--epochs", "2", "--resume")  # extending a run is allowed
    assert longer.exit_code == 0, longer.output
    assert [r["epoch"] for r in strict_lines(out / "metrics.jsonl")] == [1, 2]


def test_bad_out_is_one_line_and_writes_nothing(tmp_path, recipe):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    result = train(recipe, "--out", a_file)
    assert result.exit_code == 2 and "is a file; expected a folder" in result.output
    assert "Traceback" not in result.output and a_file.read_text() == "keep me"
    unwritable = Path("/proc/robustzoo-run")  # unwritable even for root
    result = train(recipe, "--out", unwritable)
    assert result.exit_code == 2 and "cannot be written" in result.output and "Traceback" not in result.output


def test_a_diverging_run_stops_and_keeps_the_last_finite_weights(tmp_path, recipe):
    out = tmp_path / "nan"
    result = train(recipe, "--out", out, "--epochs", "2", env={"EXPLODE": "1"})  # lr x1e30 from epoch 2
    assert result.exit_code == 3, result.output
    assert "training diverged: the loss is not finite at step" in result.output and "(epoch 2)" in result.output
    assert "lower learning rate" in result.output and "Traceback" not in result.output
    for name in ("last.safetensors", "best.safetensors"):
        tensors, meta = load_checkpoint(out / name)
        assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()), name
    assert load_checkpoint(out / "last.safetensors")[1]["epoch"] == 1
    assert [r["epoch"] for r in strict_lines(out / "metrics.jsonl")] == [1]
    for path in out.glob("*.json"):
        strict(path.read_text())
    at_once = train(recipe, "--out", tmp_path / "nan1", env={"LR": "1e30"})  # diverges in its first steps
    assert at_once.exit_code == 3 and "(epoch 1)" in at_once.output
    assert not (tmp_path / "nan1" / "last.safetensors").exists()  # nothing non-finite was written


def test_sigterm_mid_epoch_saves_an_exact_state_and_resume_ends_like_an_uninterrupted_run(tmp_path, recipe):
    assert train(recipe, "--out", tmp_path / "full").exit_code == 0
    stopped = train(recipe, "--out", tmp_path / "run", env={"SIGNAL": "SIGTERM", "AT": "6"})  # epoch 2, batch 2
    assert stopped.exit_code == 75, stopped.output
    assert "stopped: SIGTERM: stopped at epoch 2, batch 2 of 4" in stopped.output
    meta = load_checkpoint(tmp_path / "run" / "last.safetensors")[1]
    assert (meta["epoch"], meta["position"], meta["step"]) == (1, 2, 6)
    resumed = train(recipe, "--out", tmp_path / "run", "--resume")
    assert resumed.exit_code == 0, resumed.output
    a, b = weights(tmp_path / "full" / "last.safetensors"), weights(tmp_path / "run" / "last.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    drop = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    full_lines, run_lines = (strict_lines(tmp_path / d / "metrics.jsonl") for d in ("full", "run"))
    assert [drop(r) for r in run_lines] == [drop(r) for r in full_lines]  # epoch 2's metrics and telemetry too


def test_kill_9_after_a_mid_epoch_checkpoint_resumes_bit_identical(tmp_path, recipe):
    def cli(*args, env=None):
        command = [sys.executable, "-m", "robustzoo", "train", str(recipe), *args, "--device", "cpu", "--quiet"]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**ENV, **(env or {})})

    assert cli("--out", str(tmp_path / "full")).returncode == 0
    killed = cli("--out", str(tmp_path / "run"), "--checkpoint-every", "0.000001", env={"SIGNAL": "SIGKILL", "AT": "7"})
    assert killed.returncode == -signal.SIGKILL
    meta = load_checkpoint(tmp_path / "run" / "last.safetensors")[1]
    assert (meta["epoch"], meta["position"]) == (1, 2)  # the checkpoint after step 6, inside epoch 2
    resumed = cli("--out", str(tmp_path / "run"), "--resume", "--checkpoint-every", "0.000001")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = weights(tmp_path / "full" / "last.safetensors"), weights(tmp_path / "run" / "last.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["epoch"] for r in strict_lines(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3]


def test_resume_on_a_folder_without_a_checkpoint_starts_the_run(tmp_path, recipe):
    result = train(recipe, "--out", tmp_path / "new", "--resume", "--epochs", "1")
    assert result.exit_code == 0 and "no checkpoint in" in result.output and "starting the run" in result.output
    assert [r["epoch"] for r in strict_lines(tmp_path / "new" / "metrics.jsonl")] == [1]


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, recipe, monkeypatch):
    import robustzoo.checkpoint as checkpoint

    real, calls = checkpoint.save_file, {"n": 0}

    def disk_full_in_epoch_2(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] >= 3:  # epoch 1 wrote best and last; epoch 2's first write dies half-way
            real(tensors, filename, metadata=metadata)
            with open(filename, "r+b") as f:
                f.truncate(os.path.getsize(filename) // 2)
            raise OSError(28, "No space left on device")
        real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", disk_full_in_epoch_2)
    out = tmp_path / "run"
    result = train(recipe, "--out", out, "--epochs", "2")
    assert result.exit_code == 74 and "Traceback" not in result.output
    assert "could not write" in result.output and "No space left on device; the previous file is intact" in result.output
    tensors, meta = load_checkpoint(out / "last.safetensors")  # still whole and readable
    assert meta["epoch"] == 1 and tensors
    assert not list(out.glob(".*.tmp"))


def test_differences_name_what_changes_the_training_and_ignore_what_may_change():
    run = {"recipe": {"epochs": 3, "name": "a", "policy": "Fixed", "policy_config": {"steps": 10}, "lr": 0.1},
           "dataset": {"name": "cifar10", "data_dir": "/a"}, "amp": None, "world_size": 1, "compile": None}
    same = {**run, "recipe": {**run["recipe"], "epochs": 9, "name": "b"}, "dataset": {"name": "cifar10",
            "data_dir": "/b"}, "world_size": 4, "compile": "default"}
    assert differences(run, same) == []
    other = {**run, "recipe": {**run["recipe"], "policy_config": {"steps": 5}, "lr": 0.2}, "amp": "bf16"}
    assert differences(run, other) == ["amp: null → \"bf16\"", "lr: 0.1 → 0.2", "policy_config.steps: 10 → 5"]
