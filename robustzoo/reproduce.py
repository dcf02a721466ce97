"""A reproduction: the recipe's paper numbers beside what its trained run measures, with the difference."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from .checkpoint import sha256_file, write_json
from .zoo.card import MAIN_ATTACKS, _duration, _pct

console = Console()
COLUMNS = tuple(MAIN_ATTACKS)  # clean, pgd20, cw, aa: the columns the papers report
RESULT = "reproduce.json"
PENDING = "reproduce.pending.json"  # the weights an evaluation under way belongs to (its state file has no sha)


@dataclass(frozen=True)
class Comparison:
    """Reported (%) and measured (%) accuracy per attack, and what the measured run was."""

    recipe: str
    source: str | None  # the paper, table and row the reported numbers come from (None: the recipe reports none)
    reported: dict[str, float]
    measured: dict[str, float]
    n: int  # test images evaluated
    epochs: int  # epochs trained
    train_seconds: float
    mean_steps: float | None  # attack steps per training sample, over the whole run
    differs: list[str] = field(default_factory=list)  # how this run's setting differs from the recipe's

    @property
    def delta(self) -> dict[str, float]:
        """Measured − reported, in points, where both exist."""
        return {a: round(self.measured[a] - self.reported[a], 2) for a in self.measured if a in self.reported}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta}

    def table(self) -> Table:
        """Rows reported / measured / Δ, one column per attack (the main four, then any other measured)."""
        cols = [*COLUMNS, *(a for a in dict.fromkeys([*self.measured, *self.reported]) if a not in COLUMNS)]
        from .zoo.card import attack_title

        table = Table(title=f"{self.recipe}: reported vs measured (test accuracy %, n={self.n})")
        table.add_column("")
        for a in cols:
            table.add_column(attack_title(a), justify="right")
        table.add_row(f"reported: {self.source}" if self.source else "reported: —",
                      *(_pct(self.reported.get(a)) for a in cols))
        table.add_row("measured", *(_pct(self.measured.get(a)) for a in cols))
        table.add_row("Δ (measured − reported)", *(_signed(self.delta.get(a)) for a in cols))
        return table

    def summary(self) -> str:
        """Training time and attack cost, and whether the run is the recipe's setting."""
        steps = f"{self.mean_steps:.2f}" if self.mean_steps is not None else "—"
        text = (f"training: {self.epochs} epochs in {_duration(self.train_seconds)}, "
                f"{steps} attack steps per training sample on average")
        if self.differs:
            text += ("\nnot the recipe's setting (" + "; ".join(self.differs) + "): the reported numbers belong to "
                     "the recipe's setting, so Δ is not a reproduction check")
        return text


def training_summary(run_dir: str | Path) -> tuple[int, float, float | None]:
    """(epochs, training seconds, mean attack steps per sample) from a run's `metrics.jsonl`."""
    path = Path(run_dir) / "metrics.jsonl"
    metrics = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    seen = sum(m.get("strategy", {}).get("n", 0) for m in metrics)
    steps = sum(m["strategy"]["n"] * m["mean_steps"] for m in metrics if "strategy" in m) / seen if seen else None
    return (metrics[-1]["epoch"] if metrics else 0, round(sum(m.get("seconds", 0.0) for m in metrics), 1),
            None if steps is None else round(steps, 3))


def setting_differences(recipe: Any, original: Any) -> list[str]:
    """The fields a command line changed that change what is trained (epochs, model, data, batch)."""
    out = []
    for name in ("epochs", "model", "model_kwargs", "train_subset", "batch_size", "val_size", "dataset", "ema"):
        now, was = getattr(recipe, name), getattr(original, name)
        if now != was:
            out.append(f"{name} {now!r} (recipe: {was!r})")
    return out


def compare(recipe: Any, run_dir: str | Path, accuracy: dict[str, float], n: int,
            original: Any | None = None) -> Comparison:
    """The comparison of a run (`accuracy`: fractions per attack, as `evaluate` gives) with its recipe's paper row."""
    epochs, seconds, steps = training_summary(run_dir)
    reported = recipe.reported.as_dict() if recipe.reported else {}
    source = reported.pop("source", None)
    measured = {a: round(100 * v, 2) for a, v in accuracy.items() if a != "worst_case"}
    return Comparison(recipe.name, source, reported, measured, n, epochs, seconds, steps,
                      setting_differences(recipe, original) if original is not None else [])


def reproduce_run(trainer: Any, *, attacks: Sequence[str], n: int | None, batch_size: int, seed: int,
                  data_dir: Path | None, original: Any | None = None, resume: bool = False) -> Comparison | None:
    """Evaluate a trained run's selected checkpoint (unless this very evaluation is done) and compare it.

    Writes `eval.json`, the card (`card.md`, with the Δ row) and `reproduce.json` in the run folder; prints
    the table on rank 0 (other ranks return None). An evaluation stopped half-way continues from its state
    file when the weights are the same ones; for other weights (training went on) it starts again."""
    from .evaluation import cli as cli_eval
    from .trainer import resolve_checkpoint

    out, main = trainer.out, trainer.dist.is_main
    weights = sha256_file(resolve_checkpoint(out))
    request = {"attacks": list(attacks), "n": n, "batch_size": batch_size, "seed": seed, "weights_sha256": weights}
    done = _read(out / RESULT)
    if resume and done.get("request") == request and (out / "eval.json").is_file():
        comparison = Comparison(**{k: v for k, v in done["comparison"].items() if k != "delta"})
        if main:
            console.print(f"{out / RESULT}: this evaluation of these weights is done; not run again", soft_wrap=True)
            _print(comparison)
        return comparison if main else None
    pending = _read(out / PENDING)
    if main:
        if pending.get("weights_sha256") not in (None, weights):  # a half-done evaluation of older weights
            for stale in out.glob("eval.state*.json"):
                stale.unlink()
            console.print("the evaluation left half-done was of other weights (training went on): starting it again",
                          soft_wrap=True)
        write_json(out / PENDING, request)
    options = {"attacks": list(attacks), "eps": None, "n": n, "batch_size": batch_size, "seed": seed,
               "aa_version": "standard", "aa_attacks": None, "randomized": False, "sanity": None, "sanity_n": 200,
               "chunk_size": 1000, "amp": None}
    record = cli_eval.run(str(out), options, data_dir=data_dir, device=str(trainer.device), revision=None,
                          fill_card=True, out=out / "eval.json", main_rank=main)
    if not main or record is None:
        return None
    comparison = compare(trainer.recipe, out, record["accuracy"], record["n"], original)
    write_json(out / RESULT, {"request": request, "comparison": comparison.to_dict()})
    (out / PENDING).unlink(missing_ok=True)
    _print(comparison)
    return comparison


def _print(comparison: Comparison) -> None:
    console.print(comparison.table())
    console.print(comparison.summary(), highlight=False, soft_wrap=True)


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.2f}"
