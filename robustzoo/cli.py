"""The `robustzoo` command line: train, reproduce, evaluate, push, zoo, plot, policies, models."""
from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from . import cli_train
from .cli_train import train_options
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
@train_options
@click.option("--benchmark", is_flag=True,
              help="Measure images/s and the ratio to the (K+1) forward+backward limit; trains nothing to disk.")
@click.option("--benchmark-steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed batches of --benchmark (after 2 warmup batches).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(recipe_path: Path, resume: bool, overwrite: bool, nproc: int | None, benchmark: bool,
          benchmark_steps: int, quiet: bool, **options: Any) -> None:
    """Train RECIPE.py (a Python file with a recipe() function).

    A folder that holds a run is never replaced: --resume continues it, --overwrite starts over. SIGTERM or
    SIGUSR1 saves an exact checkpoint and exits with code 75 (then --resume); a non-finite loss exits with 3.
    Data parallel: `--nproc N` on one machine, or `torchrun ... -m robustzoo train RECIPE.py` for
    several machines (see the README).
    """
    import os

    if nproc and nproc > 1 and "WORLD_SIZE" not in os.environ:
        sys.exit(cli_train.launch_torchrun(nproc))
    from . import distributed

    try:
        trainer = cli_train.make_trainer(recipe_path, resume=resume, overwrite=overwrite,
                                         progress=not quiet and not benchmark, **options)
        if benchmark:
            cli_train.print_benchmark(trainer, benchmark_steps)
            return
        cli_train.fit(trainer, resume=resume, overwrite=overwrite)
    finally:
        distributed.cleanup()


@main.command()
@train_options
@click.option("--attack", "attacks", default="clean,pgd20,cw,aa", show_default=True,
              help="The attacks of the evaluation (comma-separated), plus any other the recipe's paper row reports.")
@click.option("--n", "--num-images", "n", type=click.IntRange(min=1),
              help="Evaluate the first N test images (class-balanced order; default: the whole test split).")
@click.option("--eval-batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="The evaluation's seed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def reproduce(recipe_path: Path, resume: bool, overwrite: bool, nproc: int | None, attacks: str, n: int | None,
              eval_batch_size: int, seed: int, quiet: bool, **options: Any) -> None:
    """Reproduce RECIPE.py's paper row: train it, evaluate the selected checkpoint, print reported vs measured.

    Takes every `train` option (e.g. a shortened --epochs, --model, --train-subset for a quick check). The
    evaluation (clean, PGD-20, CW, AutoAttack by default) runs on the whole test split or the first --n images
    and fills the run's card. --resume continues a stopped run: training from its last checkpoint, the
    evaluation from its last finished chunk; a finished part is not run again.
    """
    import os

    if nproc and nproc > 1 and "WORLD_SIZE" not in os.environ:
        sys.exit(cli_train.launch_torchrun(nproc))
    from . import distributed
    from .evaluation import check_attack
    from .recipe import load_recipe
    from .reproduce import reproduce_run

    names = [check_attack(a.strip()) for a in attacks.split(",") if a.strip()]
    if not names:
        raise InvalidValueError(f"--attack {attacks!r} names no attack; expected e.g. clean,pgd20,cw,aa")
    reported = load_recipe(recipe_path)[0].reported  # a column the paper reports (e.g. PGD-10) is measured too
    names += [a for a in (reported.as_dict() if reported else {}) if a != "source" and a not in names]
    try:
        trainer = cli_train.make_trainer(recipe_path, resume=resume, overwrite=overwrite, progress=not quiet,
                                         **options)
        cli_train.fit(trainer, resume=resume, overwrite=overwrite)
        reproduce_run(trainer, attacks=names, n=n, batch_size=eval_batch_size, seed=seed,
                      data_dir=options.get("data_dir"), original=load_recipe(recipe_path)[0], resume=resume)
    finally:
        distributed.cleanup()


@main.command()
@click.argument("source", metavar="RUN|ZOO_NAME|REPO_ID", required=False)
@click.option("--attack", "attacks", multiple=True, default=("clean", "pgd20"), show_default=True,
              help="clean, fgsm, pgd10, pgd20, pgd50 (any pgdK), cw, aa; repeat or comma-separate.")
@click.option("--eps", type=Eps(), help="Budget, e.g. 8/255 (L∞) or 0.5 (L2) (default: the model's threat model).")
@click.option("--norm", type=click.Choice(["Linf", "L2"]),
              help="Threat model of the attacks (default: the model's); another norm needs --eps.")
@click.option("--n", "--num-images", "n", type=click.IntRange(min=1),
              help="Evaluate the first N test images (see --order); under torchrun write --num-images.")
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
@click.option("--order", type=click.Choice(["balanced", "first"]), default="balanced", show_default=True,
              help="Which N images: class-balanced, or the first N in file order (RobustBench's n_examples).")
@click.option("--robustbench-json", type=click.Path(path_type=Path), metavar="FILE",
              help="Also write RobustBench's model_info JSON (a leaderboard submission) from the result and card.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Result JSON (default: eval.json beside a run's weights, ./<repo>.eval.json for Hub models).")
@click.option("--compare", nargs=2, type=click.Path(path_type=Path), metavar="A.json B.json",
              help="Print which images changed outcome between two result files (no evaluation).")
@click.option("--reproduce", type=click.Path(path_type=Path), metavar="RESULT.json",
              help="Re-run the evaluation RESULT.json records; exit 1 unless the numbers are identical.")
def evaluate(source: str | None, attacks: tuple[str, ...], eps: float | None, norm: str | None, n: int | None,
             batch_size: int,
             aa_version: str, aa_attacks: str | None, seed: int, randomized: bool, sanity: bool | None,
             sanity_n: int, chunk_size: int, amp: str, data_dir: Path | None, device: str, revision: str | None,
             fill_card: bool, order: str, robustbench_json: Path | None, out: Path | None,
             compare: tuple[Path, Path] | None, reproduce: Path | None) -> None:
    """Evaluate a run folder, checkpoint, zoo model or Hub repo under attacks; print a table, write JSON.

    The JSON keeps every image's outcome under every attack, the worst case over attacks, the guards'
    notes, gradient-masking flags and what reproduces it. Under `torchrun --nproc-per-node N -m robustzoo
    evaluate ...` each process attacks a share of the images; rank 0 prints and writes the result.
    """
    from . import distributed
    from .evaluation import check_attack, check_autoattack
    from .evaluation import cli as cli_eval
    from .trainer import resolve_device

    if compare:
        return cli_eval.print_comparison(*compare)
    if reproduce:
        sys.exit(0 if cli_eval.reproduce(reproduce, data_dir=data_dir, device=device) else 1)
    if not source:
        raise InvalidValueError("evaluate needs RUN|ZOO_NAME|REPO_ID (or --compare A.json B.json, --reproduce R.json)")
    names = [check_attack(a.strip()) for spec in attacks for a in spec.split(",") if a.strip()]
    if robustbench_json and "aa" not in names:
        raise InvalidValueError(f"--robustbench-json {robustbench_json}: needs an AutoAttack result; add aa to --attack")
    if robustbench_json and robustbench_json.exists():
        raise InvalidValueError(f"--robustbench-json {robustbench_json} exists; expected a new file (nothing is "
                                f"overwritten)")
    aa_list = [a.strip() for a in aa_attacks.split(",")] if aa_attacks else None
    if aa_list and "aa" not in names:
        raise InvalidValueError(f"--aa-attacks {aa_attacks!r} given but 'aa' is not among the attacks {names}")
    check_autoattack(aa_version, aa_list)
    options = {"attacks": names, "eps": eps, "norm": norm, "n": n, "batch_size": batch_size, "seed": seed,
               "aa_version": aa_version, "aa_attacks": aa_list, "randomized": randomized, "sanity": sanity,
               "sanity_n": sanity_n, "chunk_size": chunk_size, "amp": None if amp == "none" else amp, "order": order}
    dist, rank_device = distributed.setup(resolve_device(device))  # under torchrun: each rank a shard
    try:
        cli_eval.run(source, options, data_dir=data_dir, device=str(rank_device), revision=revision,
                     fill_card=fill_card, out=out, main_rank=dist.is_main, robustbench_json=robustbench_json)
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


@main.command(name="import")
@click.argument("source", metavar="robustbench:MODEL_NAME")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The run folder to write.")
@click.option("--dataset", type=click.Choice(["cifar10", "cifar100"]), default="cifar10", show_default=True)
@click.option("--threat-model", type=click.Choice(["Linf", "L2"]), default="Linf", show_default=True)
@click.option("--model-dir", type=click.Path(path_type=Path), default=Path("models"), show_default=True,
              help="RobustBench's model_dir (its checkpoints in DATASET/THREAT_MODEL/NAME.pt; downloaded if absent).")
@click.option("--model-info", type=click.Path(path_type=Path, exists=True),
              help="The entry's model_info JSON, or a RobustBench checkout: paper, authors and reported numbers.")
@click.option("--trust-pickle", is_flag=True,
              help="Read a checkpoint that needs full unpickling (can run code): only for files you trust.")
@click.option("--native/--no-native", default=True, show_default=True,
              help="Convert to robustzoo's architecture where it is one of ours (loads without robustbench).")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
def import_cmd(source: str, out: Path, dataset: str, threat_model: str, model_dir: Path, model_info: Path | None,
               trust_pickle: bool, native: bool, overwrite: bool) -> None:
    """Import a RobustBench model as a robustzoo run folder (model.safetensors, config.json, card.md).

    The only command that reads a pickle: the checkpoint must load with torch.load(weights_only=True)
    unless --trust-pickle. Then `robustzoo evaluate OUT --attack clean,aa --card` and `robustzoo push OUT`."""
    from .zoo.robustbench import import_robustbench

    kind, _, name = source.partition(":")
    if kind != "robustbench" or not name:
        raise InvalidValueError(f"source {source!r}; expected robustbench:MODEL_NAME "
                                f"(e.g. robustbench:Jia2022LAS-AT_34_10)")
    run = import_robustbench(name, out, dataset=dataset, threat_model=threat_model, model_dir=model_dir,
                             model_info=model_info, trust_pickle=trust_pickle, native=native, overwrite=overwrite)
    record = json.loads((run / "config.json").read_text())
    imported = record["imported"]
    how = (f"converted to {imported['converted_to']} (max |logit difference| {imported['max_logit_difference']:.1e})"
           if imported["converted_to"] else f"kept as RobustBench's module {record['model']['architecture']}")
    console.print(f"imported {source} → {run}: {how}", highlight=False)
    console.print(f"next: robustzoo evaluate {run} --attack clean,aa --card", highlight=False)


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
    for col in ("model", "data", "policy × defense", "eps"):
        table.add_column(col)
    for col in MAIN_ATTACKS.values():
        table.add_column(col, justify="right")
    table.add_column("weights")
    for card in list_zoo():
        table.add_row(card.name, card.architecture, card.dataset, f"{card.policy} × {card.defense_label}",
                      _budget(card.threat_model, eps_str), *(_cell(card, a) for a in MAIN_ATTACKS),
                      card.repo_id if card.weights_sha256 else "[dim]not published[/]")
    console.print(table)


def _budget(threat_model: dict[str, Any], eps_str: Any) -> str:
    """`L∞ 8/255` or `L2 0.5`: a card's threat model in a table cell."""
    norm = threat_model.get("norm", "Linf")
    return f"{norm.replace('Linf', 'L∞')} {eps_str(threat_model.get('eps'))}"


@zoo.command("show")
@click.argument("name")
def zoo_show(name: str) -> None:
    """One zoo model's card: setting, measured results against the paper's, provenance."""
    from .zoo import zoo_card
    from .zoo.card import MAIN_ATTACKS, attack_title, eps_str

    card = zoo_card(name)
    console.print(f"[bold]{card.name}[/] — {card.architecture} on {card.dataset}, eps {_budget(card.threat_model, eps_str)}, "
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
