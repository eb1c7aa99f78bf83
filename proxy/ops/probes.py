"""The I/O edge of ``status`` and ``doctor``: HTTP probes, who holds a port, systemd and loginctl.

Each function returns plain data (never raises for an expected failure) so the checks that judge
it stay pure functions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.ops.paths import UNIT_NAME


@dataclass(frozen=True)
class HttpResult:
    status: int | None  # None: no HTTP answer at all
    body: bytes = b""
    error: str = ""  # why there was no answer (connection refused, timeout, ...)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# Probes only ever go to the configured loopback services; no environment proxy must intercept them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def http_request(
    url: str,
    headers: dict[str, str] | None = None,
    timeout: float = 3.0,
    method: str = "GET",
    body: bytes | None = None,
) -> HttpResult:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)  # noqa: S310
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.read(1 << 20))
    except urllib.error.HTTPError as exc:
        try:
            data = exc.read(1 << 20)
        except OSError:
            data = b""
        return HttpResult(exc.code, data)
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = getattr(reason, "strerror", None) or str(reason)
        return HttpResult(None, error=str(text))
    except TimeoutError:
        return HttpResult(None, error=f"no answer within {timeout:g} s")
    except OSError as exc:
        return HttpResult(None, error=exc.strerror or str(exc))


def auth_headers(key: str) -> dict[str, str]:
    return {"x-api-key": key} if key else {}


# ---------------------------------------------------------------- who listens on a port


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
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
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


def process_environ(pid: int) -> dict[str, str] | None:
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


# ---------------------------------------------------------------- systemd


@dataclass(frozen=True)
class UnitState:
    manager: bool  # a user manager answered
    active: str = ""  # ActiveState: active, inactive, failed, activating...
    sub: str = ""
    main_pid: int = 0
    restarts: int = 0
    error: str = ""


def _run(argv: list[str], timeout: float = 5.0) -> subprocess.CompletedProcess[str] | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def user_manager_answers() -> bool:
    proc = _run(["systemctl", "--user", "show-environment"])
    return proc is not None and proc.returncode == 0


def unit_state() -> UnitState:
    if not user_manager_answers():
        return UnitState(manager=False, error="no systemd user manager answers")
    proc = _run(
        ["systemctl", "--user", "show", UNIT_NAME, "-p", "ActiveState,SubState,MainPID,NRestarts", "--no-pager"]
    )
    if proc is None or proc.returncode != 0:
        return UnitState(manager=True, error=(proc.stderr.strip() if proc else "systemctl failed"))
    return parse_unit_show(proc.stdout)


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


def systemctl(action: str, timeout: float = 60.0) -> tuple[bool, str]:
    proc = _run(["systemctl", "--user", action, UNIT_NAME], timeout=timeout)
    if proc is None:
        return False, "systemctl is not available or timed out"
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()


def linger() -> bool | None:
    """Whether the user's services start at boot (loginctl's Linger), or None when unknown."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
    proc = _run(["loginctl", "show-user", user, "-p", "Linger"])
    if proc is None or proc.returncode != 0:
        return None
    value = proc.stdout.strip().partition("=")[2]
    return {"yes": True, "no": False}.get(value)
