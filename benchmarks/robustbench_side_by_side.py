"""robustzoo.evaluate against robustbench.eval.benchmark: the same model, images and AutoAttack seed.

Two models: one of ours (the small CNN, adversarially trained by robustzoo for a few minutes, L∞ 8/255)
and one built from a RobustBench architecture (its cifar10/L2 `Rice2020Overfitting` PreActResNet-18,
trained here by a plain PyTorch loop with Gaussian-noise augmentation, saved in RobustBench's checkpoint
format and place, then imported with `robustzoo.import_robustbench`: L2 0.5). For each, RobustBench's
`benchmark` runs on the module RobustBench's own `load_model` gives, and `robustzoo.evaluate` on the model
robustzoo loads (for the second, the imported run folder), on the first `--n` class-balanced test images.

What `benchmark` needs to run here, and to be compared: its data loader is replaced by those images (it
reads torchvision's `cifar-10-batches-py`, which cannot be downloaded here); its AutoAttack gets seed 0
(RobustBench passes none, so pyautoattack seeds from the clock); and robustbench 1.1.1 calls AutoAttack as
the git version did (`log_path=`, `bs=`, x_adv returned), which pyautoattack 0.2.0 (robustbench's own
requirement on PyPI) does not accept: a small adapter translates those three.
Run: `python benchmarks/robustbench_side_by_side.py --data-dir DIR` (needs `robustzoo[robustbench]`).
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

import robustzoo
from robustzoo import PGDAT, Fixed, Recipe, Trainer, evaluate, load_data
from robustzoo.evaluation import balanced_order
from robustzoo.models.robustbench import entry, robustbench

from _timing import header
from cifar10_cpu import ARCHIVE, ROOT, unpack
from eval_cost import train_with_noise


def robustbench_aa(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, threat_model: str, eps: float,
                   batch_size: int) -> tuple[float, float]:
    """`robustbench.eval.benchmark` on (x, y), with AutoAttack seeded 0; (clean, AA) accuracy."""
    robustbench()
    import robustbench.eval as rbe

    loader, attack = rbe.load_clean_dataset, rbe.AutoAttack

    class SeededAutoAttack(attack):
        """pyautoattack 0.2.0 under robustbench 1.1.1's calls: it passes `log_path` and `bs` (0.2.0 takes
        neither) and expects x_adv back (0.2.0 returns a tuple); seed 0 where robustbench gives none."""

        def __init__(self, model, log_path=None, **kwargs):
            super().__init__(model, seed=0, **kwargs)

        def run_standard_evaluation(self, x, y, bs=250, state_path=None):
            return super().run_standard_evaluation(x, y, batch_size=bs, state_path=state_path)[0]

    rbe.load_clean_dataset = lambda *args, **kwargs: (x, y)
    rbe.AutoAttack = SeededAutoAttack
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rbe.benchmark(model, n_examples=len(y), dataset="cifar10", threat_model=threat_model, eps=eps,
                                 batch_size=batch_size, device=torch.device("cpu"))
    finally:
        rbe.load_clean_dataset, rbe.AutoAttack = loader, attack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="CIFAR-10 image-folder tree (default: unpack the shared one)")
    parser.add_argument("--n", type=int, default=200, help="images for the small CNN")
    parser.add_argument("--n-rb", type=int, default=100, help="images for the PreActResNet-18")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--train-subset", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3, help="small CNN epochs (the PreActResNet-18 gets 1)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tree = args.data_dir or unpack(ARCHIVE, ROOT / "benchmarks" / ".cache" / "cifar10-jpeg")
    data = load_data("cifar10", tree, val_size=0, train_subset=args.train_subset, seed=0)
    print(header("robustbench_side_by_side", torch.device("cpu"), n=args.n, n_rb=args.n_rb,
                 batch_size=args.batch_size))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. one of ours: robustzoo's small CNN, PGD-5 AT
        recipe = Recipe(name="side-by-side", model="cifar_small_cnn", model_kwargs={"width": 16}, dataset="cifar10",
                        policy=Fixed(eps=8 / 255, step_size=2 / 255, steps=5), defense=PGDAT(), epochs=args.epochs,
                        batch_size=128, lr=0.05, val_size=0)
        start = time.perf_counter()
        Trainer(recipe, tmp / "cnn", data=data, device="cpu", progress=False).fit()
        ours_cnn = robustzoo.load(str(tmp / "cnn"))
        print(f"# small CNN: {args.epochs} epochs of PGD-5 AT on {args.train_subset} images, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        rows.append(("cifar_small_cnn (robustzoo)", "Linf", 8 / 255, args.n, ours_cnn, ours_cnn))
        # 2. a RobustBench architecture, in RobustBench's checkpoint format and place, imported
        name = "Rice2020Overfitting"
        torch.manual_seed(0)
        net = entry(name, "cifar10", "L2")["model"]()
        net = train_with_noise(net, data.train.x[:5000], data.train.y[:5000], 1).eval()
        path = tmp / "models" / "cifar10" / "L2" / f"{name}.pt"
        path.parent.mkdir(parents=True)
        torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
        run = robustzoo.import_robustbench(name, tmp / "rb-run", threat_model="L2", model_dir=tmp / "models")
        from robustbench.utils import load_model

        theirs = load_model(name, model_dir=str(tmp / "models"), dataset="cifar10", threat_model="L2").eval()
        rows.append((f"robustbench {name} (PreActResNet-18)", "L2", 0.5, args.n_rb, robustzoo.load(str(run)),
                     theirs))
        print("| model | threat | n | robustbench clean / AA | time s | robustzoo clean / AA | time s |")
        print("|---|---|---:|---|---:|---|---:|")
        for label, norm, eps, n, ours_model, rb_model in rows:
            idx = balanced_order(data.test.y)[:n]
            x, y = (data.test.x[idx].float() / 255).contiguous(), data.test.y[idx].contiguous()
            begun = time.perf_counter()
            rb_clean, rb_aa = robustbench_aa(rb_model, x, y, norm, eps, args.batch_size)
            rb_s = time.perf_counter() - begun
            begun = time.perf_counter()
            result = evaluate(ours_model, data.test, ("clean", "aa"), eps=eps, n=n, batch_size=args.batch_size,
                              seed=0, sanity=False, norm=norm)
            ours_s = time.perf_counter() - begun
            acc = result.accuracy
            print(f"| {label} | {norm} {eps:.4g} | {n} | {rb_clean:.3f} / {rb_aa:.3f} | {rb_s:.1f} | "
                  f"{acc['clean']:.3f} / {acc['aa']:.3f} | {ours_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
