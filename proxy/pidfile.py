"""The pidfile, trusted only when its PID is alive *and* is a Switchyard proxy.

A bare ``kill(pid, 0)`` is not enough: after a reboot the PID is routinely reused by something else,
and a router that trusts it refuses to start (or, worse, signals a stranger).  We therefore check
the process's command line too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PathArg = str | os.PathLike[str]


def read_pid(path: PathArg) -> int | None:
    """The PID written in the file, or None if missing or unreadable."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid > 0 else None


def process_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_switchyard(pid: int) -> bool:
    """True when PID runs `... -m proxy serve ...` or the `switchyard serve` console script."""
    if not is_alive(pid):
        return False
    argv = process_cmdline(pid)
    if not argv:
        return False
    if "serve" not in argv:
        return False
    if any(a == "proxy" for a in argv) and "-m" in argv:
        return True
    return any(Path(a).name == "switchyard" for a in argv)


def live_pid(path: PathArg) -> int | None:
    """The PID in the file if that process is a running Switchyard proxy; otherwise None."""
    pid = read_pid(path)
    if pid is None or pid == os.getpid():
        return None
    return pid if is_switchyard(pid) else None


def write_pidfile(path: PathArg, pid: int | None = None) -> None:
    """Atomically write PID (default: ours), creating the directory."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".pid.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"{pid if pid is not None else os.getpid()}\n")
        Path(tmp).replace(p)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


def remove_if_owned(path: PathArg, pid: int | None = None) -> bool:
    """Remove the pidfile only if it still names PID (default: ours).  Returns whether it was removed."""
    want = pid if pid is not None else os.getpid()
    if read_pid(path) != want:
        return False
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return False
    return True
