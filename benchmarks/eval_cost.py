"""Evaluation cost: what `robustzoo.evaluate`'s guards, checks and per-image bookkeeping (and its state
file) add to an AutoAttack run, and what the gradient-masking sanity checks cost, on real CIFAR-10.

A small CNN is first adversarially trained for a few minutes (so that AutoAttack has robust images to
work on), then, on the first `--n` class-balanced test images, interleaved rounds time:
  direct   pyautoattack's `run_standard_evaluation` on the images (the baseline),
  ours     `robustzoo.evaluate(model, data, ("aa",), sanity=False, state_path=...)`,
  sanity   `robustzoo.evaluation.sanity_checks` on the first `--sanity-n` images.
Targets: ours ≤ 1.03 × direct; sanity ≤ 0.25 × direct. `--norm L2 --eps 0.5` runs the L2 threat model
(the same accuracy both ways is the check of robustzoo's L2 AutoAttack path). `--plain` evaluates a model that
robustzoo did not train: a torch `nn.Sequential` CNN trained by a plain PyTorch loop with Gaussian-noise
augmentation (sigma 0.25, which gives it some L2 robustness), no robustzoo code in its training.
`--model` takes `small` (the default, trained here), `prn18` (PreActResNet-18, briefly trained here: the
expensive model), `plain`, `pkg.module:function` or a run folder; repeat it to measure several in one run.
Evaluate / direct is the median of per-round ratios (the two ran back to back, the first alternating). The
model's passes are also counted (calls and images, with and without gradients): the same counts both ways mean
the same work, whatever the machine's load does to the seconds. And the seconds spent inside pyautoattack's
`run_standard_evaluation` are taken out of each run: what is left (evaluate's guards, re-scoring and state file;
the direct run's accuracy pass) is its own cost, a few seconds' figure that the load moves little. Each run's
CPU seconds and page faults (`getrusage`) are printed too: work the kernel does for memory first touched is
not in an instruction count (`eval_instructions.py`), and shows there.
Run: `python benchmarks/eval_cost.py` (n = 1000) or `--quick`.
"""
from __future__ import annotations

import argparse
import hashlib
import resource
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from robustzoo import PGDAT, Fixed, Recipe, Trainer, evaluate, load_data
from robustzoo.evaluation import balanced_order, sanity_checks

from _timing import header, paired
from cifar10_cpu import ARCHIVE, ROOT, unpack


def plain_model(x_uint8: torch.Tensor, y: torch.Tensor, epochs: int) -> torch.nn.Module:
    """A CNN robustzoo did not train: `nn.Sequential`, SGD, CE on images plus Gaussian noise (sigma 0.25)."""
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(64, 10))
    return train_with_noise(model, x_uint8, y, epochs)


def train_with_noise(model: torch.nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, epochs: int) -> torch.nn.Module:
    """A plain PyTorch loop: SGD on CE of images plus Gaussian noise (sigma 0.25), no robustzoo code."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(y)).split(128):
            images = x_uint8[batch].float() / 255
            loss = torch.nn.functional.cross_entropy(model(images + 0.25 * torch.randn_like(images)), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def model_from(spec: str, data, args: argparse.Namespace, tmp: Path) -> tuple[str, torch.nn.Module]:
    """`small` (a small CNN adversarially trained here), `prn18` (PreActResNet-18 trained briefly here, plain
    loop), `plain` (the torch nn.Sequential CNN), `pkg.module:function` (it returns the model), or a run
    folder / checkpoint (`robustzoo.load_model`)."""
    start = time.perf_counter()
    if spec == "small":
        recipe = Recipe(name="eval-cost", model="cifar_small_cnn", model_kwargs={"width": 16}, dataset="cifar10",
                        policy=Fixed(eps=8 / 255, step_size=2 / 255, steps=5), defense=PGDAT(), epochs=args.epochs,
                        batch_size=128, lr=0.05, val_size=0)
        trainer = Trainer(recipe, tmp / "run", data=data, device="cpu", progress=False)
        trainer.fit()
        model, what = trainer.model, f"cifar_small_cnn width 16, PGD-5 AT {args.epochs} epochs"
    elif spec == "prn18":
        from robustzoo import create_model

        torch.manual_seed(0)
        net = create_model("cifar_preact_resnet18", num_classes=10, mean=data.mean, std=data.std)
        model = train_with_noise(net, data.train.x[:args.prn18_train], data.train.y[:args.prn18_train], 1)
        what = f"cifar_preact_resnet18, 1 epoch of noise training on {args.prn18_train} images"
    elif spec == "plain":
        model, what = plain_model(data.train.x, data.train.y, args.epochs), "nn.Sequential CNN, noise training"
    elif ":" in spec:
        import importlib

        module, _, fn = spec.partition(":")
        model, what = getattr(importlib.import_module(module), fn)(), spec
    else:
        from robustzoo import load_model

        model, what = load_model(spec), spec
    print(f"# model {spec}: {what} (ready in {time.perf_counter() - start:.0f} s)", flush=True)
    return spec, model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="small (default), prn18, plain, pkg.module:function, or a "
                                                         "run folder / checkpoint; repeat for several")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--sanity-n", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=10_000)
    parser.add_argument("--prn18-train", type=int, default=2000, help="training images of the prn18 model")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, help="CIFAR-10 image-folder tree (default: unpack the shared one)")
    parser.add_argument("--norm", choices=["Linf", "L2"], default="Linf")
    parser.add_argument("--eps", type=float, help="budget (default: 8/255 in Linf, 0.5 in L2)")
    parser.add_argument("--plain", action="store_true", help="same as --model plain")
    parser.add_argument("--control", action="store_true", help="A/A: time the direct run against itself (in "
                                                               "the evaluate slot), the protocol's noise floor")
    parser.add_argument("--quick", action="store_true", help="smoke run: n 100, 1 round, 1 epoch on 2,000 images")
    args = parser.parse_args()
    if args.quick:
        args.n, args.sanity_n, args.rounds, args.train_subset, args.epochs = 100, 50, 1, 2000, 1
    specs = args.model or (["plain"] if args.plain else ["small"])
    eps = args.eps if args.eps is not None else (8 / 255 if args.norm == "Linf" else 0.5)
    torch.set_num_threads(args.threads)
    tree = args.data_dir or unpack(ARCHIVE, ROOT / "benchmarks" / ".cache" / "cifar10-jpeg")
    data = load_data("cifar10", tree, val_size=0, train_subset=args.train_subset, seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            rows.append(measure(*model_from(spec, data, args, Path(tmp) / spec.replace("/", "_")), data, eps, args,
                                Path(tmp)))
            print(f"# row: {rows[-1]}", flush=True)  # at once: a later model's run may be stopped
    print(f"| model | n | batch | direct AutoAttack s | robustzoo.evaluate s | evaluate / direct (paired median, "
          f"quartiles, range) | evaluate's own cost (outside AutoAttack, beyond direct's) | accuracy both ways; AutoAttack x_adv "
          f"| sanity ({args.sanity_n} images) s | sanity / direct |\n"
          f"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


class Counted(torch.nn.Module):
    """The model, with its passes counted: calls and images, by whether gradients were on."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.counts = model, Counter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grad = "grad" if torch.is_grad_enabled() else "no-grad"
        self.counts[f"{grad} calls"] += 1
        self.counts[f"{grad} images"] += len(x)
        return self.model(x)


class InsideAutoAttack:
    """Seconds spent inside `AutoAttack.run_standard_evaluation`, whoever calls it (patched on the class), and a
    digest of the inputs and x_adv of each call: equal digests both ways mean AutoAttack did the same computation."""

    def __init__(self):
        from pyautoattack import AutoAttack

        self.seconds, self.digests, self.cls = 0.0, [], AutoAttack
        self.original = AutoAttack.run_standard_evaluation

        def timed(adversary, x, y, *a, **k):
            begun = time.perf_counter()
            try:
                x_adv, y_adv = self.original(adversary, x, y, *a, **k)
                self.digests.append(digest(x, y, x_adv))
                return x_adv, y_adv
            finally:
                self.seconds += time.perf_counter() - begun
        self.cls.run_standard_evaluation = timed

    def close(self) -> None:
        self.cls.run_standard_evaluation = self.original


def digest(*tensors: torch.Tensor) -> str:
    """A short hash of the tensors' bytes (bit-for-bit identity)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def measure(spec: str, model: torch.nn.Module, data, eps: float, args: argparse.Namespace, tmp: Path) -> str:
    """Interleaved rounds (the first of the two alternates) of the direct run and of evaluate; sanity once."""
    model = Counted(model).eval()
    inside = InsideAutoAttack()
    idx = balanced_order(data.test.y)[:args.n]
    x, y = (data.test.x[idx].float() / 255).contiguous(), data.test.y[idx].contiguous()

    def direct() -> float:
        from pyautoattack import AutoAttack

        adversary = AutoAttack(model, norm=args.norm, eps=eps, version="standard", seed=0, device="cpu")
        adversary.verbose = False
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=args.batch_size)
        with torch.no_grad():
            return (model(x_adv).argmax(1) == y).float().mean().item()

    def ours() -> float:
        state = tmp / f"state-{time.perf_counter_ns()}.json"
        result = evaluate(model, data.test, ("aa",), eps=eps, n=args.n, batch_size=args.batch_size,
                          seed=0, sanity=False, state_path=state, norm=args.norm)
        return result.accuracy["aa"]

    if args.control:  # A/A: the direct run against itself gives this protocol's noise and position effect
        ours, spec = direct, f"{spec} (control: direct vs direct)"
    print(header("eval_cost", torch.device("cpu"), model=spec, norm=args.norm, eps=f"{eps:.4g}", n=args.n,
                 sanity_n=args.sanity_n, batch_size=args.batch_size, rounds=args.rounds), flush=True)
    times: dict[str, list[float]] = {"direct": [], "ours": []}
    accuracy: dict[str, set] = {"direct": set(), "ours": set()}
    passes: dict[str, Counter] = {}
    outside: dict[str, list[float]] = {"direct": [], "ours": []}  # seconds outside run_standard_evaluation
    digests: dict[str, set] = {"direct": set(), "ours": set()}  # of AutoAttack's inputs and x_adv, per run
    cpu: dict[str, list[float]] = {"direct": [], "ours": []}  # the process's CPU seconds (user + system)
    faults: dict[str, list[int]] = {"direct": [], "ours": []}  # page faults (minor + major): memory first touched
    for r in range(args.rounds):
        for name, fn in ((("direct", direct), ("ours", ours)) if r % 2 == 0 else (("ours", ours), ("direct", direct))):
            model.counts.clear()
            inside.seconds, inside.digests = 0.0, []
            used, begun = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            acc = round(fn(), 4)
            times[name].append(time.perf_counter() - begun)
            now = resource.getrusage(resource.RUSAGE_SELF)
            cpu[name].append(now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime)
            faults[name].append(now.ru_minflt + now.ru_majflt - used.ru_minflt - used.ru_majflt)
            accuracy[name].add(acc)
            outside[name].append(times[name][-1] - inside.seconds)
            passes[name] = Counter(model.counts)
            digests[name].add(tuple(inside.digests))
            print(f"round {r + 1} {name}: {times[name][-1]:.2f} s ({cpu[name][-1]:.2f} CPU s, {faults[name][-1]} "
                  f"page faults), {outside[name][-1]:.2f} s of it outside AutoAttack; accuracy {acc}; model passes "
                  f"{dict(passes[name])}; AutoAttack in/out digest {','.join(inside.digests)}", flush=True)
    inside.close()
    begun = time.perf_counter()
    sub = idx[:args.sanity_n]
    flags, numbers = sanity_checks(model, data.test.x[sub].float() / 255, data.test.y[sub], eps,
                                   batch_size=args.batch_size, seed=0, norm=args.norm)
    sanity_s = time.perf_counter() - begun
    print(f"# sanity numbers: {numbers}; flags: {[f.name for f in flags]}")
    extra = {k: passes["ours"][k] - passes["direct"][k] for k in passes["ours"] | passes["direct"]}
    print(f"# evaluate's passes beyond the direct run's: {extra}")
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {k: statistics.median(v) for k, v in outside.items()}
    print(f"# outside AutoAttack (median): direct {out['direct']:.2f} s, evaluate {out['ours']:.2f} s; evaluate's own "
          f"cost beyond the direct run's: {out['ours'] - out['direct']:.2f} s = "
          f"{(out['ours'] - out['direct']) / med['direct']:.2%} of a direct run")
    inside_s = {k: [t - o for t, o in zip(times[k], outside[k])] for k in times}
    print(f"# CPU seconds (user + system), evaluate / direct (paired): {paired(cpu['ours'], cpu['direct'])}; page "
          f"faults per run (median): direct {statistics.median(faults['direct']):.0f}, evaluate "
          f"{statistics.median(faults['ours']):.0f}")
    print(f"# inside AutoAttack, evaluate's call / the direct call (paired): {paired(inside_s['ours'], inside_s['direct'])}")
    same = accuracy["direct"] == accuracy["ours"] and len(accuracy["ours"]) == 1
    acc = f"{next(iter(accuracy['ours'])):.3f}" if same else f"DIFFER: {accuracy}"
    identical = digests["direct"] == digests["ours"] and len(digests["ours"]) == 1
    print(f"# AutoAttack's inputs and x_adv bit for bit the same in every run both ways: {identical}")
    acc += "; x_adv bit-identical" if identical else "; x_adv DIFFER"
    return (f"| {spec} | {args.n} | {args.batch_size} | {med['direct']:.1f} | {med['ours']:.1f} | "
            f"{paired(times['ours'], times['direct'])} | {out['ours'] - out['direct']:.2f} s = "
            f"{(out['ours'] - out['direct']) / med['direct']:.2%} | {acc} | {sanity_s:.1f} | "
            f"{sanity_s / med['direct']:.1%} |")


if __name__ == "__main__":
    main()
