"""Ctrl-C and SIGTERM (a SLURM job's time limit) honoured in every stage of a search.

While the trials run, the first signal asks Ray Tune to stop: it saves the experiment's state
and returns, and the driver goes no further (no training on, no final stage). In the stages
after the trials (training on, the final stage, the report) a signal stops at once. Either way
what is done stays where it was written, and :class:`Stopped` carries the one line that says how
to continue (``--resume`` picks up at the stage that was stopped). A second signal while Ray Tune
is saving its state stops at once too.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number


class Stopped(Exception):
    """The search stopped on a signal during ``stage``."""

    def __init__(self, stage: str, signum: int):
        super().__init__(stage)
        self.stage, self.signum = stage, signum

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.signum, 1)


class Stages:
    """Whether a signal asked the search to stop. While ``in_trials``,
    a first signal goes to Ray Tune's own stop (SIGUSR1, which Tune always listens to); at any
    other time, or a second time, it raises KeyboardInterrupt where the driver is."""

    def __init__(self):
        self.signum: int | None = None
        self.in_trials = False

    def handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if self.in_trials and first and signal.getsignal(signal.SIGUSR1) not in (_not_yet, signal.SIG_DFL, None):
            print(f"\n{signal.Signals(signum).name}: the trials stop after Ray Tune saves their state "
                  "(again to stop at once)", flush=True)
            os.kill(os.getpid(), signal.SIGUSR1)
            return
        raise KeyboardInterrupt

    def install(self) -> None:
        """Take SIGINT and SIGTERM (again: ``ray.init`` puts a handler of its own on SIGTERM)."""
        for s in SIGNALS:
            signal.signal(s, self.handle)

    @contextlib.contextmanager
    def running(self, stage: str) -> Iterator[None]:
        """Run ``stage``; a signal during it (or a KeyboardInterrupt) becomes :class:`Stopped`."""
        self.install()
        try:
            yield
        except KeyboardInterrupt:
            raise Stopped(stage, self.signum or signal.SIGINT) from None
        if self.signum is not None:  # Ray Tune took the signal and returned
            raise Stopped(stage, self.signum)

    @contextlib.contextmanager
    def trials(self) -> Iterator[None]:
        """The trials: Ray Tune stops them gracefully on the first signal."""
        self.in_trials = True
        previous = signal.signal(signal.SIGUSR1, _not_yet)  # until Ray Tune installs its own
        try:
            with self.running("the trials"):
                yield
        finally:
            self.in_trials = False
            signal.signal(signal.SIGUSR1, previous)


def _not_yet(signum, frame) -> None:
    """SIGUSR1 before Ray Tune listens to it: nothing (the signal that asked for it raises)."""


@contextlib.contextmanager
def honoured() -> Iterator[Stages]:
    """Install the handlers for the search (the main thread only; restored after) and keep Ray
    Tune from replacing the SIGINT one."""
    stages = Stages()
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    before = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    stages.install()
    try:
        yield stages
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if before is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = before
