"""The server log: bounded in rate where a client controls it, and bounded in size when it is a file.

Two things made the old log grow without limit: every malformed request logged a full traceback
(about 1.2 MB/s from one client sending garbage), and the file it went to (``proxy.log``, filled by
systemd's ``StandardOutput=append:`` or by the background starter) was rotated by nobody.  So:

* lines a client can cause (malformed HTTP, bad requests) are one line each, through a
  :class:`RateLimit` that drops what exceeds a budget per window and then says how many it dropped;
* with ``[log] server`` set, the proxy writes its log to that file itself, rotated by size
  (``server_max_bytes``, ``server_backups``), and points its own stdout/stderr at the current file
  so that nothing written there (a warning, an uncaught error at exit) escapes the rotation.
  The installer sets it to the same ``proxy.log`` that systemd appends to: the descriptor systemd
  handed over is simply replaced by the proxy's own after each rotation.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RateLimit:
    """At most ``limit`` events per ``window_s``; counts the rest so they can be reported.

    ``take()`` answers whether this event may be logged and how many were dropped since the last
    event that was (to be reported once, on the next line that gets through).
    """

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._window_start = -float("inf")
        self._used = 0
        self._dropped = 0

    def take(self) -> tuple[bool, int]:
        now = self._clock()
        if now - self._window_start >= self.window_s:
            self._window_start = now
            self._used = 0
        if self._used >= self.limit:
            self._dropped += 1
            return False, 0
        self._used += 1
        dropped, self._dropped = self._dropped, 0
        return True, dropped


def log_limited(
    logger: logging.Logger, limit: RateLimit, level: int, msg: str, *args: object, exc_info: bool = False
) -> bool:
    """Log one line through ``limit``; returns whether it was logged."""
    ok, dropped = limit.take()
    if not ok:
        return False
    if dropped:
        logger.log(
            level, "(%d similar lines were not logged: more than %d in %g s)", dropped, limit.limit, limit.window_s
        )
    logger.log(level, msg, *args, exc_info=exc_info)
    return True


def one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line, without control characters, at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    cleaned = "".join(c if c.isprintable() else "?" for c in flat)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


class _FollowingRotatingHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated file whose current file also receives the process's stdout and stderr."""

    def __init__(self, path: str, max_bytes: int, backups: int, redirect_std: bool) -> None:
        super().__init__(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", errors="backslashreplace"
        )
        self._redirect_std = redirect_std
        self._point_std_here()

    def _point_std_here(self) -> None:
        if not self._redirect_std or self.stream is None:
            return
        self.stream.flush()
        for std in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                std.flush()
        fd = self.stream.fileno()
        for target in (1, 2):
            os.dup2(fd, target)

    def doRollover(self) -> None:
        super().doRollover()
        self._point_std_here()


def setup_logging(level: str, path: str = "", max_bytes: int = 10 * 1024 * 1024, backups: int = 3) -> None:
    """Configure the ``switchyard`` and ``aiohttp`` loggers: stderr, or a rotated file at ``path``.

    stdout/stderr follow the file only when stderr is not a terminal: someone running ``serve`` by
    hand still sees what goes wrong at start.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler = _FollowingRotatingHandler(path, max_bytes, backups, redirect_std=not _isatty(sys.stderr))
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False
