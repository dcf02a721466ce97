"""The GPU check: the CUDA tests, throughput against its floor, a short real training and AutoAttack's cost,
in one command that fits in about 8 minutes on one H100/H200-class GPU.

Stages (each within its share of `--budget` seconds; a stage that runs out says what it skipped):
1. the CUDA tests (`tests/test_cuda.py` under pytest, junit summary);
2. throughput (bf16, channels_last) of PreActResNet-18 and WRN-34-10 at batch 128 (PreActResNet-18 also at
   512) under Fixed, LearnedLAS (k = 40 and k = 1), ECAS and SAAT × PGDAT, TRADES, AWP(PGDAT), AWP(TRADES),
   compile off, and Fixed × PGDAT with compile on; images/s, time over the floor (K input-gradient passes
   + 1 training pass) and the projected CIFAR-10 epoch — in priority order, so a short budget keeps the
   rows the targets need;
3. PreActResNet-18 PGD-10 AT (recipes/pgdat_prn18_cifar10.py, cosine schedule) on the JPEG CIFAR-10 for as
   many epochs as fit in the training share;
4. its best checkpoint on 1,000 test images: clean / PGD-20, AutoAttack (fp32) if it fits, and AutoAttack
   under bf16 autocast (`evaluate(amp="bf16")`) on the same images: cost and accuracy beside fp32.
It prints where it is, then writes `gpu_check_<gpu>.md` and `.json` to `--out` (and the tests' junit XML).

Run on the GPU machine (benchmarks/gpu_check.sh does the setup):
    python benchmarks/gpu_check.py --data DIR --out DIR      (DIR: the unpacked cifar10-jpeg.tar.gz)
    python benchmarks/gpu_check.py --dry-run --data DIR      (CPU: every stage at toy size, a minute)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robustzoo import Cosine, Trainer, evaluate, load_data, load_model, load_recipe  # noqa: E402
from robustzoo.benchmark import measure  # noqa: E402
from robustzoo.data import Split  # noqa: E402

from throughput import DEFENSES, POLICIES, synthetic_cifar  # noqa: E402

TARGETS = {"prn18_epoch_s": 20.0, "wrn34_epoch_s": 90.0, "fixed_floor_ratio": 1.15, "las_k1_over_fixed": 2.5,
           "awp_over_wrapped": 1.15, "aa_bf16_points": 0.2}
SHARES = {"tests": 0.22, "throughput": 0.25, "training": 0.30}  # of --budget; evaluation gets the rest
EVAL_RESERVE = 0.2  # of --budget, kept for the evaluation while training


@dataclass
class Check:
    """Where the run stands: budget, results, and what was skipped or failed (goes into the report)."""

    budget: float
    dry_run: bool
    started: float = field(default_factory=time.perf_counter)
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.budget - self.elapsed()

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {message}", flush=True)

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one stage; a crash is recorded (with its traceback's last lines) and the next stage runs."""
        self.say(f"== {name}")
        begun = time.perf_counter()
        try:
            return fn()
        except Exception as e:  # noqa: BLE001  (a check reports every failure and goes on)
            tail = traceback.format_exc().strip().splitlines()[-6:]
            self.notes.append(f"stage {name} crashed: {type(e).__name__}: {e}")
            self.results.setdefault("crashes", {})[name] = tail
            self.say(f"stage {name} crashed: {type(e).__name__}: {e}")
            return None
        finally:
            self.results.setdefault("stage_seconds", {})[name] = round(time.perf_counter() - begun, 1)


# -- 0: the machine ------------------------------------------------------------------------------------------
def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "platform": platform.platform(), "device": str(device), "commit": commit()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                   multiprocessors=props.multi_processor_count, cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), bf16=torch.cuda.is_bf16_supported())
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["driver"] = "unknown"
    for name in ("timm", "pyautoattack", "huggingface_hub", "safetensors"):
        try:
            env[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001
            env[name] = "missing"
    return env


def commit() -> str:
    """The commit checked (git, else the file benchmarks/gpu_prepare.sh wrote beside the data)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    recorded = ROOT / ".gpu" / "commit"
    return recorded.read_text().strip() if recorded.is_file() else "unknown"


def gpu_slug(env: dict[str, Any], dry_run: bool) -> str:
    if dry_run:
        return "cpu-dry-run"
    return re.sub(r"[^a-z0-9]+", "-", env.get("gpu", "unknown").lower()).strip("-")


# -- 1: the CUDA tests ---------------------------------------------------------------------------------------
def cuda_tests(check: Check, out: Path) -> dict[str, Any]:
    """pytest on tests/test_cuda.py (4 workers where pytest-xdist is installed); its verbose lines are read,
    so a run stopped at its time limit still reports every test that finished."""
    import importlib.util

    xml = out / "gpu_tests.xml"
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests/test_cuda.py",
               f"--junitxml={xml}"]
    env = dict(os.environ)
    if check.dry_run:  # on the CPU: one real test (the loader's), the rest deselected
        command += ["-k", "loader"]
        env["ROBUSTZOO_TEST_DEVICE"] = "cpu"
    elif importlib.util.find_spec("xdist") is not None:
        command += ["-n", "4"]  # the tests are small: four processes share the GPU
    limit = max(30.0, min(SHARES["tests"] * check.budget, check.left() - 0.6 * check.budget))
    check.say(f"{' '.join(command[2:])} (limit {limit:.0f} s)")
    begun = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: xdist workers and compilers too
    try:
        output, timed_out = proc.communicate(timeout=limit)[0], False
    except subprocess.TimeoutExpired:  # SIGINT: pytest stops, prints its summary and writes the junit XML
        timed_out = True
        os.killpg(proc.pid, signal.SIGINT)
        try:
            output = proc.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output = proc.communicate()[0]
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # nothing of it may run on into the timings
    except ProcessLookupError:
        pass
    (out / "gpu_tests.log").write_text(output)
    outcomes = {m.group(2): m.group(1) for m in re.finditer(r"(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\s+(tests/\S+)",
                                                            output)}
    outcomes.update({m.group(1): m.group(2) for m in re.finditer(r"(tests/test_cuda\.py::\S+) (PASSED|FAILED|SKIPPED|ERROR)",
                                                                 output)})
    summary: dict[str, Any] = {"seconds": round(time.perf_counter() - begun, 1), "timed_out": timed_out,
                               "passed": sum(v == "PASSED" for v in outcomes.values()),
                               "failed": sum(v in ("FAILED", "ERROR") for v in outcomes.values()),
                               "skipped": sum(v == "SKIPPED" for v in outcomes.values()),
                               "failures": [k for k, v in outcomes.items() if v in ("FAILED", "ERROR")]}
    if xml.is_file():  # the failure messages
        for case in ElementTree.parse(xml).getroot().iter("testcase"):
            problem = case.find("failure") if case.find("failure") is not None else case.find("error")
            if problem is not None:
                name = case.get("name")
                summary["failures"] = [f if not f.endswith(name) else f"{f}: {(problem.get('message') or '')[:300]}"
                                       for f in summary["failures"]]
    summary["last_line"] = output.strip().splitlines()[-1] if output.strip() else ""
    collected = re.search(r"(?:collected|\[)\s*(\d+) items", output)
    if collected:
        summary["not_run"] = max(0, int(collected.group(1)) - len(outcomes))
    if not outcomes:
        check.notes.append(f"the CUDA tests reported nothing: {summary['last_line']}")
    if timed_out:
        check.notes.append(f"the CUDA tests ran past their {limit:.0f} s share and were stopped")
    check.say(f"tests: {summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped "
              f"in {summary['seconds']} s")
    for failure in summary["failures"]:
        check.say(f"  FAILED {failure}")
    return summary


# -- 2: throughput -------------------------------------------------------------------------------------------
def throughput_rows(dry_run: bool) -> list[tuple[str, int, bool, str, str]]:
    """(model, batch, compile, policy, defense) in priority order: what the targets need first."""
    if dry_run:
        small = "cifar_small_cnn"
        return [(small, 16, False, "Fixed", "PGDAT"), (small, 16, False, "LearnedLAS(k=1)", "PGDAT"),
                (small, 16, False, "Fixed", "AWP(PGDAT)"), (small, 16, True, "Fixed", "PGDAT")]
    prn, wrn = "cifar_preact_resnet18", "cifar_wrn_34_10"
    policies, defenses = list(POLICIES), list(DEFENSES)
    first = [(prn, 128, False, "Fixed", "PGDAT"), (wrn, 128, False, "Fixed", "PGDAT"),
             (prn, 128, False, "Fixed", "AWP(PGDAT)"), (prn, 128, False, "Fixed", "TRADES"),
             (prn, 128, False, "Fixed", "AWP(TRADES)"), (wrn, 128, False, "Fixed", "AWP(PGDAT)"),
             (prn, 128, True, "Fixed", "PGDAT"), (prn, 512, False, "Fixed", "PGDAT"),
             (wrn, 128, True, "Fixed", "PGDAT"), (prn, 128, False, "LearnedLAS(k=1)", "PGDAT"),
             (wrn, 128, False, "LearnedLAS(k=1)", "PGDAT")]
    grid = [(m, b, False, p, d) for m, b in ((prn, 128), (wrn, 128), (prn, 512)) for p in policies for d in defenses]
    return first + [row for row in grid if row not in first]


def throughput(check: Check, device: torch.device, write_report: Callable[[], Any]) -> list[dict[str, Any]]:
    rows, deadline = [], check.elapsed() + min(SHARES["throughput"] * check.budget, max(check.left() - 0.4 * check.budget, 0))
    steps, warmup = (1, 1) if check.dry_run else (5, 2)
    todo = throughput_rows(check.dry_run)
    for i, (model, batch, compiled, policy, defense) in enumerate(todo):
        if check.elapsed() > deadline:
            skipped = len(todo) - i
            check.notes.append(f"throughput: {skipped} of {len(todo)} rows skipped (budget)")
            check.say(f"throughput: budget spent, {skipped} rows skipped")
            break
        begun = time.perf_counter()
        row: dict[str, Any] = {"model": model, "batch_size": batch, "compile": compiled, "policy": policy,
                               "defense": defense}
        try:
            if compiled:
                torch._dynamo.reset()  # each row compiles a fresh model: keep dynamo's recompile limit clear
            from robustzoo import Recipe

            recipe = Recipe(name="gpu-check", model=model, dataset="synthetic", policy=POLICIES[policy](),
                            defense=DEFENSES[defense](), batch_size=batch, val_size=0)
            with tempfile.TemporaryDirectory() as tmp:
                trainer = Trainer(recipe, tmp, device=str(device), amp="bf16", channels_last=True,
                                  compile=compiled, data=synthetic_cifar(2 * batch), progress=False)
                # per-sample budgets (LAS, SAAT) change the batch shape at every step: cuDNN's autotuner would
                # time each new shape inside these few timed steps (a cost a real run pays once per shape)
                torch.backends.cudnn.benchmark = device.type == "cuda" and policy in ("Fixed", "CyclicEntropyECAS")
                row["cudnn_benchmark"] = torch.backends.cudnn.benchmark
                row.update(measure(trainer, steps=steps, warmup=warmup).to_dict())
            del trainer
        except Exception as e:  # noqa: BLE001  (an OOM or a crash is a row's result)
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
        row["row_seconds"] = round(time.perf_counter() - begun, 2)
        if device.type == "cuda":
            row["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
            torch.cuda.reset_peak_memory_stats(device)
            torch.cuda.empty_cache()
        rows.append(row)
        check.results["throughput"] = rows
        write_report()
        shown = (f"{row['images_per_s']:8.1f} img/s  K {row['mean_steps']:5.2f}  floor x{row['floor_ratio']:.3f}  "
                 f"epoch {row['cifar10_epoch_s']:7.1f} s" if "error" not in row else row["error"])
        check.say(f"{model} b{batch} {'compiled' if compiled else 'eager'} {policy} x {defense}: {shown} "
                  f"({row['row_seconds']} s)")
    return rows


def find(rows: list[dict[str, Any]], model: str, batch: int, policy: str, defense: str,
         compiled: bool = False) -> dict[str, Any] | None:
    for row in rows:
        if (row["model"], row["batch_size"], row["policy"], row["defense"], row["compile"]) == \
                (model, batch, policy, defense, compiled) and "error" not in row:
            return row
    return None


# -- 3: a short real training --------------------------------------------------------------------------------
def training(check: Check, device: torch.device, data_dir: Path, rows: list[dict[str, Any]],
             work: Path) -> dict[str, Any]:
    recipe, _ = load_recipe(ROOT / "recipes" / "pgdat_prn18_cifar10.py")
    data = load_data("cifar10", str(data_dir), val_size=recipe.val_size if not check.dry_run else 20,
                     seed=recipe.seed)
    if check.dry_run:  # toy size: at most 200 training images
        data.train = Split(data.train.x[:200], data.train.y[:200])
    changes: dict[str, Any] = {"data_dir": str(data_dir), "schedule": Cosine(warmup=0.1)}
    if check.dry_run:
        changes.update(model="cifar_small_cnn", model_kwargs={"width": 4}, batch_size=16, val_size=20)
    base = recipe.replace(**changes)
    row = find(rows, base.model, base.batch_size, "Fixed", "PGDAT")
    if row is None:  # no throughput figure: measure this model on its own for a few steps
        with tempfile.TemporaryDirectory() as tmp:
            probe = Trainer(base.replace(epochs=1), tmp, device=str(device), amp="bf16", channels_last=True,
                            data=data, progress=False)
            row = measure(probe, steps=2 if check.dry_run else 5, warmup=1 if check.dry_run else 2).to_dict()
    images_per_s = row["images_per_s"]
    steps = len(data.train) // base.batch_size
    epoch_s = steps * base.batch_size / images_per_s
    val_s = len(data.val) * (base.val_steps + 1) / (3 * row["full_images_per_s"])  # no-grad-ish passes
    share = min(SHARES["training"] * check.budget, check.left() - EVAL_RESERVE * check.budget)
    epochs = 1 if check.dry_run else max(1, math.floor((share - 10) / (1.1 * (epoch_s + val_s))))
    check.say(f"training: {epochs} epochs (estimated {epoch_s:.1f} s + {val_s:.1f} s validation each; "
              f"share {share:.0f} s), {len(data.train)} training images")
    run = base.replace(epochs=epochs)
    trainer = Trainer(run, work / "train", device=str(device), amp="bf16", channels_last=True, data=data,
                      progress=False)
    begun = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - begun
    metrics = [json.loads(line) for line in (work / "train" / "metrics.jsonl").read_text().splitlines()]
    for m in metrics:
        check.say(f"  epoch {m['epoch']}: loss {m['train_loss']:.3f}, train robust {m['train_robust_acc']:.3f}, "
                  f"val clean {m['val_clean_acc']:.3f} / PGD-10 {m['val_robust_acc']:.3f}, {m['seconds']:.1f} s")
    best = max(metrics, key=lambda m: m["val_robust_acc"]) if len(data.val) else metrics[-1]
    return {"recipe": "recipes/pgdat_prn18_cifar10.py", "model": run.model, "epochs": epochs,
            "schedule": repr(run.schedule), "lr": run.lr, "batch_size": run.batch_size,
            "train_images": len(data.train), "amp": "bf16", "channels_last": True, "seconds": round(seconds, 1),
            "epoch_seconds": [m["seconds"] for m in metrics], "predicted_epoch_s": round(epoch_s + val_s, 1),
            "best_epoch": best["epoch"], "metrics": metrics, "_data": data}


# -- 4: evaluation -------------------------------------------------------------------------------------------
def evaluation(check: Check, device: torch.device, trained: dict[str, Any], work: Path) -> dict[str, Any]:
    data = trained["_data"]
    model = load_model(work / "train" / "best.safetensors", device=str(device))
    n, batch = (30, 30) if check.dry_run else (1000, 500)
    n_aa = 30 if check.dry_run else 500  # AutoAttack twice (fp32, bf16) must fit the rest of the budget
    torch.backends.cudnn.benchmark = False  # AutoAttack's shrinking subsets: no autotuning per shape
    out: dict[str, Any] = {"n": n, "n_aa": n_aa, "batch_size": batch,
                           "checkpoint": f"best (epoch {trained['best_epoch']})"}
    white = evaluate(model, data.test, attacks=("clean", "pgd20"), n=n, batch_size=batch, seed=0, sanity=False)
    out["fp32"] = {"accuracy": white.accuracy, "seconds": {r.attack: round(r.seconds, 2) for r in white.results}}
    check.say(f"evaluation (n={n}): clean {white.accuracy['clean']:.3f}, PGD-20 {white.accuracy['pgd20']:.3f}")
    pgd_s = white.results[1].seconds
    estimate = 100 * pgd_s * n_aa / n  # AutoAttack standard ≈ 100 PGD-20s on a partly robust model (a guess)
    for amp in ("none", "bf16"):
        key = "aa_fp32" if amp == "none" else "aa_bf16"
        needed = estimate if amp == "none" else 1.2 * out["aa_fp32"]["seconds"]
        if check.left() < needed:
            check.notes.append(f"{key}: skipped, {check.left():.0f} s left and about {needed:.0f} s needed")
            check.say(f"{key}: skipped (budget: {check.left():.0f} s left, ~{needed:.0f} s needed)")
            break
        tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        if amp == "none":  # fp32 as fp32: TF32 convolutions would make the baseline a third precision
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            result = evaluate(model, data.test, attacks=("aa",), n=n_aa, batch_size=batch, seed=0, sanity=False,
                              amp=amp)
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
        out[key] = {"accuracy": result.accuracy["aa"], "seconds": round(result.results[0].seconds, 1),
                    "outcomes": result.outcomes["aa"]}
        check.say(f"{key}: accuracy {out[key]['accuracy']:.3f} in {out[key]['seconds']} s")
    if "aa_bf16" in out:
        fp32, bf16 = out["aa_fp32"], out["aa_bf16"]
        out["aa_bf16_vs_fp32"] = {"points": round(100 * (bf16["accuracy"] - fp32["accuracy"]), 2),
                                  "time_ratio": round(bf16["seconds"] / fp32["seconds"], 3),
                                  "images_differing": sum(a != b for a, b in zip(fp32["outcomes"], bf16["outcomes"]))}
    for key in ("aa_fp32", "aa_bf16"):
        out.get(key, {}).pop("outcomes", None)
    return out


# -- the report ----------------------------------------------------------------------------------------------
def targets(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, goal, measured, met) for each of the issue's targets that the run measured."""
    rows = results.get("throughput", [])
    prn, wrn = "cifar_preact_resnet18", "cifar_wrn_34_10"
    out: list[tuple[str, str, str, str]] = []

    def add(what: str, goal: float, value: float | None, fmt: str, below: bool = True) -> None:
        if value is None:
            out.append((what, f"≤ {goal:g}", "not measured", "—"))
        else:
            out.append((what, f"≤ {goal:g}", format(value, fmt), "yes" if (value <= goal) == below else "no"))

    for model, key, name in ((prn, "prn18_epoch_s", "PreActResNet-18 PGD-10 AT epoch (s)"),
                             (wrn, "wrn34_epoch_s", "WRN-34-10 PGD-10 AT epoch (s)")):
        best = [r for r in (find(rows, model, 128, "Fixed", "PGDAT", c) for c in (False, True)) if r]
        add(name + ", best of compile on/off", TARGETS[key], min((r["cifar10_epoch_s"] for r in best), default=None),
            ".1f")
    for model, name in ((prn, "PreActResNet-18"), (wrn, "WRN-34-10")):
        fixed = find(rows, model, 128, "Fixed", "PGDAT")
        add(f"Fixed time / floor, {name}", TARGETS["fixed_floor_ratio"], fixed and fixed["floor_ratio"], ".3f")
        las = find(rows, model, 128, "LearnedLAS(k=1)", "PGDAT")
        add(f"LAS k=1 / Fixed (step time), {name}", TARGETS["las_k1_over_fixed"],
            las["step_s"] / fixed["step_s"] if las and fixed else None, ".2f")
        for inner in ("PGDAT", "TRADES"):
            awp, wrapped = find(rows, model, 128, "Fixed", f"AWP({inner})"), find(rows, model, 128, "Fixed", inner)
            add(f"AWP({inner}) / {inner} (step time), {name}", TARGETS["awp_over_wrapped"],
                awp["step_s"] / wrapped["step_s"] if awp and wrapped else None, ".3f")
    compare = results.get("evaluation", {}).get("aa_bf16_vs_fp32")
    add("AutoAttack bf16 − fp32 (points, absolute)", TARGETS["aa_bf16_points"],
        abs(compare["points"]) if compare else None, ".2f")
    return out


def report(check: Check, env: dict[str, Any], args: argparse.Namespace) -> str:
    r = check.results
    lines = [f"# GPU check — {env.get('gpu', 'CPU (dry run)')}", "",
             f"`python benchmarks/gpu_check.py {' '.join(sys.argv[1:])}` · commit {env['commit']} · "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {check.elapsed():.0f} s of a {args.budget:.0f} s budget",
             "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in env.items()]
    lines += ["", "## Targets", "", "| target | goal | measured | met |", "|---|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets(r)]
    tests = r.get("tests")
    if tests:
        lines += ["", "## CUDA tests (`tests/test_cuda.py`)", "",
                  f"{tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped"
                  f"{', %d not run' % tests['not_run'] if tests.get('not_run') else ''} in {tests['seconds']} s"
                  f"{' (stopped at its time limit)' if tests['timed_out'] else ''}."]
        lines += [f"- FAILED {f}" for f in tests["failures"]]
    if r.get("throughput"):
        lines += ["", "## Throughput (bf16 autocast, channels_last; synthetic CIFAR-shaped batches)", "",
                  "| model | batch | compile | policy | defense | AT img/s | K | time / floor | ratio to (K+1) limit "
                  "| CIFAR-10 epoch s | row s | peak GiB |", "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for row in r["throughput"]:
            head = f"| {row['model']} | {row['batch_size']} | {'on' if row['compile'] else 'off'} | {row['policy']} | {row['defense']} |"
            if "error" in row:
                lines.append(f"{head} {row['error']} | | | | | {row['row_seconds']} | |")
            else:
                lines.append(f"{head} {row['images_per_s']:.1f} | {row['mean_steps']:.2f} | {row['floor_ratio']:.3f} | "
                             f"{row['limit_ratio']:.3f} | {row['cifar10_epoch_s']:.1f} | {row['row_seconds']} | "
                             f"{row.get('max_memory_gib', '—')} |")
    t = r.get("training")
    if t:
        lines += ["", f"## Short training: {t['model']} PGD-10 AT on the JPEG CIFAR-10", "",
                  f"{t['recipe']} with {t['epochs']} epochs, {t['schedule']}, lr {t['lr']}, batch {t['batch_size']}, "
                  f"{t['train_images']} training images, bf16 + channels_last: {t['seconds']} s in all "
                  f"(predicted {t['predicted_epoch_s']} s per epoch).", "",
                  "| epoch | train loss | train robust | val clean | val PGD-10 | s |", "|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {m['epoch']} | {m['train_loss']:.3f} | {m['train_robust_acc']:.3f} | {m['val_clean_acc']:.3f} | "
                  f"{m['val_robust_acc']:.3f} | {m['seconds']:.1f} |" for m in t["metrics"]]
    e = r.get("evaluation")
    if e:
        acc = e["fp32"]["accuracy"]
        lines += ["", f"## Evaluation: {e['checkpoint']}, first {e['n']} test images (class-balanced), L∞ 8/255", "",
                  "| attack | precision | accuracy | seconds |", "|---|---|---:|---:|",
                  f"| clean | fp32 | {acc['clean']:.2%} | {e['fp32']['seconds']['clean']} |",
                  f"| PGD-20 | fp32 | {acc['pgd20']:.2%} | {e['fp32']['seconds']['pgd20']} |"]
        for key, name in (("aa_fp32", "fp32 (TF32 off)"), ("aa_bf16", "bf16 autocast")):
            if key in e:
                lines.append(f"| AutoAttack, first {e['n_aa']} | {name} | {e[key]['accuracy']:.2%} | "
                             f"{e[key]['seconds']} |")
        if "aa_bf16_vs_fp32" in e:
            c = e["aa_bf16_vs_fp32"]
            lines += ["", f"AutoAttack under bf16: {c['points']:+.2f} points, {c['time_ratio']:.3f}× the fp32 time, "
                          f"{c['images_differing']} images with another outcome."]
    if check.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in check.notes]
    if r.get("crashes"):
        lines += ["", "## Crashes", ""]
        for name, tail in r["crashes"].items():
            lines += [f"### {name}", "", "```", *tail, "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the JPEG CIFAR-10 tree (train/, test/)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--budget", type=float, default=460.0, help="seconds for all stages (default 460)")
    parser.add_argument("--dry-run", action="store_true", help="every stage on the CPU at toy size")
    parser.add_argument("--skip", default="", help="comma list of stages to leave out: tests,throughput,training")
    args = parser.parse_args()
    if not (args.data / "train").is_dir():
        parser.error(f"--data {args.data}: no train/ folder; expected the unpacked cifar10-jpeg.tar.gz")
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device here; expected a GPU (or --dry-run for the CPU)")
    device = torch.device("cpu" if args.dry_run else "cuda")
    if args.dry_run:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    args.out.mkdir(parents=True, exist_ok=True)
    check, skip = Check(budget=args.budget, dry_run=args.dry_run), set(filter(None, args.skip.split(",")))
    env = environment(device)
    check.say(f"GPU check on {env.get('gpu', 'the CPU (dry run)')}, torch {env['torch']}, commit {env['commit']}")
    results = check.results
    slug = gpu_slug(env, args.dry_run)
    md, js = args.out / f"gpu_check_{slug}.md", args.out / f"gpu_check_{slug}.json"

    def write_report() -> str:  # after every stage: a run stopped from outside keeps what it measured
        text = report(check, env, args)
        md.write_text(text)
        js.write_text(json.dumps({"environment": env, "budget_s": args.budget, "elapsed_s": round(check.elapsed(), 1),
                                  "targets": targets(results), "notes": check.notes,
                                  **results},
                                 indent=1, default=str) + "\n")
        return text

    if "tests" not in skip:
        results["tests"] = check.stage("tests", lambda: cuda_tests(check, args.out))
        write_report()
    rows = check.stage("throughput", lambda: throughput(check, device, write_report)) \
        if "throughput" not in skip else None
    results["throughput"] = rows or []
    write_report()
    with tempfile.TemporaryDirectory() as tmp:
        if "training" not in skip:
            trained = check.stage("training", lambda: training(check, device, args.data, results["throughput"],
                                                               Path(tmp)))
            if trained:
                results["training"] = {k: v for k, v in trained.items() if k != "_data"}
                write_report()
                results["evaluation"] = check.stage("evaluation", lambda: evaluation(check, device, trained, Path(tmp)))
                metrics = Path(tmp) / "train" / "metrics.jsonl"
                if metrics.is_file():
                    (args.out / "gpu_check_train_metrics.jsonl").write_text(metrics.read_text())
    text = write_report()
    print(text, flush=True)
    check.say(f"written: {md}, {js}")
    tests = results.get("tests") or {}
    failed = bool(results.get("crashes")) or bool(tests.get("failed")) or bool(tests.get("timed_out"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
