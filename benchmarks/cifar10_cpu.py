"""Policy × defense on real CIFAR-10, on a CPU: the same small network, data, schedule and epochs per cell.

Cells: Fixed, LearnedLAS, CyclicEntropyECAS, LossConstrainedSAAT under PGDAT; Fixed and LearnedLAS under
TRADES and AWP(PGDAT). Each cell runs the policy (and final clip) of a paper recipe, i.e. its authors' code
settings (LAS's strategy net shrunk to the small CNN); each column one defense in its default settings, so a
row differs from Fixed only in the policy. Nothing is tuned here. Each cell is trained, then its best
checkpoint (held-out PGD-10) is evaluated with clean, PGD-20, CW-30 and AutoAttack (standard) on the first
`--n-eval` test images in class-balanced order. Cells are saved as they finish (a stopped run resumes, also inside a cell from its last epoch).

Run:  python benchmarks/cifar10_cpu.py           (the grid: about 1 h on 2 CPU cores with the defaults)
      python benchmarks/cifar10_cpu.py --quick   (smoke run: tiny network and data, a few minutes)
The data is the JPEG CIFAR-10 image-folder tree (`--data-dir`), unpacked from
../shared/data/cifar10-jpeg.tar.gz when no tree is given.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

from robustzoo import (AWP, PGDAT, TRADES, Cosine, Recipe, Trainer, create_model, evaluate, load_data,
                       load_model)
from robustzoo.checkpoint import atomic_write, write_json
from robustzoo.recipe import load_recipe
from robustzoo.policies import LearnedLAS

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
# each cell: (policy, defense, the recipe whose policy and final clip it runs)
CELLS = [("Fixed", "PGDAT", "pgdat_prn18_cifar10"), ("LearnedLAS", "PGDAT", "las_at_wrn34_cifar10"),
         ("CyclicEntropyECAS", "PGDAT", "ecas_pgdat_wrn34_cifar10"), ("LossConstrainedSAAT", "PGDAT", "saat_prn18_cifar10"),
         ("Fixed", "TRADES", "trades_prn18_cifar10"), ("LearnedLAS", "TRADES", "las_trades_wrn34_cifar10"),
         ("Fixed", "AWP(PGDAT)", "awp_prn18_cifar10"), ("LearnedLAS", "AWP(PGDAT)", "las_awp_wrn34")]


def recipe_attack(name: str, strategy_width: int):
    """The policy and final clip of a paper recipe (its code settings); LAS's strategy net becomes the small CNN."""
    source, _ = load_recipe(ROOT / "recipes" / f"{name}.py")
    policy = source.policy
    if isinstance(policy, LearnedLAS):  # a ResNet-18 strategy net would cost more than the target network
        policy.backbone, policy.backbone_kwargs = "cifar_small_cnn", {"width": strategy_width}
    return policy, source.final_clip


def make_defense(name: str):
    """The same outer loss for every policy in a column: the defenses' defaults, AWP with γ 0.01 on PGD-AT."""
    return {"PGDAT": PGDAT, "TRADES": TRADES, "AWP(PGDAT)": lambda: AWP(PGDAT(), gamma=0.01)}[name]()


def slug(policy: str, defense: str) -> str:
    return f"{policy}-{defense}".lower().replace("(", "-").replace(")", "")


def unpack(archive: Path, into: Path) -> Path:
    """The image-folder tree, unpacked once (a marker file says the unpacking finished)."""
    if not (into / ".complete").is_file():
        if not archive.is_file():
            sys.exit(f"error: {archive} not found; pass --data-dir with a CIFAR-10 image-folder tree")
        into.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
        (into / ".complete").touch()
    return next(p.parent for p in into.rglob("train") if (p.parent / "test").is_dir())


def run_cell(policy: str, defense: str, source: str, data, args, runs: Path) -> dict:
    attack, final_clip = recipe_attack(source, args.width)
    recipe = Recipe(name=slug(policy, defense), model="cifar_small_cnn", model_kwargs={"width": args.width},
                    dataset="cifar10", policy=attack, final_clip=final_clip, defense=make_defense(defense),
                    epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=5e-4,
                    schedule=Cosine(), val_size=args.val_size, eps=8 / 255, seed=0)
    out = runs / recipe.name
    trainer = Trainer(recipe, out, device="cpu", data=data, progress=False)
    trainer.fit(resume=True)  # continues a cell a stopped run left (none yet: starts it)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    seen = sum(m["strategy"]["n"] for m in metrics)
    steps = sum(m["strategy"]["n"] * m["mean_steps"] for m in metrics) / seen
    model = load_model(out)
    result = evaluate(model, data.test, attacks=("clean", "pgd20", "cw", "aa"), eps=8 / 255, n=args.n_eval,
                      batch_size=250, seed=0)
    acc = result.accuracy
    if not acc["aa"] <= acc["pgd20"] <= acc["clean"]:
        print(f"  warning: {policy} × {defense}: AA {acc['aa']} ≤ PGD-20 {acc['pgd20']} ≤ clean {acc['clean']} fails")
    return {"policy": policy, "defense": defense, "recipe": source, "train_seconds": round(sum(m["seconds"] for m in metrics), 1),
            "eval_seconds": round(result.seconds, 1), "mean_steps": round(steps, 2), "epochs": len(metrics),
            "n_eval": result.n, **{k: round(100 * v, 2) for k, v in acc.items()}}


def write_report(cells: list[dict], args, out: Path, params: int, command: str) -> None:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "robustzoo", "benchmarks/*.py"],
                           capture_output=True, text=True).stdout.strip()  # the code that made the numbers
    lines = [f"# Policy × defense on CIFAR-10 (JPEG), 2-core CPU{' — QUICK smoke run' if args.quick else ''}", "",
             f"Command: `{command}` · commit `{commit}`{' (with local changes)' if dirty else ''} · "
             f"{platform.platform()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads", "",
             f"Network: `cifar_small_cnn` width {args.width} ({params:,} parameters: 3 conv layers; chosen so that "
             f"eight adversarially trained cells fit in about an hour on 2 cores). Training: {args.train_subset:,} "
             f"random training images, {args.epochs} epochs, batch {args.batch_size}, SGD lr {args.lr} cosine, "
             f"weight decay 5e-4, crop+flip, best checkpoint by PGD-10 on {args.val_size} held-out images. "
             f"Evaluation: first {args.n_eval} test images in class-balanced order, L∞ eps 8/255: PGD-20 and "
             f"CW-30 (step 2/255, random start), AutoAttack standard (pyautoattack, seed 0).", "",
             *([args.note, ""] if args.note else []),
             "| policy | defense | settings of | clean | PGD-20 | CW-30 | AutoAttack | train min | attack steps / sample |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c['policy']} | {c['defense']} | `recipes/{c.get('recipe', '?')}.py` | {c['clean']:.2f} | {c['pgd20']:.2f} | {c['cw']:.2f} | "
                     f"{c['aa']:.2f} | {c['train_seconds'] / 60:.1f} | {c['mean_steps']:.2f} |")
    ordered = all(c["aa"] <= c["pgd20"] <= c["clean"] for c in cells)
    lines += ["", f"AA ≤ PGD-20 ≤ clean in every cell: {'yes' if ordered else 'NO'}. "
              f"{len(cells)} of {len(CELLS)} cells done.", "",
              f"![robust accuracy against training time]({out.stem}.png)", ""]
    atomic_write(out, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in cells:
        ax.scatter(c["train_seconds"] / 60, c["aa"], s=40)
        ax.annotate(f"{c['policy']} × {c['defense']}", (c["train_seconds"] / 60, c["aa"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("training time (min, 2 CPU cores)")
    ax.set_ylabel(f"AutoAttack accuracy (%), n={args.n_eval}")
    ax.set_title("CIFAR-10 (JPEG), small CNN: robust accuracy vs training time")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(out.with_suffix(".png"), lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="CIFAR-10 image-folder tree (default: unpack the shared one)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--train-subset", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--val-size", type=int, default=500)
    parser.add_argument("--n-eval", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="", help="a line for the report (e.g. what ran beside it)")
    parser.add_argument("--out", type=Path, help="report (default: benchmarks/results/cifar10_cpu.md)")
    parser.add_argument("--quick", action="store_true", help="smoke run: width 8, 512 images, 1 epoch, n-eval 100")
    args = parser.parse_args()
    if args.quick:
        args.width, args.train_subset, args.epochs, args.val_size, args.n_eval = 8, 512, 1, 100, 100
    out = args.out or ROOT / "benchmarks" / "results" / ("cifar10_cpu_quick.md" if args.quick else "cifar10_cpu.md")
    records, runs = out.parent / out.stem, ROOT / "runs" / out.stem  # cell results (kept) and checkpoints
    torch.set_num_threads(args.threads)
    tree = args.data_dir or unpack(ARCHIVE, ROOT / "benchmarks" / ".cache" / "cifar10-jpeg")
    start = time.perf_counter()
    data = load_data("cifar10", tree, val_size=args.val_size, train_subset=args.train_subset, seed=0)
    print(f"data: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test images from {tree} "
          f"({time.perf_counter() - start:.0f} s)")
    params = sum(p.numel() for p in create_model("cifar_small_cnn", num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3,
                                                 width=args.width).parameters())
    command = "python benchmarks/cifar10_cpu.py " + " ".join(sys.argv[1:])
    cells = []
    for policy, defense, source in CELLS:
        record = records / f"{slug(policy, defense)}.json"
        if record.is_file():
            cells.append(json.loads(record.read_text()))
            print(f"{policy} × {defense}: done before")
        else:
            cell = run_cell(policy, defense, source, data, args, runs)
            write_json(record, cell)
            cells.append(cell)
            print(f"{policy} × {defense}: clean {cell['clean']:.2f} PGD-20 {cell['pgd20']:.2f} CW {cell['cw']:.2f} "
                  f"AA {cell['aa']:.2f} | train {cell['train_seconds'] / 60:.1f} min, eval {cell['eval_seconds']:.0f} s, "
                  f"{cell['mean_steps']:.2f} steps/sample", flush=True)
        write_report(cells, args, out, params, command.strip())
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
