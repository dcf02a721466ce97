"""The `robustzoo` command line: train, evaluate, push, zoo, plot, policies, models."""
from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .errors import InvalidValueError, RobustzooError

console = Console()


class Group(click.Group):
    """Turns robustzoo's errors into one line on stderr and exit code 2, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.set_verbosity_error()  # its retry warnings would bury the one line we print on failure
        try:
            return super().invoke(ctx)
        except RobustzooError as e:  # one line; the exit code says which kind (2: bad input, 3: diverged, ...)
            click.echo(f"{e.label}: {e}", err=True)
            sys.exit(e.exit_code)


class Eps(click.ParamType):
    """A budget written as a fraction (`8/255`) or a float (`0.0314`), in [0,1] pixel scale."""

    name = "eps"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, float):
            return value
        try:
            return float(Fraction(str(value)))
        except (ValueError, ZeroDivisionError):
            self.fail(f"{value!r} is not a number or fraction such as 8/255", param, ctx)


@click.group(cls=Group)
@click.version_option(package_name="robustzoo")
def main() -> None:
    """robustzoo: adversarial training with adaptive attack policies, and a zoo of robust models."""


@main.command()
@click.argument("recipe_path", metavar="RECIPE.py", type=click.Path(path_type=Path))
@click.option("--epochs", type=click.IntRange(min=1), help="Override the recipe's number of epochs.")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder (default: runs/<recipe name>).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint (the same recipe; no checkpoint yet: start it).")
@click.option("--overwrite", is_flag=True, help="Delete the run in --out and start over.")
@click.option("--checkpoint-every", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="MINUTES", help="Also write an exact checkpoint inside an epoch this often (0: epoch ends only).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where the dataset lives.")
@click.option("--download", is_flag=True, help="Download the dataset if it is missing (needs internet).")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Override the recipe's batch size (the global batch, split over --nproc processes).")
@click.option("--model", "model_name", help="Override the recipe's architecture (any timm name).")
@click.option("--train-subset", type=click.IntRange(min=1), help="Train on N random training images (quick runs).")
@click.option("--val-size", type=click.IntRange(min=0), help="Override the held-out validation size.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--amp", type=click.Choice(["auto", "none", "bf16", "fp16"]), default="auto", show_default=True,
              help="Mixed precision. auto: bf16 on GPUs that support it, fp16 with a grad scaler on older "
                   "GPUs, none (fp32) on the CPU.")
@click.option("--channels-last", is_flag=True, help="Use the channels_last memory format.")
@click.option("--compile", "compile_mode", is_flag=False, flag_value="default",
              type=click.Choice(["default", "reduce-overhead", "max-autotune"]),
              help="torch.compile the model (attack and training passes); optionally name the mode.")
@click.option("--sync-bn", is_flag=True, help="BatchNorm statistics over the global batch (CUDA, data parallel).")
@click.option("--nproc", type=click.IntRange(min=1),
              help="Launch N data-parallel processes on this machine through torchrun (one per GPU).")
@click.option("--benchmark", is_flag=True,
              help="Measure images/s and the ratio to the (K+1) forward+backward limit; trains nothing to disk.")
@click.option("--benchmark-steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed batches of --benchmark (after 2 warmup batches).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(recipe_path: Path, epochs: int | None, out: Path | None, resume: bool, overwrite: bool,
          checkpoint_every: float, data_dir: Path | None,
          download: bool, batch_size: int | None, model_name: str | None, train_subset: int | None,
          val_size: int | None, device: str, amp: str, channels_last: bool, compile_mode: str | None,
          sync_bn: bool, nproc: int | None, benchmark: bool, benchmark_steps: int, quiet: bool) -> None:
    """Train RECIPE.py (a Python file with a recipe() function).

    A folder that holds a run is never replaced: --resume continues it, --overwrite starts over. SIGTERM or
    SIGUSR1 saves an exact checkpoint and exits with code 75 (then --resume); a non-finite loss exits with 3.
    Data parallel: `--nproc N` on one machine, or `torchrun ... -m robustzoo train RECIPE.py` for
    several machines (see the README).
    """
    import os

    if nproc and nproc > 1 and "WORLD_SIZE" not in os.environ:
        sys.exit(_launch_torchrun(nproc))
    from . import distributed
    from .recipe import load_recipe
    from .trainer import Trainer

    recipe, sha = load_recipe(recipe_path)
    changes = {"model_kwargs": {}} if model_name and model_name != recipe.model else {}
    recipe = recipe.replace(epochs=epochs, batch_size=batch_size, model=model_name, train_subset=train_subset,
                            val_size=val_size, **changes,
                            data_dir=str(data_dir) if data_dir else None, download=download or None)
    out = out or Path("runs") / recipe.name
    if resume and overwrite:
        raise InvalidValueError("--resume and --overwrite together; expected one of them")
    from .runs import check_not_a_file

    check_not_a_file(out)  # before loading any data (the trainer checks the folder fully when it starts)
    try:
        trainer = Trainer(recipe, out, device=device, amp=amp, channels_last=channels_last,
                          compile=compile_mode or False, sync_bn=sync_bn, progress=not quiet and not benchmark,
                          checkpoint_every=checkpoint_every, recipe_sha256=sha, recipe_path=recipe_path.as_posix())
        main_rank = trainer.dist.is_main
        where = f"{trainer.device}" + (f" × {trainer.dist.world_size} processes" if trainer.dist.enabled else "")
        if benchmark:
            _benchmark(trainer, benchmark_steps, main_rank, where)
            return
        if main_rank:
            console.print(f"[bold]{recipe.name}[/]: {recipe.model} on {recipe.dataset}, "
                          f"{type(recipe.policy).__name__} × {type(recipe.defense).__name__}, "
                          f"{recipe.epochs} epochs on {where} → {out}")
        record = trainer.fit(resume=resume, overwrite=overwrite)
        if record and main_rank:
            console.print(f"done: val clean {record['val_clean_acc']:.2%}, val PGD-{recipe.val_steps} "
                          f"{record['val_robust_acc']:.2%} (best {trainer.best:.2%}); weights in {out}")
    finally:
        distributed.cleanup()


def _launch_torchrun(nproc: int) -> int:
    """Run this same `train` command under `torchrun --standalone --nproc-per-node N`; its exit code."""
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
        else:
            args += [param.opts[0], str(value)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "robustzoo", *args]
    console.print(f"launching: torchrun --standalone --nproc-per-node={nproc} -m robustzoo {' '.join(args)}",
                  highlight=False)
    return _run_forwarding_signals(command)


def _run_forwarding_signals(command: list[str]) -> int:
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


def _benchmark(trainer: Any, steps: int, main_rank: bool, where: str) -> None:
    from .benchmark import measure

    result = measure(trainer, steps=steps)
    if not main_rank:
        return
    recipe = trainer.recipe
    table = Table(title=f"{recipe.name}: {recipe.model}, global batch {recipe.batch_size}, {where}, "
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


@main.command()
@click.argument("source", metavar="RUN|ZOO_NAME|REPO_ID", required=False)
@click.option("--attack", "attacks", multiple=True, default=("clean", "pgd20"), show_default=True,
              help="clean, fgsm, pgd10, pgd20, pgd50 (any pgdK), cw, aa; repeat or comma-separate.")
@click.option("--eps", type=Eps(), help="L-inf budget, e.g. 8/255 (default: the model's threat model).")
@click.option("--n", "--num-images", "n", type=click.IntRange(min=1),
              help="Evaluate the first N test images (class-balanced order); under torchrun write --num-images.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--aa-version", type=click.Choice(["standard", "plus", "rand"]), default="standard",
              show_default=True, help="AutoAttack version.")
@click.option("--aa-attacks", help="Custom AutoAttack list, e.g. apgd-ce,apgd-t (sets version custom).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--randomized", is_flag=True, help="Accept a randomized model (AutoAttack's rand version, EOT).")
@click.option("--sanity/--no-sanity", default=None,
              help="Gradient-masking checks on --sanity-n images (default: on when aa runs).")
@click.option("--sanity-n", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--chunk-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Images per step saved to the resume state (AutoAttack attacks a chunk at once).")
@click.option("--amp", type=click.Choice(["none", "bf16", "fp16"]), default="none", show_default=True,
              help="Run the model passes under autocast (faster on GPUs; the result records it).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where the dataset lives.")
@click.option("--device", default="auto", show_default=True)
@click.option("--revision", help="Hub revision (branch, tag or commit) of a zoo name or repo id.")
@click.option("--card", "fill_card", is_flag=True,
              help="Fill the robustness card (RUN/card.md; <repo>.card.md beside --out for Hub models).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Result JSON (default: eval.json beside a run's weights, ./<repo>.eval.json for Hub models).")
@click.option("--compare", nargs=2, type=click.Path(path_type=Path), metavar="A.json B.json",
              help="Print which images changed outcome between two result files (no evaluation).")
@click.option("--reproduce", type=click.Path(path_type=Path), metavar="RESULT.json",
              help="Re-run the evaluation RESULT.json records; exit 1 unless the numbers are identical.")
def evaluate(source: str | None, attacks: tuple[str, ...], eps: float | None, n: int | None, batch_size: int,
             aa_version: str, aa_attacks: str | None, seed: int, randomized: bool, sanity: bool | None,
             sanity_n: int, chunk_size: int, amp: str, data_dir: Path | None, device: str, revision: str | None,
             fill_card: bool, out: Path | None, compare: tuple[Path, Path] | None, reproduce: Path | None) -> None:
    """Evaluate a run folder, checkpoint, zoo model or Hub repo under attacks; print a table, write JSON.

    The JSON keeps every image's outcome under every attack, the worst case over attacks, the guards'
    notes, gradient-masking flags and what reproduces it. Under `torchrun --nproc-per-node N -m robustzoo
    evaluate ...` each process attacks a share of the images; rank 0 prints and writes the result.
    """
    from . import cli_eval, distributed
    from .attacks import check_attack, check_autoattack
    from .trainer import resolve_device

    if compare:
        return cli_eval.print_comparison(*compare)
    if reproduce:
        sys.exit(0 if cli_eval.reproduce(reproduce, data_dir=data_dir, device=device) else 1)
    if not source:
        raise InvalidValueError("evaluate needs RUN|ZOO_NAME|REPO_ID (or --compare A.json B.json, --reproduce R.json)")
    names = [check_attack(a.strip()) for spec in attacks for a in spec.split(",") if a.strip()]
    aa_list = [a.strip() for a in aa_attacks.split(",")] if aa_attacks else None
    if aa_list and "aa" not in names:
        raise InvalidValueError(f"--aa-attacks {aa_attacks!r} given but 'aa' is not among the attacks {names}")
    check_autoattack(aa_version, aa_list)
    options = {"attacks": names, "eps": eps, "n": n, "batch_size": batch_size, "seed": seed,
               "aa_version": aa_version, "aa_attacks": aa_list, "randomized": randomized, "sanity": sanity,
               "sanity_n": sanity_n, "chunk_size": chunk_size, "amp": None if amp == "none" else amp}
    dist, rank_device = distributed.setup(resolve_device(device))  # under torchrun: each rank a shard
    try:
        cli_eval.run(source, options, data_dir=data_dir, device=str(rank_device), revision=revision,
                     fill_card=fill_card, out=out, main_rank=dist.is_main)
    finally:
        distributed.cleanup()


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repo as private.")
@click.option("--token", envvar="HF_TOKEN", show_envvar=True,
              help="Hub token with write access (default: huggingface_hub's login). Never printed.")
@click.option("--name", help="The model's name on its card (default: the recipe's name).")
def push(run_dir: Path, repo_id: str, private: bool, token: str | None, name: str | None) -> None:
    """Publish RUN_DIR's weights, timm config and robustness card to the Hub repo REPO_ID in one commit."""
    from .zoo import push as push_run

    result = push_run(run_dir, repo_id, private=private, token=token or None, name=name)
    console.print(f"pushed {run_dir} → {result.repo_id} @ {result.commit[:12]} ({result.url})")
    console.print(f"model.safetensors sha256 {result.card.weights_sha256}; card saved to {run_dir / 'card.md'} "
                  f"(copy it to zoo_cards/ to list the model in the zoo)")


@main.group()
def zoo() -> None:
    """The model zoo: list entries, show a card, make a card from a recipe."""


def _cell(card: Any, attack: str) -> str:
    if attack in card.results:
        return f"{card.results[attack]:.2f}"
    target = card.paper.get(attack)
    return f"[dim]({target:.2f})[/]" if target is not None else "[dim]—[/]"


@zoo.command("list")
def zoo_list() -> None:
    """Every zoo model with its measured accuracy (paper targets dim, in parentheses)."""
    from .zoo import list_zoo
    from .zoo.card import MAIN_ATTACKS, eps_str

    table = Table(title="robustzoo model zoo: test accuracy %, measured ([dim](paper target)[/] until measured)")
    table.add_column("name", no_wrap=True)
    for col in ("model", "data", "policy × defense", "L∞ eps"):
        table.add_column(col)
    for col in MAIN_ATTACKS.values():
        table.add_column(col, justify="right")
    table.add_column("weights")
    for card in list_zoo():
        table.add_row(card.name, card.architecture, card.dataset, f"{card.policy} × {card.defense_label}",
                      eps_str(card.threat_model.get("eps")), *(_cell(card, a) for a in MAIN_ATTACKS),
                      card.repo_id if card.weights_sha256 else "[dim]not published[/]")
    console.print(table)


@zoo.command("show")
@click.argument("name")
def zoo_show(name: str) -> None:
    """One zoo model's card: setting, measured results against the paper's, provenance."""
    from .zoo import zoo_card
    from .zoo.card import MAIN_ATTACKS, attack_title, eps_str

    card = zoo_card(name)
    console.print(f"[bold]{card.name}[/] — {card.architecture} on {card.dataset}, L∞ eps {eps_str(card.threat_model.get('eps'))}, "
                  f"{card.policy} × {card.defense_label}")
    attacks = [*MAIN_ATTACKS, *(a for a in card.results if a not in MAIN_ATTACKS)]
    table = Table()
    table.add_column("")
    for a in attacks:
        table.add_column(attack_title(a), justify="right")
    n = card.evaluation.get("n")
    table.add_row(f"measured{f' (n={n})' if n else ''}",
                  *(f"{card.results[a]:.2f}" if a in card.results else "—" for a in attacks))
    if card.paper:
        table.add_row(f"target: {card.paper.get('source', 'paper')}",
                      *(f"{card.paper[a]:.2f}" if a in card.paper else "—" for a in attacks))
    console.print(table)
    for key, value in (("policy", card.policy_config), ("defense", card.defense_config),
                       ("recipe", f"{card.recipe} (sha256 {card.recipe_sha256})"), ("hub repo", card.repo_id),
                       ("revision", card.revision), ("weights sha256", card.weights_sha256 or "not published"),
                       ("epochs trained", card.epochs)):
        console.print(f"  {key}: {json.dumps(value) if isinstance(value, dict) else value}", highlight=False)


@zoo.command("card")
@click.argument("recipe_path", metavar="RECIPE.py", type=click.Path(path_type=Path))
@click.argument("name")
@click.option("--repo-id", help="Hub repo the entry will be published to (default: robustzoo/NAME).")
@click.option("--out", type=click.Path(path_type=Path), help="Card file (default: zoo_cards/NAME.md).")
def zoo_card_cmd(recipe_path: Path, name: str, repo_id: str | None, out: Path | None) -> None:
    """Write the card of a zoo entry from RECIPE.py: its setting and the paper's numbers as targets."""
    from .recipe import load_recipe
    from .zoo import card_from_recipe
    from .zoo.catalog import zoo_dir

    recipe, sha = load_recipe(recipe_path)
    card = card_from_recipe(recipe, recipe_path.as_posix(), sha, name=name, repo_id=repo_id)
    path = card.save(out or zoo_dir() / f"{name}.md")
    console.print(f"wrote {path}")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def plot(run_dir: Path) -> None:
    """Draw a run's training curves and its per-epoch strategy distributions as PNG files."""
    from .plot import plot_run

    for path in plot_run(run_dir):
        console.print(f"wrote {path}")


@main.command()
def policies() -> None:
    """List the registered attack policies."""
    from .policies import POLICIES

    for name in POLICIES.names():
        doc = (POLICIES.get(name).__doc__ or "").strip().splitlines()[0]
        console.print(f"[bold]{name}[/]  {doc}")


@main.command()
@click.argument("pattern", required=False, default="")
def models(pattern: str) -> None:
    """List robustzoo's CIFAR architectures, or timm models matching PATTERN (e.g. 'resnet*')."""
    from .models import list_models

    names = list_models(pattern)
    console.print("\n".join(names) if names else f"no model matches {pattern!r}")
    if not pattern:
        console.print("[dim]…and every timm model: `robustzoo models 'PATTERN*'` searches them[/]")


if __name__ == "__main__":
    main()
