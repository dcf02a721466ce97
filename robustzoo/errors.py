"""Errors raised by robustzoo. The CLI turns each into one line and a non-zero exit."""
from __future__ import annotations

import difflib
from typing import Iterable


class RobustzooError(Exception):
    """Base class of every error robustzoo raises on purpose; `exit_code` is what the CLI exits with."""

    exit_code = 2  # bad input (the usual command-line convention)
    label = "error"  # the CLI's one line: "error: <message>"


class UnknownNameError(RobustzooError, KeyError):
    """A registry lookup (policy, defense, model, dataset, attack) found no such name."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(set(known))
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        if len(known) <= 20:
            listed = f"known: {', '.join(known)}."
        else:  # timm knows ~1,000 models: name the close ones only
            listed = f"{len(known)} names are known (`robustzoo models` lists them)."
        super().__init__(f"unknown {kind} {name!r}; {listed}{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class InvalidValueError(RobustzooError, ValueError):
    """A value is outside what the function accepts (eps out of range, negative steps...)."""


class RecipeError(RobustzooError):
    """A recipe file is missing, raises on import, or does not return a Recipe."""


class CheckpointError(RobustzooError):
    """A checkpoint is missing, not safetensors, corrupt, or does not match the model."""


class DatasetNotFoundError(RobustzooError, FileNotFoundError):
    """A dataset is not where it was looked for; the message says where to put it."""


class HubError(RobustzooError):
    """The Hub could not give what was asked (unreachable and not cached, no such repo or file...)."""


class IntegrityError(CheckpointError):
    """Weights do not match the sha256 their card records."""


class EvaluationError(RobustzooError):
    """An evaluation whose result cannot be trusted (invalid adversarial images, a mismatched state file)."""


class MissingExtraError(RobustzooError, ImportError):
    """An optional dependency (an extra such as `robustzoo[robustbench]`) is not installed."""


class RunExistsError(RobustzooError):
    """A run folder already holds a run that the call would replace or mix with another recipe."""


class WriteError(RobustzooError, OSError):
    """A file could not be written (disk full, read-only, killed mid-write); the previous file is intact."""

    exit_code = 74  # sysexits' EX_IOERR


class TrainingDivergedError(RobustzooError):
    """The training loss (or the weights) stopped being finite; nothing non-finite was written."""

    exit_code = 3


class PreemptedError(RobustzooError):
    """The run was asked to stop (SIGTERM, SIGUSR1) and saved an exact checkpoint to resume from."""

    exit_code = 75  # sysexits' EX_TEMPFAIL: try again later (`--resume`)
    label = "stopped"
