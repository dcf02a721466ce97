"""Data parallel on the CPU: 2 gloo processes on loopback, launched by torchrun, as users launch them."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robustzoo.checkpoint import load_checkpoint
from robustzoo.data import Augment, Loader, Split
from robustzoo.errors import InvalidValueError

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun(nproc: int, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env or ENV)


def _worker(out: Path, nproc: int, defense: str, *extra: str) -> list[dict]:
    out.mkdir(parents=True)
    if nproc == 1:  # the reference: one plain process, no process group
        done = subprocess.run([sys.executable, str(HERE / "dist_worker.py"), str(out), defense, *extra],
                              capture_output=True, text=True, timeout=600, env=ENV)
    else:
        done = _torchrun(nproc, str(HERE / "dist_worker.py"), str(out), defense, *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    return [load_file(str(out / f"rank{r}.safetensors")) for r in range(nproc)]


@pytest.mark.parametrize("defense", ["pgdat", "awp", "trades"])
def test_two_processes_end_with_the_weights_of_one_on_the_same_global_batch(tmp_path, defense):
    one, = _worker(tmp_path / "one", 1, defense)
    two = _worker(tmp_path / "two", 2, defense)
    weights = [k for k in one if k.startswith("model.model.")]
    for k in weights:
        torch.testing.assert_close(two[0][k], one[k], rtol=1e-9, atol=1e-12)  # float64 model: rounding only
        assert torch.equal(two[0][k], two[1][k])  # DDP keeps the ranks identical
    moved = max((one[k] - one[k.replace("model.", "init.", 1)]).abs().max().item() for k in weights)
    assert moved > 1e-3  # it trained: 8 steps of SGD
    # only rank 0 wrote; it wrote the whole run
    assert not (tmp_path / "two" / "writes.rank1").exists()
    written = set((tmp_path / "two" / "writes.rank0").read_text().split())
    assert written == {"config.json", "metrics.jsonl", "best.safetensors", "last.safetensors", "last.json"}
    # metrics gathered from both ranks equal the single process's (every image counted once)
    lines = [[json.loads(ln) for ln in (tmp_path / run / "run" / "metrics.jsonl").read_text().splitlines()]
             for run in ("one", "two")]
    for a, b in zip(*lines):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["train_robust_acc"] == b["train_robust_acc"] and a["val_clean_acc"] == b["val_clean_acc"]
        assert a["strategy"]["n"] == b["strategy"]["n"] == 256 and a["strategy"]["hist"] == b["strategy"]["hist"]
    config = json.loads((tmp_path / "two" / "run" / "config.json").read_text())
    assert config["world_size"] == 2 and config["recipe"]["batch_size"] == 64


def test_las_strategy_network_is_identical_on_every_rank_after_updates(tmp_path):
    ranks = _worker(tmp_path / "run", 2, "las")
    net = [k for k in ranks[0] if k.startswith("net.")]
    assert any(k.endswith("running_mean") for k in net)  # BatchNorm statistics are kept in step too
    for k in net:
        assert torch.equal(ranks[0][k], ranks[1][k]), k
    changed = [k for k in net if not torch.equal(ranks[0][k], ranks[0][k.replace("net.", "init_net.", 1)])]
    assert len(changed) > len(net) // 2  # 8 REINFORCE updates moved it (from different data on each rank)


def test_the_weight_average_is_identical_on_every_rank(tmp_path):
    ranks = _worker(tmp_path / "run", 2, "ema")
    ema = [k for k in ranks[0] if k.startswith("ema.")]
    assert any(k.endswith("running_mean") for k in ema)  # BatchNorm statistics are averaged too
    for k in ema:
        assert torch.equal(ranks[0][k], ranks[1][k]), k
    floats = [k for k in ema if ranks[0][k].is_floating_point()]
    assert any(not torch.equal(ranks[0][k], ranks[0][k.replace("ema.", "model.", 1)]) for k in floats)  # averaged
    saved, _ = load_checkpoint(tmp_path / "run" / "run" / "last.safetensors")
    assert all(torch.equal(saved[k], ranks[0][k]) for k in ema)  # the training state keeps the average


def test_bf16_channels_last_two_processes_match_one(tmp_path):
    one, = _worker(tmp_path / "one", 1, "awp", "bf16", "1")
    two = _worker(tmp_path / "two", 2, "awp", "bf16", "1")
    for k in (k for k in one if k.startswith("model.model.")):
        torch.testing.assert_close(two[0][k], one[k], rtol=1e-9, atol=1e-12)
        assert torch.equal(two[0][k], two[1][k])


KILLABLE_RECIPE = '''
import os, signal
from robustzoo import Fixed, PGDAT, Piecewise, Recipe


class KilledFixed(Fixed):
    """Fixed PGD; rank 1 is SIGKILLed at its KILL_AT-th batch when that variable is set."""
    calls = 0

    def strategy(self, model, x, y):
        KilledFixed.calls += 1
        if os.environ.get("RANK") == "1" and str(KilledFixed.calls) == os.environ.get("KILL_AT"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().strategy(model, x, y)


def recipe():
    return Recipe(name="killable", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits",
                  val_size=64, train_subset=256, policy=KilledFixed(eps=32 / 255, step_size=8 / 255, steps=2),
                  defense=PGDAT(), eps=32 / 255, epochs=3, batch_size=64, lr=0.05, schedule=Piecewise((0.5,)),
                  val_steps=2)
'''


def _train(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "robustzoo", "train", *args, "--nproc", "2", "--device", "cpu", "--quiet"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env or ENV)


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_weights(tmp_path):
    recipe = tmp_path / "killable.py"
    recipe.write_text(KILLABLE_RECIPE)
    full = _train(str(recipe), "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-3000:]
    assert "launching: torchrun --standalone --nproc-per-node=2" in full.stdout
    killed = _train(str(recipe), "--out", str(tmp_path / "run"), env={**ENV, "KILL_AT": "6"})  # epoch 2
    assert killed.returncode != 0
    assert load_checkpoint(tmp_path / "run" / "last.safetensors")[1]["epoch"] == 1
    resumed = _train(str(recipe), "--out", str(tmp_path / "run"), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, meta = load_checkpoint(tmp_path / "full" / "last.safetensors")
    b, meta_b = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert meta["epoch"] == meta_b["epoch"] == 3 and meta["step"] == meta_b["step"] == 12
    assert len(meta_b["local"]) == 2  # both ranks' random streams are in the checkpoint
    for k in a:
        assert torch.equal(a[k], b[k]), k
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2, 3]


def _same_weights(a_path, b_path):
    a, b = load_checkpoint(a_path)[0], load_checkpoint(b_path)[0]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigterm_to_one_rank_stops_both_at_the_same_step_and_resume_ends_like_the_uninterrupted_run(tmp_path):
    from test_runs import RECIPE

    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    assert _train(str(recipe), "--out", str(tmp_path / "full")).returncode == 0
    stopped = _train(str(recipe), "--out", str(tmp_path / "run"),
                     env={**ENV, "SIGNAL": "SIGTERM", "AT": "6", "ONLY_RANK": "0"})  # rank 0 only, epoch 2
    assert stopped.returncode != 0 and "stopped: SIGTERM: stopped at epoch 2, batch 3 of 4" in stopped.stderr
    meta = load_checkpoint(tmp_path / "run" / "last.safetensors")[1]
    assert (meta["epoch"], meta["position"], meta["step"]) == (1, 3, 7)  # agreed one step later, on both ranks
    assert len(meta["local"]) == 2
    resumed = _train(str(recipe), "--out", str(tmp_path / "run"), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same_weights(tmp_path / "full" / "last.safetensors", tmp_path / "run" / "last.safetensors")


def test_sigterm_to_the_launcher_reaches_the_workers_and_exits_75(tmp_path):
    """What a scheduler does: SIGTERM to `robustzoo train --nproc 2`; torchrun passes it to the workers."""
    from test_runs import RECIPE

    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    command = [sys.executable, "-m", "robustzoo", "train", str(recipe), "--nproc", "2", "--device", "cpu",
               "--quiet", "--out", str(tmp_path / "run")]
    launcher = subprocess.Popen(command, env={**ENV, "SLEEP": "0.3"}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not metrics.is_file() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # signal it inside epoch 2 (each batch takes 0.3 s)
    launcher.send_signal(signal.SIGTERM)
    _, err = launcher.communicate(timeout=240)
    assert launcher.returncode == 75, err[-3000:]
    meta = load_checkpoint(tmp_path / "run" / "last.safetensors")[1]
    assert meta["epoch"] >= 1 and len(meta["local"]) == 2
    resumed = _train(str(recipe), "--out", str(tmp_path / "run"), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _train(str(recipe), "--out", str(tmp_path / "full")).returncode == 0
    _same_weights(tmp_path / "full" / "last.safetensors", tmp_path / "run" / "last.safetensors")


def test_rank_shards_of_the_loader_cover_the_global_batch():
    split = Split(torch.arange(40 * 3 * 4 * 4).reshape(40, 3, 4, 4).to(torch.uint8), torch.arange(40))
    whole = list(Loader(split, 8, shuffle=True, augment=Augment(1, True), drop_last=True, seed=5))
    shards = [list(Loader(split, 8, shuffle=True, augment=Augment(1, True), drop_last=True, seed=5, rank=r,
                          world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(whole) == 5
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *shards):
        assert torch.equal(torch.cat([y0, y1]), y) and torch.equal(torch.cat([x0, x1]), x)  # same crops, flips
    with pytest.raises(InvalidValueError, match="batch_size=9 does not split over 2 processes"):
        Loader(split, 9, rank=0, world_size=2)
    odd = Loader(split, 9, rank=1, world_size=3)
    assert odd.rows(7) == slice(3, 5)  # a last batch of 7: tensor_split's chunks 3, 2, 2


def test_torchrun_evaluate_splits_the_images_and_sums_the_counts(tmp_path, digits_small):
    from robustzoo import PGDAT, Fixed, Piecewise, Recipe, Trainer

    recipe = Recipe(name="e", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits", val_size=64,
                    policy=Fixed(eps=32 / 255, step_size=8 / 255, steps=2), defense=PGDAT(), eps=32 / 255,
                    epochs=2, batch_size=64, lr=0.05, schedule=Piecewise((0.5,)), val_steps=1)
    Trainer(recipe, tmp_path / "run", data=digits_small, device="cpu", progress=False).fit()
    args = ["-m", "robustzoo", "evaluate", str(tmp_path / "run"), "--attack", "clean,pgd10", "--num-images", "100",
            "--device", "cpu"]
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one.json")], capture_output=True,
                         text=True, timeout=600, env=ENV)
    two = _torchrun(2, *args, "--out", str(tmp_path / "two.json"))
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("results written to") == 1  # rank 0 alone prints and writes
    a, b = (json.loads((tmp_path / f"{k}.json").read_text()) for k in ("one", "two"))
    assert a["n"] == b["n"] == 100 and a["indices"] == b["indices"]
    assert a["accuracy"]["clean"] == b["accuracy"]["clean"]  # deterministic: exactly the same count
    assert a["outcomes"]["clean"] == b["outcomes"]["clean"]  # per image, gathered from both ranks in order
    assert abs(a["accuracy"]["pgd10"] - b["accuracy"]["pgd10"]) <= 0.06  # other random starts per image
