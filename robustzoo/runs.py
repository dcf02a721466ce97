"""The run folder: whether a run may be written there, what a run left there, and what a resume may change."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import InvalidValueError, RunExistsError

RUN_FILES = ("config.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "model.safetensors")  # a run is here
DERIVED_FILES = ("last.json", "eval.json", "eval.state.json", "card.md", "curves.png", "strategy.png",
                 "reproduce.json", "reproduce.pending.json")

# Recipe fields a resume may change: the run's length (`--epochs` extends it) and what only describes it.
RESUMABLE = frozenset({"epochs", "name", "reported"})
# Run-record fields not compared: how the run executes (free to change on resume), and the model config,
# which follows from the recipe and data compared here (the checkpoint's own check names it).
HOW_IT_RUNS = frozenset({"recipe_path", "recipe_sha256", "channels_last", "compile", "world_size", "model"})


def check_not_a_file(out: Path) -> None:
    """`out` names no file (the cheap part of `check_out`, before any data is loaded)."""
    if out.exists() and not out.is_dir():
        raise InvalidValueError(f"--out {out} is a file; expected a folder for the run (a new or existing one)")


def check_out(out: Path) -> None:
    """`out` is (or can become) a folder this process may write; otherwise one line, nothing written."""
    check_not_a_file(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InvalidValueError(f"--out {out} cannot be written ({e.strerror or e}); expected a folder "
                                f"robustzoo may write to") from None


def found(out: Path) -> list[str]:
    """The run files in `out` (none: no run there)."""
    return [name for name in RUN_FILES if (out / name).is_file()] if out.is_dir() else []


def describe(out: Path) -> str:
    """What the run in `out` is, in a few words: its files and how far it got."""
    parts = []
    last = out / "last.json"
    if (out / "last.safetensors").is_file():
        try:
            state = json.loads(last.read_text()) if last.is_file() else {}
            epochs = state.get("run", {}).get("recipe", {}).get("epochs")
            at = f"epoch {state.get('epoch', '?')}" + (f" of {epochs}" if epochs else "")
            if state.get("position"):
                at += f" + {state['position']} batches"
            parts.append(f"last.safetensors ({at})")
        except (OSError, ValueError):
            parts.append("last.safetensors")
    parts += [name for name in found(out) if name != "last.safetensors"]
    return ", ".join(parts)


def refuse_existing(out: Path) -> None:
    """Raise when `out` holds a run: starting another there needs `--resume` or `--overwrite`."""
    if found(out):
        raise RunExistsError(f"{out} already holds a run ({describe(out)}); pass --resume to continue it, or "
                             f"--overwrite to delete it and start over (Python: fit(resume=True) / "
                             f"fit(overwrite=True))")


def clear(out: Path) -> list[str]:
    """Delete the run (and the files made from it: evaluations, cards, plots) from `out`; what went."""
    gone = []
    for name in (*RUN_FILES, *DERIVED_FILES):
        path = out / name
        if path.is_file():
            path.unlink()
            gone.append(name)
    for stale in out.glob(".*.tmp"):  # a write killed half-way
        stale.unlink()
    return gone


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The fields of two run records (`Trainer.run_info`) that change what is trained, as 'field: a → b'.

    Only fields the saved record has are compared (a record written before a field existed still resumes)."""
    out: list[str] = []
    for key in sorted(saved):
        if key in HOW_IT_RUNS:
            continue
        a, b = saved.get(key), current.get(key)
        if key == "recipe":
            a = {k: v for k, v in (a or {}).items() if k not in RESUMABLE}
            b = {k: v for k, v in (b or {}).items() if k not in RESUMABLE}
        elif key == "dataset":  # the folder may move (another machine); the data may not
            a = {k: v for k, v in (a or {}).items() if k != "data_dir"}
            b = {k: v for k, v in (b or {}).items() if k != "data_dir"}
        _diff(key, a, b, out)
    return out


def _diff(name: str, a: Any, b: Any, out: list[str]) -> None:
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a):
            _diff(f"{name}.{key}" if name not in ("recipe",) else key, a.get(key), b.get(key), out)
        return
    out.append(f"{name}: {_short(a)} → {_short(b)}")


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def refuse_mixed(out: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Raise when the recipe (with its command-line overrides) is not the one that started the run."""
    diff = differences(saved, current)
    if diff:
        shown = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise RunExistsError(f"cannot resume {out}: this recipe trains something else than the run there "
                             f"({shown}); expected the recipe and options that started it (only --epochs, "
                             f"--device, --nproc, --compile, --channels-last and output options may change), "
                             f"or --overwrite to start over")
