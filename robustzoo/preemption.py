"""Stopping a run cleanly: SIGTERM/SIGUSR1 handlers, and when to checkpoint, agreed by every rank.

Clusters send SIGTERM before they kill a job (SLURM also SIGUSR1 ahead of time with `--signal`); the
trainer then finishes its step, writes an exact checkpoint and exits with `PreemptedError.exit_code`.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any, Iterator

import torch

from . import distributed

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)


class StopRequest:
    """Set by a stop signal; read by the training loop between steps."""

    def __init__(self) -> None:
        self.signal: str | None = None

    @contextlib.contextmanager
    def handlers(self) -> Iterator["StopRequest"]:
        """Catch SIGTERM and SIGUSR1 while the block runs (main thread only), then put the old handlers back."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

        def handle(signum: int, frame: Any) -> None:
            self.signal = signal.Signals(signum).name

        for s in STOP_SIGNALS:
            signal.signal(s, handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


class CheckpointClock:
    """After each step: should this step end with a checkpoint, and should the run stop? Every rank agrees.

    One process decides at once. Data parallel: each rank's two flags (its interval is due, it got a stop
    signal) go into an asynchronous MAX over a gloo group started after the step and read after the next
    one, so all ranks act at the same step, one step late, with no device sync and no wait on the hot path.
    """

    def __init__(self, every_minutes: float, stop: StopRequest):
        self.every = max(float(every_minutes), 0.0) * 60.0
        self.stop = stop
        self.reset()
        self._work: Any = None
        self._flags = torch.zeros(2, dtype=torch.int32)
        self._stale = False  # the reduce in flight was started before the last checkpoint

    def reset(self) -> None:
        """A checkpoint was just written: the interval starts again."""
        self._last = time.monotonic()

    def after_step(self) -> tuple[bool, bool]:
        """(checkpoint now, stop now) for the step that just ended."""
        due = bool(self.every) and time.monotonic() - self._last >= self.every
        mine = (due, self.stop.signal is not None)
        if not distributed.is_enabled():
            return mine
        agreed = (False, False)
        if self._work is not None:
            self._work.wait()
            save, stop = (bool(v) for v in self._flags.tolist())
            agreed = (save and not self._stale, stop)
        self._flags = torch.tensor([int(mine[0]), int(mine[1])], dtype=torch.int32)
        self._work = distributed.all_reduce_max_host_(self._flags)
        self._stale = False
        return agreed

    def saved(self) -> None:
        """Call after writing a checkpoint: restart the interval; the flags in flight predate it."""
        self.reset()
        self._stale = True

    def settle(self) -> bool:
        """At the end of an epoch: wait for the reduce in flight; True when any rank asked to stop."""
        stop = self.stop.signal is not None
        if not distributed.is_enabled():
            return stop
        if self._work is not None:
            self._work.wait()
            stop = stop or bool(self._flags[1])
            self._work = None
        flag = torch.tensor([0, int(stop)], dtype=torch.int32)
        work = distributed.all_reduce_max_host_(flag)
        work.wait()
        return bool(flag[1])
