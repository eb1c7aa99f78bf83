#!/usr/bin/env python3
"""Undo Switchyard's install: ``python3 uninstall.py [--dry-run] [--yes] [--purge]``.

This file is the checkout's ``uninstall.py`` (which runs it) and, copied verbatim, the deployed
``$XDG_DATA_HOME/switchyard/uninstall.py``; both run under a bare system ``python3``.  The
work is done by the ``uninstaller`` package, which needs ``installer``, ``proxy`` and ruamel.yaml.
From the checkout those are beside this file; elsewhere (or with an interpreter that lacks the
libraries) this script re-runs itself with the deployed virtual environment's Python, which has
them installed, so a deployed copy depends on neither the checkout nor the user's environment.
Only the standard library is used before that hand-over.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_REEXEC_MARK = "SWITCHYARD_UNINSTALL_REEXEC"


def _script() -> Path:
    """The script being run: the checkout's uninstall.py or the deployed copy of this file."""
    return Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else Path(__file__).resolve()


def _venv_pythons() -> list[Path]:
    here = _script().parent
    found = [here / "venv" / "bin" / "python"]
    home = os.environ.get("HOME", "")
    data = os.environ.get("XDG_DATA_HOME", "")
    if not (data and Path(data).is_absolute()) and home:
        data = str(Path(home) / ".local" / "share")
    if data:
        found.append(Path(data) / "switchyard" / "venv" / "bin" / "python")
    return found


def _bootstrap() -> None:
    try:
        import ruamel.yaml  # noqa: F401

        import installer.journal  # noqa: F401
        import proxy.host.pidfile  # noqa: F401
        import uninstaller.cli  # noqa: F401
    except ImportError as exc:
        missing = exc.name or str(exc)
    else:
        return
    if not os.environ.get(_REEXEC_MARK):
        for py in _venv_pythons():
            if py.exists() and Path(sys.executable).absolute() != py.absolute():
                env = dict(os.environ, **{_REEXEC_MARK: "1"})
                os.execve(str(py), [str(py), str(_script()), *sys.argv[1:]], env)  # noqa: S606
    sys.stderr.write(
        f"uninstall: cannot import {missing} with {sys.executable}, and no Switchyard virtual environment was found "
        "to run with; run this script with the Python you installed Switchyard with\n"
    )
    raise SystemExit(2)


def main() -> None:
    _bootstrap()
    from uninstaller.cli import run

    run()


if __name__ == "__main__":
    main()
