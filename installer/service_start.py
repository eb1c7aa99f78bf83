"""Run the proxy as a service: the systemd user manager when one answers, else a background process.

Containers and CI have ``systemctl`` but no running user manager; there the unit is still written
(and verified offline) and the proxy is started detached, with its pidfile, so it can be used now.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from installer import child
from installer.journal import Journal
from installer.journal_actions import CreateFile, RunCommand, SpawnProxy
from installer.probes import router_health, wait_litellm, wait_router
from proxy.host import pidfile, procs, systemd
from proxy.host.paths import UNIT_NAME, Paths

STABLE_SECONDS = 10.0
# The stability window in seconds (a test hook: the suite shortens it; shorter only, never longer).
STABLE_ENV = "SWITCHYARD_INSTALL_STABLE_S"


def stable_seconds() -> float:
    """How long the service must keep one main PID: 10 s, shorter only when STABLE_ENV asks."""
    value = os.environ.get(STABLE_ENV, "")
    if value:
        try:
            return min(STABLE_SECONDS, max(0.0, float(value)))
        except ValueError:
            pass
    return STABLE_SECONDS


class ServiceError(Exception):
    pass


def _systemctl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = systemd.systemctl(*args, timeout=timeout)
    if proc is None:
        raise ServiceError(f"systemctl --user {' '.join(args)} did not run (not installed, or timed out)")
    return proc


@dataclass
class ServiceResult:
    manager: str
    message: str
    pid: int | None


def _main_pid() -> int:
    proc = _systemctl("show", UNIT_NAME, "-p", "MainPID", "--value")
    try:
        return int(proc.stdout.strip() or 0)
    except ValueError:
        return 0


def _journal_runtime_files(journal: Journal, paths: Paths) -> list[str]:
    """Journal the directories and logs the proxy (or systemd, for ``append:``) will create.

    A rollback then removes them and the uninstaller knows the logs; returns the files the proxy
    may create that did not exist before this run (for a rollback to remove).
    """
    journal.make_dirs(paths.proxy_log.parent)
    journal.make_dirs(paths.pidfile.parent)
    if not paths.proxy_log.exists():
        journal.note_log(paths.proxy_log)
        journal.record(CreateFile(str(paths.proxy_log)))
    journal.note_log(paths.decisions_log)
    return [str(f) for f in (paths.decisions_log,) if not f.exists()]


def start_systemd(journal: Journal, paths: Paths, port: int, key: str, restart: bool) -> ServiceResult:
    fresh = _journal_runtime_files(journal, paths)
    for args in (("daemon-reload",), ("enable", UNIT_NAME)):
        proc = _systemctl(*args)
        if proc.returncode != 0:
            raise ServiceError(f"systemctl --user {' '.join(args)} failed: {proc.stderr.strip()}")
    journal.record(RunCommand(["systemctl", "--user", "enable", UNIT_NAME],
                              ["systemctl", "--user", "disable", UNIT_NAME]))
    verb = "restart" if restart else "start"
    proc = _systemctl(verb, UNIT_NAME, timeout=90)
    journal.record(RunCommand(["systemctl", "--user", verb, UNIT_NAME],
                              ["systemctl", "--user", "stop", UNIT_NAME], fresh))
    journal.set("service", {
        "manager": "systemd", "unit_name": UNIT_NAME, "unit_file": str(paths.unit_file),
        "enabled": True, "started": True, "pidfile": str(paths.pidfile),
        "undo": [["systemctl", "--user", "disable", "--now", UNIT_NAME], ["systemctl", "--user", "daemon-reload"]],
    })
    if proc.returncode != 0:
        why = proc.stderr.strip().splitlines()[-1:] or ["no reason given"]
        raise ServiceError(f"systemctl --user {verb} {UNIT_NAME} failed: {why[0]}; see {paths.proxy_log}")
    first = _main_pid()
    # Type=exec: "started" only means the program was executed.  A proxy that exits at once is
    # seen as a main PID that is gone or changed (Restart=on-failure), not after the full wait.
    status = wait_router(port, key, 30.0, alive=lambda: first != 0 and _main_pid() == first).status
    if status != 200:
        state = _systemctl("is-active", UNIT_NAME).stdout.strip() or "unknown"
        raise ServiceError(f"{UNIT_NAME} did not answer /health with 200 (got {status or 'nothing'}, "
                           f"state {state}); see {paths.proxy_log}")
    time.sleep(stable_seconds())
    active = _systemctl("is-active", UNIT_NAME).stdout.strip()
    if active != "active" or _main_pid() != first:
        raise ServiceError(f"{UNIT_NAME} did not stay up (state {active}); see {paths.proxy_log}")
    status = router_health(port, key).status
    if status != 200:
        raise ServiceError(f"/health answered {status} after the service settled; see {paths.proxy_log}")
    return ServiceResult("systemd", f"{UNIT_NAME} is active (PID {first}) and /health answers 200", first)


def start_background(
    journal: Journal, paths: Paths, port: int, env_values: Mapping[str, str], key: str
) -> ServiceResult:
    """Start ``<venv python> -m proxy serve`` detached, with the env file's variables, output to proxy.log."""
    live = pidfile.live_pid(paths.pidfile)
    if live is not None:
        procs.stop(live, 25.0)
    fresh = _journal_runtime_files(journal, paths)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHYARD_", "ANTHROPIC_"))}
    env.update(env_values)
    # The ExecStartPre of the unit, done by hand: a stale pidfile must not block the start.
    with contextlib.suppress(FileNotFoundError):
        paths.pidfile.unlink()
    # The rendered config names the pidfile: the proxy writes it and holds its lock itself.
    proc = procs.spawn_detached([str(paths.venv_python), "-m", "proxy", "serve", "--config", str(paths.config_file)],
                                paths.proxy_log, env=env, cwd=paths.data_dir)
    # Files the proxy itself may create: a rollback removes them only if they did not exist before.
    journal.record(SpawnProxy(proc.pid, str(paths.pidfile), fresh))
    journal.set("service", {
        "manager": "background", "unit_name": UNIT_NAME, "unit_file": str(paths.unit_file),
        "enabled": False, "started": True, "pidfile": str(paths.pidfile),
        "undo": [["kill", "-TERM", str(proc.pid)]],
    })
    status = wait_router(port, key, 30.0, alive=lambda: proc.poll() is None).status
    if status != 200:
        raise ServiceError(
            f"the proxy started in the background did not answer /health with 200 (got {status or 'nothing'}); "
            f"see {paths.proxy_log}"
        )
    msg = f"proxy running in the background (PID {proc.pid}), /health answers 200"
    return ServiceResult("background", msg, proc.pid)


def restart_waiter(url: str, wait_s: float = 120.0,
                   after_command: Callable[[], None] | None = None) -> Callable[[str], None]:
    """A callable that runs a LiteLLM restart command and waits (up to ``wait_s``) until it is live again.

    The command runs in its own process group (:func:`installer.child.run`): interrupted, its
    whole group is stopped.  ``after_command`` (a test hook) runs between the command and the wait.
    """

    def run(command: str) -> None:
        proc = child.run(command, shell=True, timeout=300)  # noqa: S604 - the user's own restart command
        if proc.returncode != 0:
            raise ServiceError(f"the LiteLLM restart command {command!r} exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-200:]}")
        if after_command is not None:
            after_command()
        if not wait_litellm(url, wait_s):
            raise ServiceError(f"LiteLLM did not come back at {url} within {wait_s:.0f} s after {command!r}")

    return run
