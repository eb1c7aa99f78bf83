"""Run the installer's child commands (venv, pip, the LiteLLM restart command) in their own process group.

A child such as ``python -m venv`` starts grandchildren (ensurepip's pip); when the installer is
interrupted, stopping only the child lets a grandchild race the rollback.  :func:`run` starts the
command in a new session (so a terminal's Ctrl-C reaches only the installer, which then decides)
and, when the wait is interrupted (a signal raising in the installer, a timeout), stops the
*whole group*: SIGTERM, a short wait, then SIGKILL, before the exception goes on to the rollback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence

GRACE_S = 3.0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(proc: subprocess.Popen[str], grace_s: float = GRACE_S) -> None:
    """SIGTERM the process group of ``proc``, wait up to ``grace_s``, then SIGKILL it; reap ``proc``."""
    pgid = proc.pid  # start_new_session: the child leads its own group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
        if proc.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.05)
    _kill_group(proc)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=GRACE_S)


def run(
    argv: Sequence[str] | str,
    *,
    timeout: float,
    shell: bool = False,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Like ``subprocess.run(..., capture_output=True, text=True)``, the child in its own process group.

    With ``on_line``, each line of its output (stdout and stderr together) is handed over as it
    comes (progress for a long pip run) and the result's ``stdout`` holds all of it.  On any
    interruption of the wait (KeyboardInterrupt, the installer's signal exceptions,
    ``subprocess.TimeoutExpired``) the whole group is stopped before the exception propagates.
    """
    proc = subprocess.Popen(
        argv, shell=shell, cwd=cwd, env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if on_line is not None else subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        if on_line is None:
            out, err = proc.communicate(timeout=timeout)
        else:
            out, err = _stream(proc, timeout, on_line), ""
    except BaseException:
        try:
            stop_group(proc)
        except BaseException:
            _kill_group(proc)  # a second interruption during the grace period: no grace
            raise
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _stream(proc: subprocess.Popen[str], timeout: float, on_line: Callable[[str], None]) -> str:
    """Read ``proc``'s output line by line (a reader thread, so the timeout holds), handing each over."""
    assert proc.stdout is not None
    lines: list[str] = []
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.append(line)
            on_line(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc.wait(timeout=timeout)
    reader.join(timeout=5)
    return "".join(lines)
