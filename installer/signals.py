"""The installer under signals: what raises while applying, what waits while rolling back, how it exits.

While applying, SIGTERM, SIGHUP (the terminal closing mid-install) and SIGQUIT raise
:class:`Terminated` and SIGINT raises KeyboardInterrupt (Python's default): all four roll back.
While rolling back they are recorded, not acted on (a rollback must finish).  Afterwards the
process exits *by* the signal that stopped it (:func:`exit_by_signal`: default handler, re-raised),
so a shell or a service manager sees "killed by SIGHUP", not a made-up exit status.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import NoReturn

TERMINATING = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
DEFERRED = (signal.SIGINT, *TERMINATING)
PLEASE_WAIT = b"installer: rolling back, please wait\n"


class Terminated(BaseException):
    """SIGTERM, SIGHUP or SIGQUIT arrived: unwinds like KeyboardInterrupt so the rollback runs."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


def signum_of(exc: BaseException) -> int | None:
    """The signal an exception stands for (KeyboardInterrupt is SIGINT), or None."""
    if isinstance(exc, Terminated):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    return None


@contextlib.contextmanager
def terminating_raises() -> Iterator[None]:
    """While applying: SIGTERM, SIGHUP and SIGQUIT raise :class:`Terminated` (SIGINT: KeyboardInterrupt)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    old = {s: signal.signal(s, handler) for s in TERMINATING}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def defer() -> tuple[list[int], Callable[[], None]]:
    """While rolling back: the four signals are recorded, not acted on; the first says "please wait".

    Returns the list of signals received and a function that puts the previous handlers back.
    """
    got: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if not got:
            with contextlib.suppress(OSError):
                os.write(2, PLEASE_WAIT)  # os.write: safe in a handler
        got.append(signum)

    old = {s: signal.signal(s, handler) for s in DEFERRED}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return got, restore


def exit_by_signal(signum: int) -> NoReturn:
    """End the process by ``signum`` with its default action, as if it had not been caught."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    if signum == signal.SIGQUIT:
        # SIGQUIT's default action dumps core: a rolled-back install leaves no core file behind.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # only if the signal did not end us (it always should)
