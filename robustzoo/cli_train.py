"""What `robustzoo train` (and the training half of `reproduce`) does: the shared options, one run, torchrun."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console
from rich.table import Table

from .errors import InvalidValueError

console = Console()

# (the options `train` and `reproduce` share, in the order --help lists them)
TRAIN_OPTIONS: list[Callable[[Any], Any]] = [
    click.argument("recipe_path", metavar="RECIPE.py", type=click.Path(path_type=Path)),
    click.option("--epochs", type=click.IntRange(min=1), help="Override the recipe's number of epochs."),
    click.option("--out", type=click.Path(path_type=Path), help="Run folder (default: runs/<recipe name>)."),
    click.option("--resume", is_flag=True,
                 help="Continue the run in --out from its last checkpoint (the same recipe; no checkpoint yet: "
                      "start it)."),
    click.option("--overwrite", is_flag=True, help="Delete the run in --out and start over."),
    click.option("--checkpoint-every", type=click.FloatRange(min=0), default=30.0, show_default=True,
                 metavar="MINUTES",
                 help="Also write an exact checkpoint inside an epoch this often (0: epoch ends only)."),
    click.option("--data-dir", type=click.Path(path_type=Path), help="Where the dataset lives."),
    click.option("--download", is_flag=True, help="Download the dataset if it is missing (needs internet)."),
    click.option("--batch-size", type=click.IntRange(min=1),
                 help="Override the recipe's batch size (the global batch, split over --nproc processes)."),
    click.option("--model", "model_name", help="Override the recipe's architecture (any timm name)."),
    click.option("--train-subset", type=click.IntRange(min=1), help="Train on N random training images (quick runs)."),
    click.option("--val-size", type=click.IntRange(min=0), help="Override the held-out validation size."),
    click.option("--ema", type=click.FloatRange(0, 1, min_open=True, max_open=True), metavar="DECAY",
                 help="Keep an exponential moving average of the weights (e.g. 0.999): validated, selected and "
                      "saved as the run's weights."),
    click.option("--workers", type=click.IntRange(min=0),
                 help="Decoding processes per rank for streamed datasets (ImageNet; default: the cores shared by "
                      "the ranks, at most 8; 0: in the main process)."),
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N."),
    click.option("--amp", type=click.Choice(["auto", "none", "bf16", "fp16"]), default="auto", show_default=True,
                 help="Mixed precision. auto: bf16 on GPUs that support it, fp16 with a grad scaler on older "
                      "GPUs, none (fp32) on the CPU."),
    click.option("--channels-last", is_flag=True, help="Use the channels_last memory format."),
    click.option("--compile", "compile_mode", is_flag=False, flag_value="default",
                 type=click.Choice(["default", "reduce-overhead", "max-autotune"]),
                 help="torch.compile the model (attack and training passes); optionally name the mode."),
    click.option("--sync-bn", is_flag=True, help="BatchNorm statistics over the global batch (CUDA, data parallel)."),
    click.option("--nproc", type=click.IntRange(min=1),
                 help="Launch N data-parallel processes on this machine through torchrun (one per GPU)."),
]


def train_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the recipe argument and every training option."""
    for option in reversed(TRAIN_OPTIONS):
        command = option(command)
    return command


def make_trainer(recipe_path: Path, *, epochs: int | None, out: Path | None, resume: bool, overwrite: bool,
                 checkpoint_every: float, data_dir: Path | None, download: bool, batch_size: int | None,
                 model_name: str | None, train_subset: int | None, val_size: int | None, device: str, amp: str,
                 channels_last: bool, compile_mode: str | None, sync_bn: bool, progress: bool,
                 ema: float | None = None, workers: int | None = None) -> Any:
    """The recipe with the command line's overrides, as a Trainer writing to --out (nothing trained yet)."""
    from .recipe import load_recipe
    from .runs import check_not_a_file
    from .trainer import Trainer

    recipe, sha = load_recipe(recipe_path)
    changes = {"model_kwargs": {}} if model_name and model_name != recipe.model else {}
    recipe = recipe.replace(epochs=epochs, batch_size=batch_size, model=model_name, train_subset=train_subset,
                            val_size=val_size, ema=ema, **changes,
                            data_dir=str(data_dir) if data_dir else None, download=download or None)
    out = out or Path("runs") / recipe.name
    if resume and overwrite:
        raise InvalidValueError("--resume and --overwrite together; expected one of them")
    check_not_a_file(out)  # before loading any data (the trainer checks the folder fully when it starts)
    return Trainer(recipe, out, device=device, amp=amp, channels_last=channels_last, compile=compile_mode or False,
                   sync_bn=sync_bn, progress=progress, checkpoint_every=checkpoint_every, recipe_sha256=sha,
                   recipe_path=recipe_path.as_posix(), workers=workers)


def fit(trainer: Any, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Train (or continue) the run, printing what runs where and how it ended (rank 0)."""
    recipe, main_rank = trainer.recipe, trainer.dist.is_main
    if main_rank:
        console.print(f"[bold]{recipe.name}[/]: {recipe.model} on {recipe.dataset}, "
                      f"{type(recipe.policy).__name__} × {type(recipe.defense).__name__}, "
                      f"{recipe.epochs} epochs on {where(trainer)} → {trainer.out}")
    record = trainer.fit(resume=resume, overwrite=overwrite)
    if record and main_rank:
        console.print(f"done: val clean {record['val_clean_acc']:.2%}, val PGD-{recipe.val_steps} "
                      f"{record['val_robust_acc']:.2%} (best {trainer.best:.2%}); weights in {trainer.out}")
    return record


def where(trainer: Any) -> str:
    return f"{trainer.device}" + (f" × {trainer.dist.world_size} processes" if trainer.dist.enabled else "")


def launch_torchrun(nproc: int) -> int:
    """Run this same command under `torchrun --standalone --nproc-per-node N`; its exit code."""
    ctx = click.get_current_context()
    args = [ctx.info_name or "train"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name == "nproc" or value is None or value is False or value == param.default:
            continue
        if isinstance(param, click.Argument):
            args.append(str(value))
        elif getattr(param, "is_flag", False) and isinstance(value, bool):
            args.append(param.opts[0])
        elif getattr(param, "multiple", False):
            for item in value:
                args += [param.opts[0], str(item)]
        else:
            args += [param.opts[0], str(value)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "robustzoo", *args]
    console.print(f"launching: torchrun --standalone --nproc-per-node={nproc} -m robustzoo {' '.join(args)}",
                  highlight=False)
    return run_forwarding_signals(command)


def run_forwarding_signals(command: list[str]) -> int:
    """Run `command`, passing SIGTERM/SIGUSR1/SIGINT on to it (torchrun hands them to its workers, which save a
    checkpoint and stop); exit code 75 (`PreemptedError`'s) when such a signal ended it, else its own."""
    import signal
    import subprocess

    from .errors import PreemptedError
    from .preemption import STOP_SIGNALS

    child = subprocess.Popen(command)
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        child.send_signal(signum)

    forwarded = (*STOP_SIGNALS, signal.SIGINT)
    previous = {s: signal.signal(s, forward) for s in forwarded}
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if any(s in STOP_SIGNALS for s in received):
        return PreemptedError.exit_code
    return code


def print_benchmark(trainer: Any, steps: int) -> None:
    """`train --benchmark`: images/s of the training step against its (K+1)-pass limit; nothing written."""
    from .benchmark import measure

    result = measure(trainer, steps=steps)
    if not trainer.dist.is_main:
        return
    recipe = trainer.recipe
    table = Table(title=f"{recipe.name}: {recipe.model}, global batch {recipe.batch_size}, {where(trainer)}, "
                        f"amp {trainer.run_info['amp'] or 'none'}, {type(recipe.policy).__name__} × "
                        f"{type(recipe.defense).__name__}")
    for col in ("", "images/s", "s / batch"):
        table.add_column(col, justify="right")
    table.add_row("forward+backward (training pass)", f"{result.full_images_per_s:.1f}", f"{result.full_pass_s:.4f}")
    table.add_row("input-gradient pass (attack)", f"{result._rate(result.input_grad_pass_s):.1f}",
                  f"{result.input_grad_pass_s:.4f}")
    table.add_row(f"adversarial training step (K = {result.mean_steps:.2f})", f"{result.images_per_s:.1f}",
                  f"{result.step_s:.4f}")
    table.add_row("(K+1) × forward+backward limit", f"{result.limit_images_per_s:.1f}", "")
    console.print(table)
    console.print(f"ratio to the (K+1) limit: {result.limit_ratio:.3f} (above 1: attack passes skip weight "
                  f"gradients); time over the floor K·input-gradient + 1 training pass: {result.floor_ratio:.3f}; "
                  f"CIFAR-10 epoch (50,000 images) ≈ {result.epoch_seconds():.1f} s")
