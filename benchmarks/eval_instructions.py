"""Evaluation cost in instructions: `robustzoo.evaluate` with AutoAttack against a direct pyautoattack run,
counted by callgrind on the same model, images and seed.

Wall time on a shared 2-core machine moves ±10–25% on identical work (`eval_cost.py --control`), too coarse
for a 2% claim. Callgrind counts the instructions a process executes, which repeat for the same binary and
inputs whatever else the machine does. Each way runs in its own process under
`valgrind --tool=callgrind --instr-atstart=no`, one thread: the model and images are loaded, the way runs
once uninstrumented (warm, as in a benchmark's later rounds), then once counted: `callgrind_region.c`'s
client requests dump the counts before AutoAttack's `run_standard_evaluation` call, inside it and after it.
The direct way is what `eval_cost.py` times: AutoAttack built, `run_standard_evaluation`, one accuracy pass on
x_adv. The evaluate way is
`evaluate(model, (x, y), ("aa",), sanity=False, state_path=...)`. Both get the same images
(`balanced_order`'s first `--n`) and AutoAttack's inputs and x_adv are compared by digest.
The default budget, 16/255, leaves no image robust after APGD-CE, so AutoAttack's run is its shortest: the
clean pass and 100 APGD-CE steps. What evaluate adds (its checks, probe pass, re-scoring, state file) does not
depend on which of AutoAttack's attacks run, so its share of this run bounds its share of a longer one. At
8/255 the images left robust go through APGD-T, FAB-T and Square (5,000 queries): the small CNN's warm run
alone, uninstrumented, was still in FAB-T after 14 minutes under valgrind.
Needs valgrind (with `valgrind/callgrind.h`) and a C compiler. Each way runs `--repeats` times (two ways
at once, one per core: counts do not depend on load).
Run: `python benchmarks/eval_instructions.py` (small CNN, n 8; `--model prn18` or a run folder too).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def compile_region(out: Path) -> Path:
    """`callgrind_region.c` as a shared library (its calls are callgrind client requests)."""
    lib = out / "libregion.so"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(HERE / "callgrind_region.c")], check=True)
    return lib


def prepare(args: argparse.Namespace, out: Path) -> None:
    """Model (a robustzoo checkpoint) and the first `--n` balanced test images, written for the children."""
    from robustzoo import load_data
    from robustzoo.checkpoint import save_checkpoint
    from robustzoo.evaluation import balanced_order
    from safetensors.torch import save_file

    from cifar10_cpu import ARCHIVE, ROOT, unpack
    from eval_cost import model_from

    torch.set_num_threads(2)
    tree = args.data_dir or unpack(ARCHIVE, ROOT / "benchmarks" / ".cache" / "cifar10-jpeg")
    data = load_data("cifar10", tree, val_size=0, train_subset=args.train_subset, seed=0)
    if Path(args.model).exists():
        (out / "model").write_text(str(Path(args.model).resolve()))
    else:
        _, model = model_from(args.model, data, args, out / "train")
        if not hasattr(model, "config"):
            raise SystemExit(f"--model {args.model}: not a robustzoo model (no config to rebuild it from)")
        save_checkpoint(out / "model.safetensors", model.state_dict(), {"config": model.config})
        (out / "model").write_text(str(out / "model.safetensors"))
    idx = balanced_order(data.test.y)[:args.n]
    save_file({"x": data.test.x[idx].contiguous(), "y": data.test.y[idx].contiguous()}, str(out / "images.safetensors"))


def child(args: argparse.Namespace) -> None:
    """One way, warm, then counted; prints what ran as one JSON line."""
    from pyautoattack import AutoAttack
    from safetensors.torch import load_file

    from eval_cost import digest
    from robustzoo import evaluate, load_model

    torch.set_num_threads(1)
    out = Path(args.child_dir)
    region = ctypes.CDLL(str(out / "libregion.so"))
    model = load_model((out / "model").read_text())
    images = load_file(str(out / "images.safetensors"))
    x_uint8, y = images["x"], images["y"]
    seen, calls, counting = [], [], False
    original = AutoAttack.run_standard_evaluation

    def recorded(adversary, x, y, *a, **k):  # both ways: AutoAttack's inputs and x_adv, for the digest
        if counting:
            region.region_mark()  # the dump so far: before AutoAttack's call
        x_adv, y_adv = original(adversary, x, y, *a, **k)
        if counting:
            region.region_mark()  # AutoAttack's call
        seen.append((x, y, x_adv))
        return x_adv, y_adv
    AutoAttack.run_standard_evaluation = recorded

    def direct() -> float:
        x = (x_uint8.float() / 255).contiguous()
        adversary = AutoAttack(model, norm="Linf", eps=args.eps, version="standard", seed=0, device="cpu")
        adversary.verbose = False
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=args.batch_size)
        with torch.no_grad():
            return (model(x_adv).argmax(1) == y).float().mean().item()

    def ours() -> float:
        calls.append(1)  # a new state file per call: an existing one would be resumed, not attacked
        state = out / f"state-{args.child}-{os.getpid()}-{len(calls)}.json"
        result = evaluate(model, (x_uint8, y), ("aa",), eps=args.eps, batch_size=args.batch_size, seed=0,
                          sanity=False, state_path=state, order="first")
        return result.accuracy["aa"]

    fn = {"direct": direct, "evaluate": ours}[args.child]
    fn()  # warm: first-call costs (kernel selection, lazy imports) are not what is compared
    seen.clear()
    counting = True
    begun = time.perf_counter()
    region.region_start()
    accuracy = fn()
    region.region_stop()  # after AutoAttack's call
    seconds = time.perf_counter() - begun  # run natively (without valgrind), the counted run's wall time
    print(json.dumps({"way": args.child, "accuracy": round(accuracy, 4), "digest": digest(*seen[0]),
                      "aa_calls": len(seen), "seconds": round(seconds, 3)}), flush=True)


def counted(way: str, out: Path, args: argparse.Namespace, k: int) -> subprocess.Popen:
    """Start one way under callgrind; its dumps `cg.<way>.<k>.out.1..3` hold the counts before AutoAttack's
    call, inside it, and after it."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/cg.{way}.{k}.out",
           sys.executable, str(Path(__file__).resolve()), "--child", way, "--child-dir", str(out),
           "--batch-size", str(args.batch_size), "--eps", repr(args.eps)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE)


def instructions(dump: Path) -> int:
    """The total instruction count (Ir) of a callgrind dump."""
    match = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), re.M)
    if not match:
        raise RuntimeError(f"no instruction total in {dump}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="small (default), prn18, or a run folder / checkpoint")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--eps", type=float, default=16 / 255, help="L-inf budget (default 16/255: see the top)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each way (the count should repeat)")
    parser.add_argument("--train-subset", type=int, default=2000)
    parser.add_argument("--prn18-train", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--keep", type=Path, help="copy the callgrind dumps here (for callgrind_annotate)")
    parser.add_argument("--child", choices=["direct", "evaluate"], help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind not found: install it (Debian: apt install valgrind)")
    parts = ("before", "inside", "after")  # AutoAttack's call
    counts: dict[str, list[dict[str, int]]] = {"direct": [], "evaluate": []}
    runs: dict[str, list[dict]] = {"direct": [], "evaluate": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        compile_region(out)
        begun = time.perf_counter()
        prepare(args, out)
        print(f"# eval_instructions | model {args.model} | n {args.n} | eps {args.eps:.4g} | batch "
              f"{args.batch_size} | torch {torch.__version__} | 1 thread under callgrind | prepared in "
              f"{time.perf_counter() - begun:.0f} s", flush=True)
        for k in range(args.repeats):
            begun = time.perf_counter()
            procs = {way: counted(way, out, args, k) for way in counts}  # one per core
            for way, proc in procs.items():
                stdout, stderr = proc.communicate()
                if proc.returncode:
                    raise RuntimeError(f"{way} under callgrind exited {proc.returncode}:\n{stderr[-3000:]}")
                runs[way].append(json.loads(stdout.strip().splitlines()[-1]))
                if runs[way][-1]["aa_calls"] != 1:
                    raise RuntimeError(f"{way} called AutoAttack {runs[way][-1]['aa_calls']} times; expected 1")
                counts[way].append({p: instructions(out / f"cg.{way}.{k}.out.{i + 1}") for i, p in enumerate(parts)})
            print(f"repeat {k + 1} ({time.perf_counter() - begun:.0f} s): " + "; ".join(
                f"{w} {sum(counts[w][-1].values()):,} instructions ("
                + ", ".join(f"{p} AutoAttack {counts[w][-1][p]:,}" for p in parts)
                + f"), accuracy {runs[w][-1]['accuracy']}, AutoAttack in/out digest {runs[w][-1]['digest']}"
                for w in counts), flush=True)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for dump in out.glob("cg.*.out.*"):
                shutil.copy(dump, args.keep / dump.name)
    total = {w: [sum(c.values()) for c in cs] for w, cs in counts.items()}
    inside = {w: [c["inside"] for c in cs] for w, cs in counts.items()}
    outside = {w: [c["before"] + c["after"] for c in cs] for w, cs in counts.items()}
    same = len({r["digest"] for rs in runs.values() for r in rs}) == 1
    accs = sorted({r["accuracy"] for rs in runs.values() for r in rs})
    spread = max((max(c) - min(c)) / min(c) for c in total.values())
    ratio, inside_ratio = (min(total["evaluate"]) / min(total["direct"]),
                           min(inside["evaluate"]) / min(inside["direct"]))
    extra = min(outside["evaluate"]) - min(outside["direct"])
    print(f"# evaluate / direct, instructions: {ratio:.4f}; inside AutoAttack's call {inside_ratio:.6f} "
          f"({min(inside['evaluate']) - min(inside['direct']):+,}); outside it, evaluate's beyond direct's: {extra:+,} "
          f"= {extra / min(total['direct']):.2%} of a direct run; repeat spread {spread:.4%}; accuracy {accs}; "
          f"AutoAttack's inputs and x_adv bit-identical both ways: {same}")
    print("| model | n | eps | batch | direct instructions | evaluate instructions | evaluate / direct | inside "
          "AutoAttack, evaluate / direct | outside it, evaluate's beyond direct's | repeat spread | accuracy; x_adv |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(f"| {args.model} | {args.n} | {args.eps:.4g} | {args.batch_size} | {min(total['direct']):,} | "
          f"{min(total['evaluate']):,} | {ratio:.4f} | {inside_ratio:.6f} | {extra:+,} | {spread:.4%} | "
          f"{'/'.join(map(str, accs))}; {'bit-identical' if same else 'DIFFER'} |")


if __name__ == "__main__":
    main()
