"""Processes: one spawn, one stop, one wait for a process to be gone, and what /proc says about one.

"Gone" is zombie-safe: an exited child of ours is reaped, and an exited process nobody reaped yet
(a zombie, which ``kill(pid, 0)`` still finds) counts as gone, by its state in ``/proc/PID/stat``.

psutil was judged and left: the few facts needed here (state, command line, environment, who holds
a listening socket) are a handful of ``/proc`` reads on the only platform Switchyard runs on, and
``uninstall.py`` must import this module under a bare system ``python3``.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from proxy.host.pidfile import ChildLock


def state(pid: int) -> str | None:
    """The process's state letter (R, S, Z, ...), or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    rest = raw.rpartition(")")[2].split()
    return rest[0] if rest else None


def gone(pid: int) -> bool:
    st = state(pid)
    if st in ("Z", "X"):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # our child: reap it, so no zombie is left behind
        return True
    return st is None


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


class Stop(enum.Enum):
    STOPPED = "stopped"  # gone after SIGTERM (or already gone)
    KILLED = "killed"  # gone after SIGKILL
    RUNNING = "running"  # still there after SIGTERM and the grace (no force)
    SURVIVED = "survived"  # still there after SIGKILL
    DENIED = "denied"  # not ours to signal

    @property
    def ok(self) -> bool:
        return self in (Stop.STOPPED, Stop.KILLED)


def _signal(pid: int, sig: int) -> bool:
    """False when we may not signal it; a process already gone is fine."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    return True


def stop(pid: int, grace_s: float, *, force: bool = True, kill_wait_s: float = 5.0) -> Stop:
    """SIGTERM ``pid``, wait ``grace_s`` for it to be gone, then SIGKILL it when ``force``.

    (A child's whole process group, grandchildren included, is stopped by installer.child.)
    """
    if not _signal(pid, signal.SIGTERM):
        return Stop.DENIED
    if wait_gone(pid, grace_s):
        return Stop.STOPPED
    if not force:
        return Stop.RUNNING
    if not _signal(pid, signal.SIGKILL):
        return Stop.DENIED
    return Stop.KILLED if wait_gone(pid, kill_wait_s) else Stop.SURVIVED


def spawn_detached(
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str],
    cwd: Path,
    pidfile: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, output appended to ``log``; it outlives the caller.

    With ``pidfile``, the file is written with the child's PID and the child inherits its lock
    (see :class:`proxy.host.pidfile.ChildLock`), so the pidfile is live exactly while it runs.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    lock = ChildLock(pidfile) if pidfile is not None else None
    try:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=dict(env),
                cwd=str(cwd), start_new_session=True, pass_fds=(lock.fd,) if lock is not None else (),
            )
    except BaseException:
        if lock is not None:
            lock.close()
        raise
    if lock is not None:
        lock.publish(proc.pid)
    return proc


def cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def describe(pid: int) -> str:
    """A short command line for messages."""
    return " ".join(cmdline(pid) or [])[:80] or f"PID {pid}"


def environ(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            env[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes in LISTEN state on ``port`` (IPv4 and IPv6), from /proc/net/tcp*."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            local, st, inode = fields[1], fields[3], fields[9]
            if st == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def listeners(port: int) -> tuple[bool, list[int]]:
    """Whether anything listens on ``port``, and the PIDs holding such a socket that we can see.

    Only our own processes' file descriptors are readable, so a port held by another user's
    program shows as listening with no PID.
    """
    inodes = _listening_inodes(port)
    if not inodes:
        return False, []
    wanted = {f"socket:[{i}]" for i in inodes}
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if str(fd.readlink()) in wanted:
                    pids.append(int(entry.name))
                    break
            except OSError:
                continue
    return True, sorted(pids)
