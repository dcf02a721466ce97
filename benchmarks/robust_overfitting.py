"""Robust overfitting on a CPU: does held-out robust accuracy peak and fall, and do SAAT, AWP and ECAS shrink the gap?

Rice et al. (2020) show that PGD-AT's held-out robust accuracy peaks (just after the first LR drop) and then
falls while training robust accuracy keeps rising; SAAT and AWP claim a smaller best-to-last gap. Here one
setting small enough for 2 CPU cores (1,000 real CIFAR-10 training images without augmentation, a small CNN
with a wide head so that it can memorise them, 60 epochs with LR drops at 30 and 45) trains Fixed PGD-AT,
SAAT_up, Fixed under AWP(PGDAT) and ECAS, each with its paper recipe's policy and final clip
(`cifar10_cpu.recipe_attack`), everything else equal, and Fixed PGD-AT with weight averaging (`Recipe(ema=0.99)`:
at 15 steps per epoch its horizon of ~100 steps is ~7 epochs, near FastAT_Benchmark's τ = 0.9995 at 391 steps
per epoch (~5 epochs); validation, the best checkpoint and both test scores then use the averaged weights). Why this setting: in pilots with crop+flip (2,000
images, 15 epochs) training and held-out robust accuracy stayed equal (the network underfits); without
augmentation, training robust accuracy rose from 30% to 47% between epochs 10 and 28 while held-out PGD-10
fell from its peak of 26.8% (epoch 11) to 23-24%. After every epoch the trainer scores PGD-20 on held-out training images; the best of those picks
`best.safetensors`. Then the best and the last checkpoint are scored on the first `--n-eval` test images
(class-balanced) with clean, PGD-20 and AutoAttack (standard, seed 0). Methods are saved as they finish
(a stopped run resumes, also inside a method from its last epoch).

Run:  python benchmarks/robust_overfitting.py --data-dir /tmp/c10   (~20 min per method on 2 CPU cores)
      python benchmarks/robust_overfitting.py --quick              (smoke run: a few minutes)
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from robustzoo import AWP, PGDAT, Fixed, Piecewise, Recipe, Trainer, create_model, evaluate, load_data, load_model
from robustzoo.checkpoint import atomic_write, write_json
from robustzoo.reproduce import training_summary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10_cpu import ARCHIVE, recipe_attack, unpack  # noqa: E402  (the grid's data and recipe policies)

ROOT = Path(__file__).resolve().parents[1]
# each method: (label, short name, the recipe whose policy and final clip it runs (None: plain Fixed PGD-10),
# AWP or not, EMA decay or None)
METHODS = [("Fixed (PGD-AT)", "fixed", None, False, None), ("Fixed + EMA 0.99", "fixed_ema", None, False, 0.99),
           ("SAAT_up", "saat_up", "saat_prn18_cifar10", False, None), ("AWP (Fixed, PGDAT)", "awp", None, True, None),
           ("ECAS", "ecas", "ecas_pgdat_wrn34_cifar10", False, None)]


def run_method(label: str, name: str, source: str | None, awp: bool, ema: float | None, data, args,
               runs: Path) -> dict:
    """Train one method, then score its best and last checkpoints on the test images."""
    policy, final_clip = recipe_attack(source, args.width) if source else (Fixed(), False)
    recipe = Recipe(name=name, model="cifar_small_cnn", ema=ema,
                    model_kwargs={"width": args.width, "pool": args.pool, "hidden": args.hidden}, dataset="cifar10",
                    policy=policy, final_clip=final_clip, defense=AWP(PGDAT(), gamma=0.01) if awp else PGDAT(),
                    epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=5e-4,
                    schedule=Piecewise(tuple(args.milestones)), val_size=args.val_size, val_steps=20,
                    augment=args.augment, eps=8 / 255, seed=0)
    out = runs / recipe.name
    Trainer(recipe, out, device="cpu", data=data, progress=False).fit(resume=True)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    curve = {k: [round(100 * m[k], 2) for m in metrics] for k in ("train_robust_acc", "val_clean_acc", "val_robust_acc")}
    epochs, seconds, steps = training_summary(out)
    record = {"method": label, "recipe": source, "awp": awp, "ema": ema, "epochs": epochs, "train_seconds": seconds,
              "mean_steps": round(steps, 2), "best_epoch": 1 + curve["val_robust_acc"].index(max(curve["val_robust_acc"])),
              **curve}
    for which in ("best", "last"):
        start = time.perf_counter()
        result = evaluate(load_model(out / f"{which}.safetensors"), data.test, attacks=("clean", "pgd20", "aa"),
                          eps=8 / 255, n=args.n_eval, batch_size=250, seed=0)
        record[which] = {"test_" + k: round(100 * v, 2) for k, v in result.accuracy.items()}
        record[which]["eval_seconds"] = round(time.perf_counter() - start, 1)
    return record


def write_report(records: list[dict], args, out: Path, params: int, command: str) -> None:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "robustzoo", "benchmarks/*.py"],
                           capture_output=True, text=True).stdout.strip()  # the code that made the numbers
    drops = ", ".join(str(round(m * args.epochs)) for m in args.milestones)
    lines = [f"# Robust overfitting on CIFAR-10 (JPEG), 2-core CPU{' — QUICK smoke run' if args.quick else ''}", "",
             f"Command: `{command}` · commit `{commit}`{' (with local changes)' if dirty else ''} · "
             f"{platform.platform()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads", "",
             f"Network: `cifar_small_cnn` width {args.width}, pool {args.pool}, hidden {args.hidden} ({params:,} "
             f"parameters). Training: {args.train_subset:,} random training images"
             f"{', crop+flip' if args.augment else ' without augmentation'}, {args.epochs} epochs, batch "
             f"{args.batch_size}, SGD lr {args.lr} ×0.1 after epochs {drops}, weight decay 5e-4, L∞ eps 8/255. "
             f"Held-out: PGD-20 (step 2/255) on {args.val_size} other training images after every epoch; its "
             f"maximum picks the best checkpoint. Test: first {args.n_eval} test images in class-balanced order, "
             f"clean, PGD-20 and AutoAttack standard (pyautoattack, seed 0), on the best and on the last "
             f"checkpoint.", "",
             *([args.note, ""] if args.note else []),
             "| method | settings of | best epoch | held-out PGD-20 best | last | best − last | test AA best | "
             "last | best − last | test clean best / last | train robust last | train min | attack steps / sample |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        b, l, v = r["best"], r["last"], r["val_robust_acc"]
        source = f"`recipes/{r['recipe']}.py`" if r["recipe"] else "PGD-10, step 2/255"
        lines.append(f"| {r['method']} | {source} | {r['best_epoch']} | {max(v):.1f} | {v[-1]:.1f} | "
                     f"{max(v) - v[-1]:+.1f} | {b['test_aa']:.1f} | {l['test_aa']:.1f} | {b['test_aa'] - l['test_aa']:+.1f} | "
                     f"{b['test_clean']:.1f} / {l['test_clean']:.1f} | {r['train_robust_acc'][-1]:.1f} | "
                     f"{r['train_seconds'] / 60:.1f} | {r['mean_steps']:.2f} |")
    lines += ["", f"{len(records)} of {len(METHODS)} methods done. Held-out is {args.val_size} images, so one "
              f"point is {100 / args.val_size:.1f} pp; test is {args.n_eval} images (a binomial standard error of "
              f"{100 * (0.2 * 0.8 / args.n_eval) ** 0.5:.1f} pp at 20%). Train robust is the accuracy on the training attack's own examples.", "",
              f"![learning curves]({out.stem}.png)", ""]
    atomic_write(out, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    plot(records, args, out.with_suffix(".png"))


def plot(records: list[dict], args, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for r in records:
        epochs = range(1, len(r["val_robust_acc"]) + 1)
        line, = left.plot(epochs, r["val_robust_acc"], label=r["method"], lw=1.4)
        left.scatter([r["best_epoch"]], [max(r["val_robust_acc"])], color=line.get_color(), s=25, zorder=3)
        right.plot(epochs, r["train_robust_acc"], color=line.get_color(), lw=1.4, label=r["method"])
    for ax, title in ((left, f"held-out PGD-20 ({args.val_size} images; dot: best)"),
                      (right, "training robust accuracy (training attack)")):
        for m in args.milestones:
            ax.axvline(m * args.epochs, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle(f"CIFAR-10, {args.train_subset:,} training images, small CNN (pool {args.pool}, hidden {args.hidden})",
                 fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="CIFAR-10 image-folder tree (default: unpack the shared one)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--train-subset", type=int, default=1000)
    parser.add_argument("--augment", action="store_true", help="train with crop+flip (default: without)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--milestones", type=float, nargs="+", default=[0.5, 0.75], help="LR ×0.1 at these fractions")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--val-size", type=int, default=500)
    parser.add_argument("--n-eval", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="", help="a line for the report (e.g. what ran beside it)")
    parser.add_argument("--out", type=Path, help="report (default: benchmarks/results/robust_overfitting.md)")
    parser.add_argument("--quick", action="store_true", help="smoke run: width 4, 256 images, 2 epochs, n-eval 50")
    args = parser.parse_args()
    if args.quick:
        args.width, args.hidden, args.train_subset, args.epochs, args.val_size, args.n_eval = 4, 16, 256, 2, 64, 50
    name = "robust_overfitting_quick" if args.quick else "robust_overfitting"
    out = args.out or ROOT / "benchmarks" / "results" / f"{name}.md"
    records_dir, runs = out.parent / out.stem, ROOT / "runs" / out.stem  # method results (kept) and checkpoints
    torch.set_num_threads(args.threads)
    tree = args.data_dir or unpack(ARCHIVE, ROOT / "benchmarks" / ".cache" / "cifar10-jpeg")
    data = load_data("cifar10", tree, val_size=args.val_size, train_subset=args.train_subset, seed=0)
    print(f"data: {len(data.train)} train / {len(data.val)} held-out / {len(data.test)} test images from {tree}")
    params = sum(p.numel() for p in create_model("cifar_small_cnn", num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3,
                                                 width=args.width, pool=args.pool, hidden=args.hidden).parameters())
    command = ("python benchmarks/robust_overfitting.py " + " ".join(sys.argv[1:])).strip()
    records = []
    for label, name, source, awp, ema in METHODS:
        path = records_dir / f"{name}.json"
        if path.is_file():
            records.append(json.loads(path.read_text()))
            print(f"{label}: done before")
        else:
            record = run_method(label, name, source, awp, ema, data, args, runs)
            write_json(path, record)
            records.append(record)
            b, l = record["best"], record["last"]
            print(f"{label}: held-out PGD-20 best {max(record['val_robust_acc']):.1f} (epoch {record['best_epoch']}) "
                  f"last {record['val_robust_acc'][-1]:.1f} | test AA best {b['test_aa']:.1f} last {l['test_aa']:.1f} | "
                  f"train {record['train_seconds'] / 60:.1f} min", flush=True)
        write_report(records, args, out, params, command)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
