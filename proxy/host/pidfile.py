"""The pidfile, whose liveness is proven by a lock its proxy holds, not by reading a command line.

The proxy (or, for a proxy started detached, the child it was spawned as) holds an exclusive
``flock`` on the pidfile for as long as it runs.  A reader that can take the lock knows nobody
holds it: the PID written there is stale, whatever now runs under that number (PIDs are reused
after a reboot) and whether or not it is an unreaped zombie (a zombie has closed its files).  A
``flock`` rather than an ``fcntl`` record lock: it belongs to the open file, so a child that
inherits the descriptor keeps holding it after the parent closes its copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

PathArg = str | os.PathLike[str]

# The lock descriptors this process holds, by pidfile path: open for as long as we run.
_HELD: dict[str, int] = {}


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


def is_locked(path: PathArg) -> bool:
    """Whether a running process holds the pidfile's lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the shared lock we may have taken
    return False


def live_pid(path: PathArg) -> int | None:
    """The PID in the file while its lock is held (by a process other than this one); otherwise None."""
    pid = read_pid(path)
    if pid is None or pid == os.getpid() or not is_locked(path):
        return None
    return pid


def _locked_temp(p: Path) -> tuple[int, str]:
    """A new file beside ``p``, opened and exclusively locked (the lock follows it through the rename)."""
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".pid.", dir=p.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        Path(tmp).unlink()
        raise
    return fd, tmp


def _publish(fd: int, tmp: str, p: Path, pid: int) -> None:
    try:
        os.write(fd, f"{pid}\n".encode("ascii"))
        os.fsync(fd)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(p)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


def write_pidfile(path: PathArg) -> None:
    """Atomically write our PID and hold the file's lock until we exit (or :func:`remove_if_owned`)."""
    p = Path(path)
    fd, tmp = _locked_temp(p)
    try:
        _publish(fd, tmp, p, os.getpid())
    except BaseException:
        os.close(fd)
        raise
    old = _HELD.pop(str(p), None)
    if old is not None:
        os.close(old)
    _HELD[str(p)] = fd


class ChildLock:
    """A pidfile written for a child about to be spawned: the child inherits the locked descriptor.

    ``fd`` goes to ``Popen(pass_fds=...)``; :meth:`publish` writes the child's PID and puts the file
    in place, then this process lets go of its copy, so only the child holds the lock.
    """

    def __init__(self, path: PathArg) -> None:
        self.path = Path(path)
        self.fd, self._tmp = _locked_temp(self.path)

    def publish(self, pid: int) -> None:
        try:
            _publish(self.fd, self._tmp, self.path, pid)
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(OSError):
            Path(self._tmp).unlink()


def remove_if_owned(path: PathArg, pid: int | None = None) -> bool:
    """Remove the pidfile only if it still names PID (default: ours), dropping our lock.  Whether removed."""
    want = pid if pid is not None else os.getpid()
    if read_pid(path) != want:
        return False
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return False
    finally:
        if want == os.getpid():
            held = _HELD.pop(str(Path(path)), None)
            if held is not None:
                os.close(held)
    return True
