"""Atomic file writes: a temp file beside the target, fsync, chmod, rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old bytes or the new, never a mix."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


def write_through(path: Path, data: bytes) -> None:
    """Atomically replace a user's file in place, keeping its mode; through a symlink if it is one.

    A config kept in a dotfiles checkout and linked into place must stay a link to that file: the
    temp file goes beside the link's (fully resolved) target and is renamed over the target.
    """
    target = path.resolve()
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
    atomic_write(target, data, mode)
