"""Undo the current run's actions in reverse order (certbot-reverter style).

Used when a step fails, when the user answers "no"/Ctrl-C during the apply phase, and on SIGTERM.
Each undo is best effort: one failing does not stop the others; the failures are returned so the
caller can say what to finish by hand.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from installer.journal import Journal
from proxy.host.atomic import atomic_write, write_through


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def rollback(journal: Journal, restart_litellm: Callable[[str], None] | None = None) -> list[str]:
    failures: list[str] = []
    restart_cmd: str | None = None
    deferred_dirs: list[Path] = []
    systemd_touched = False
    for action in reversed(journal.run["actions"]):
        op = action["op"]
        try:
            if op == "mkdir":
                d = Path(action["path"])
                if d == journal.path.parent or d in journal.path.parents:
                    # Still holds the journal (when a backup directory was the run's first mkdir):
                    # removed below, once the journal itself is gone.
                    deferred_dirs.append(d)
                    continue
                with contextlib.suppress(FileNotFoundError):
                    d.rmdir()
            elif op == "create":
                p = Path(action["path"])
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
            elif op == "overwrite":
                target, backup = Path(action["path"]), Path(action["backup"])
                if target.exists():
                    # Through a symlink when it is one (a linked LiteLLM config stays a link), mode kept.
                    write_through(target, backup.read_bytes())
                else:
                    atomic_write(target, backup.read_bytes(), backup.stat().st_mode & 0o7777)
            elif op == "venv":
                target = Path(action["path"])
                shutil.rmtree(target, ignore_errors=True)
                if action.get("previous"):
                    Path(action["previous"]).rename(target)
            elif op == "command":
                undo = action.get("undo")
                if undo:
                    subprocess.run(undo, check=False, capture_output=True, timeout=60)
                    systemd_touched = systemd_touched or undo[0] == "systemctl"
                for path in action.get("created", []):
                    with contextlib.suppress(FileNotFoundError):
                        Path(path).unlink()
            elif op == "spawn":
                _kill(int(action["pid"]))
                for path in [action["pidfile"], *action.get("created", [])]:
                    with contextlib.suppress(FileNotFoundError):
                        Path(path).unlink()
            elif op == "litellm_restart":
                restart_cmd = action["command"]
        except (OSError, subprocess.SubprocessError) as exc:
            failures.append(f"could not undo {op} {action.get('path', '')}: {exc}")
    # The unit file is gone (or back as it was): the user manager must forget the one it loaded.
    if systemd_touched:
        try:
            subprocess.run(["systemctl", "--user", "daemon-reload"], check=False, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            failures.append(f"could not run systemctl --user daemon-reload: {exc}; run it by hand")
    # The files are back; LiteLLM must re-read its restored config.  The restarter waits (bounded)
    # until LiteLLM answers its liveliness probe, so "Rolled back" means it is reachable again.
    if restart_cmd and restart_litellm is not None:
        try:
            restart_litellm(restart_cmd)
        except Exception as exc:
            failures.append(f"LiteLLM is not back after the rollback's restart with {restart_cmd!r}: {exc}; "
                            "check it and restart it by hand")
    journal.run["status"] = "rolled-back"
    journal.restore_previous()
    for d in sorted({*journal._dirs_made_for_journal, *deferred_dirs}, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()
    return failures
