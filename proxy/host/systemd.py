"""The systemd user manager and loginctl: asked the same way by the installer, the uninstaller and ops."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass

from proxy.host.paths import UNIT_NAME


def run(argv: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str] | None:
    """The command's result, or None when it is not installed, could not start or timed out."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


def systemctl(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str] | None:
    return run(["systemctl", "--user", *args], timeout)


def user_manager_answers() -> bool:
    """A user manager answers on the bus.  ``show-environment`` and not ``is-system-running``: the latter
    exits non-zero for a ``degraded`` manager, which still runs units perfectly well."""
    proc = systemctl("show-environment", timeout=10.0)
    return proc is not None and proc.returncode == 0


def current_user() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or pwd.getpwuid(os.getuid()).pw_name


def linger(user: str | None = None) -> bool | None:
    """Whether the user's services start at boot (loginctl's Linger), or None when that cannot be asked."""
    proc = run(["loginctl", "show-user", user or current_user(), "-p", "Linger"], timeout=10.0)
    if proc is None or proc.returncode != 0:
        return None
    return {"yes": True, "no": False}.get(proc.stdout.strip().partition("=")[2])


@dataclass(frozen=True)
class UnitState:
    manager: bool  # a user manager answered
    active: str = ""  # ActiveState: active, inactive, failed, activating...
    sub: str = ""
    main_pid: int = 0
    restarts: int = 0
    error: str = ""


def parse_unit_show(text: str) -> UnitState:
    """``systemctl --user show -p ActiveState,SubState,MainPID,NRestarts`` output as a UnitState."""
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def number(key: str) -> int:
        value = props.get(key, "")
        return int(value) if value.isdigit() else 0

    return UnitState(
        manager=True,
        active=props.get("ActiveState", ""),
        sub=props.get("SubState", ""),
        main_pid=number("MainPID"),
        restarts=number("NRestarts"),
    )


def unit_state(unit: str = UNIT_NAME) -> UnitState:
    if not user_manager_answers():
        return UnitState(manager=False, error="no systemd user manager answers")
    proc = systemctl("show", unit, "-p", "ActiveState,SubState,MainPID,NRestarts", "--no-pager", timeout=10.0)
    if proc is None or proc.returncode != 0:
        return UnitState(manager=True, error=(proc.stderr.strip() if proc else "systemctl failed"))
    return parse_unit_show(proc.stdout)


def act(action: str, unit: str = UNIT_NAME, timeout: float = 60.0) -> tuple[bool, str]:
    """``systemctl --user ACTION UNIT``: whether it worked, and what it said."""
    proc = systemctl(action, unit, timeout=timeout)
    if proc is None:
        return False, "systemctl is not available or timed out"
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()
