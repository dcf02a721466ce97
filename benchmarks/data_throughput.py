"""Data throughput: images/s of the loader alone and of loader + a training step, per worker count, for the
streaming path (JPEG CIFAR-10 unpacked as a folder, and a tree of larger variable-size JPEGs written here)
against the in-memory path; and the peak memory of an epoch as the dataset grows 4x.

The training step is a plain forward + backward + SGD step (the floor of an adversarial step, which adds K
input-gradient passes: the heavier the step, the less the loader matters). Memory is the proportional set
size (PSS: shared pages split between the processes) of the process and its workers, sampled every 50 ms.
Run: `python benchmarks/data_throughput.py` (add `--quick` for a smoke run, `--device cuda` on a GPU).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from robustzoo.data import Stream, load_data
from robustzoo.models import create_model

from _timing import header

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def write_large_tree(root: Path, n: int, classes: int = 10, sizes: tuple[int, int] = (256, 512), seed: int = 0) -> Path:
    """`n` smooth variable-size JPEGs (ImageNet-like sizes and file sizes), in train/ and a small test/."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("test", max(classes, n // 50))):
        for i in range(count):
            folder = root / split / f"c{i % classes}"
            folder.mkdir(parents=True, exist_ok=True)
            w, h = (int(v) for v in rng.integers(*sizes, size=2))
            small = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
            grain = rng.integers(-12, 13, (h, w, 1), dtype=np.int16)  # texture: photo-like JPEG sizes
            pixels = np.clip(np.asarray(small, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=90)
    return root


def pss_mb(pid: int) -> float:
    """PSS of `pid` and its descendants, MiB (Linux /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return total


class PeakMemory:
    """The peak PSS of this process tree while the block runs."""

    def __enter__(self) -> "PeakMemory":
        self.peak, self._stop = pss_mb(os.getpid()), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, pss_mb(os.getpid()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def loader_images_per_s(loader, batches: int, step=None) -> float:
    it = iter(loader)
    x, y = next(it)  # the workers' start-up and the first batch are not timed
    if step:
        step(x, y)
    done, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            x, y = next(it)
        except StopIteration:
            break
        if step:
            step(x, y)
        done += len(y)
    return done / (time.perf_counter() - start)


def training_step(model_name: str, num_classes: int, size: int, device: torch.device):
    model = create_model(model_name, num_classes=num_classes, mean=(0.5,) * 3, std=(0.25,) * 3,
                         **({"img_size": size} if "vit" in model_name else {})).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return step


def memory_run(args: argparse.Namespace) -> None:
    """One epoch in this (fresh) process; prints the peak PSS as JSON (a subprocess of the main run)."""
    with PeakMemory() as peak:
        stream = Stream(image_size=args.size, workers=args.workers) if args.path == "stream" else False
        data = load_data(args.dataset, args.data_dir, val_size=0, stream=stream, train_subset=args.subset)
        loader = data.train_loader(args.batch_size, device=args.device)
        n = sum(len(y) for _, y in loader)
    print(json.dumps({"peak_pss_mb": round(peak.peak, 1), "images": n}))


def quarter_tree(root: Path, out: Path) -> Path:
    """Every 4th file of each class folder of `root` (symlinks): the same data at a quarter of its size."""
    for split in ("train", "test"):
        for folder in sorted((root / split).iterdir()):
            (out / split / folder.name).mkdir(parents=True)
            for f in sorted(folder.iterdir())[::4]:
                (out / split / folder.name / f.name).symlink_to(f)
    return out


def memory_table(trees: list[tuple[str, str, Path, Path, str, int]], batch_size: int, workers: int) -> list[str]:
    """Peak PSS of one epoch in a fresh process, on a tree and on its quarter."""
    rows = ["| data | path | training images | peak PSS MiB (process + workers) |", "|---|---|---:|---:|"]
    for label, dataset, quarter, full, path, size in trees:
        for root in (quarter, full):
            cmd = [sys.executable, __file__, "--memory-run", "--dataset", dataset, "--data-dir", str(root),
                   "--path", path, "--size", str(size), "--workers", str(workers), "--batch-size", str(batch_size)]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parent)
            if done.returncode:
                raise RuntimeError(done.stderr[-2000:])
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(f"| {label} | {path} | {result['images']} | {result['peak_pss_mb']:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar-dir", type=Path, help="the unpacked CIFAR-10 JPEG tree (default: unpack "
                                                       "../shared/data/cifar10-jpeg.tar.gz)")
    parser.add_argument("--large-n", type=int, default=2000, help="images in the written variable-size tree")
    parser.add_argument("--workers", default="0,1,2,3,4", help="comma list of worker counts")
    parser.add_argument("--batch-size", type=int, default=128, help="batch of the CIFAR-10 cases")
    parser.add_argument("--large-batch-size", type=int, default=32, help="batch of the 224 px cases")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="smoke run: small trees, few batches")
    parser.add_argument("--memory-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--subset", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_run:
        args.workers = int(args.workers)
        return memory_run(args)
    if args.quick:
        args.large_n, args.batches, args.workers, args.large_batch_size = 200, 3, "0,2", 16
    device = torch.device(args.device)
    workers = [int(w) for w in args.workers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="data_throughput_"))
    cifar = args.cifar_dir
    if cifar is None:
        if not SHARED.is_file():
            raise SystemExit(f"{SHARED} not found; pass --cifar-dir (a CIFAR-10 JPEG image-folder tree)")
        with tarfile.open(SHARED) as tar:
            tar.extractall(tmp / "cifar10", filter="data")
        cifar = tmp / "cifar10"
    start = time.perf_counter()
    large = write_large_tree(tmp / "large", args.large_n)
    written = time.perf_counter() - start
    jpeg_kb = np.mean([p.stat().st_size for p in (large / "train").rglob("*.jpg")]) / 1024
    print(header("data_throughput", device, batch=f"{args.batch_size} (224 px: {args.large_batch_size})",
                 cores=os.cpu_count(),
                 large_tree=f"{args.large_n} JPEGs 256-512 px, mean {jpeg_kb:.0f} KiB (written in {written:.0f} s)"))
    results: dict[str, object] = {"batch_size": args.batch_size, "cores": os.cpu_count()}

    rows = ["| data | path | workers | loader alone img/s | loader + train step img/s | step alone img/s | "
            "loader+step / step alone |", "|---|---|---:|---:|---:|---:|---:|"]
    subset = 8_000 if args.quick else None  # CIFAR images in the throughput rows (memory rows: whole trees)
    cases = [("CIFAR-10 JPEG folder @32", "cifar10", cifar, 32, "cifar_preact_resnet18", args.batch_size),
             ("large JPEG tree @224", "imagefolder", large, 224, "resnet18", args.large_batch_size)]
    for label, dataset, root, size, model, batch_size in cases:
        step = training_step(model, 10, size, device)
        fixed = (torch.rand(batch_size, 3, size, size, device=device),
                 torch.randint(0, 10, (batch_size,), device=device))
        for _ in range(2):
            step(*fixed)

        def step_alone() -> float:  # measured right before each loader + step row: the same machine state
            t = time.perf_counter()
            for _ in range(max(2, args.batches // 4)):
                step(*fixed)
            return max(2, args.batches // 4) * batch_size / (time.perf_counter() - t)
        paths = ([("memory", None)] if dataset == "cifar10" else []) + [("stream", w) for w in workers]
        for path, w in paths:
            data = load_data(dataset, root, val_size=0, train_subset=subset if dataset == "cifar10" else None,
                             stream=False if path == "memory" else Stream(image_size=size, workers=w))
            with_step = w is None or w <= 2  # more workers than cores only take them from the step
            # each measurement on a fresh loader, its workers shut down after it: none decodes in the background
            # of another (step alone first, with no loader alive)
            step_rate = step_alone() if with_step else float("nan")
            both = loader_images_per_s(data.train_loader(batch_size, device=device), max(2, args.batches // 4),
                                       step) if with_step else float("nan")
            gc.collect()
            alone = loader_images_per_s(data.train_loader(batch_size, device=device), args.batches)
            gc.collect()
            cells = (f"{both:.1f} | {step_rate:.1f} | {both / step_rate:.3f}" if with_step else "- | - | -")
            rows.append(f"| {label} | {path} | {'-' if w is None else w} | {alone:.0f} | {cells} |")
            results[f"{dataset}/{path}" + (f"/{w}" if w is not None else "")] = {
                "loader": alone, **({"loader_step": both, "step": step_rate} if with_step else {})}
    print("\n".join(rows))
    cifar_q = quarter_tree(cifar, tmp / "cifar10_quarter")
    large_q = quarter_tree(large, tmp / "large_quarter")
    memory = memory_table([("CIFAR-10 JPEG folder @32", "cifar10", cifar_q, cifar, "memory", 32),
                           ("CIFAR-10 JPEG folder @32", "cifar10", cifar_q, cifar, "stream", 32),
                           ("large JPEG tree @224", "imagefolder", large_q, large, "stream", 224)],
                          args.large_batch_size, 2)
    print("\n".join(memory))
    results["memory"] = memory
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
