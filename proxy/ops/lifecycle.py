"""``switchyard start | stop | restart``: through systemd when it can, detached with a pidfile when not.

systemd is used when the unit file exists and a user manager answers.  Otherwise the proxy runs
detached in its own session, its output appended to ``$XDG_STATE_HOME/switchyard/proxy.log``.  The
pidfile is live while its proxy holds its lock (:mod:`proxy.host.pidfile`), and ``stop`` removes it
only once that very process is gone: a pidfile is never deleted for a process that is still running.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import proxy
from proxy.config import Config
from proxy.host import http_probe, pidfile, procs, systemd
from proxy.host.paths import UNIT_NAME
from proxy.ops.context import base_url, host_paths, pidfile_path
from proxy.ops.status import listener_facts


@dataclass(frozen=True)
class LifecycleResult:
    ok: bool
    message: str


def use_systemd() -> bool:
    return host_paths().unit_file.exists() and systemd.user_manager_answers()


def wait_healthy(
    cfg: Config, key: str, timeout: float, still_starting: Callable[[], str | None] | None = None
) -> tuple[bool, str]:
    """Poll ``/health`` with the router key until it answers 200; ``still_starting`` reports an early death."""
    died: list[str] = []

    def alive() -> bool:
        why = still_starting() if still_starting is not None else None
        if why:
            died.append(why)
        return not why

    r = http_probe.wait_ok(f"{base_url(cfg)}/health", http_probe.router_headers(key), timeout, alive)
    if r.status == 200:
        return True, "healthy"
    if died:
        return False, died[0]
    return False, f"/health did not answer 200 within {timeout:g} s (last: {r.describe()})"


def tail(path: Path, lines: int = 8) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def child_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The detached proxy's environment: ours (env file already applied) and our ``proxy`` package on the path."""
    env = dict(environ if environ is not None else os.environ)
    root = str(Path(proxy.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def start_detached(cfg: Config, config_path: Path, key: str, timeout: float) -> LifecycleResult:
    pid_path = pidfile_path(cfg)
    live = pidfile.live_pid(pid_path)
    if live is not None:
        return LifecycleResult(True, f"already running (PID {live}, pidfile {pid_path})")
    listening, holders = listener_facts(cfg.listen.port, set())
    if listening:
        who = f"{holders[0].command} (PID {holders[0].pid})" if holders else "another user's program"
        return LifecycleResult(
            False,
            f"port {cfg.listen.port} is held by {who}, not by the Switchyard of pidfile {pid_path}; stop it or "
            "choose another listen.port (re-run the installer)",
        )
    log_path = host_paths().proxy_log
    argv = [sys.executable, "-m", "proxy", "serve", "--config", str(config_path.resolve())]
    # The proxy writes and locks the pidfile itself when the config names one; else the child
    # inherits the lock of the default one written for it.
    child = procs.spawn_detached(argv, log_path, env=child_env(), cwd=host_paths().home,
                                 pidfile=None if cfg.listen.pidfile else pid_path)

    def died() -> str | None:
        code = child.poll()
        if code is None:
            return None
        return f"the proxy exited with status {code}; the end of {log_path}:\n{tail(log_path)}"

    ok, why = wait_healthy(cfg, key, timeout, died)
    if ok:
        # Reaped by init once it exits: this command does not wait for it.
        child.returncode = 0
        return LifecycleResult(True, f"started, PID {child.pid}, listening on {base_url(cfg)} (log: {log_path})")
    procs.stop(child.pid, cfg.listen.shutdown_grace_s + 5)
    pidfile.remove_if_owned(pid_path, child.pid)
    return LifecycleResult(False, f"did not start: {why}")


def stop_detached(cfg: Config, timeout: float | None = None, force: bool = False) -> LifecycleResult:
    pid_path = pidfile_path(cfg)
    pid = pidfile.live_pid(pid_path)
    if pid is None:
        stale = pidfile.read_pid(pid_path)
        if stale is not None:
            return LifecycleResult(
                True,
                f"not running (pidfile {pid_path} names PID {stale}, but no process holds its lock: "
                "left alone, it never blocks a start)",
            )
        return LifecycleResult(True, "not running")
    wait = timeout if timeout is not None else cfg.listen.shutdown_grace_s + 5
    result = procs.stop(pid, wait, force=force)
    if result is procs.Stop.DENIED:
        return LifecycleResult(False, f"not allowed to signal PID {pid}; pidfile {pid_path} kept")
    if result is procs.Stop.RUNNING:
        return LifecycleResult(
            False,
            f"PID {pid} is still running {wait:g} s after SIGTERM (finishing answers?); pidfile kept. "
            "Try again, or switchyard stop --force",
        )
    if result is procs.Stop.SURVIVED:
        return LifecycleResult(False, f"PID {pid} survived SIGKILL; pidfile {pid_path} kept")
    pidfile.remove_if_owned(pid_path, pid)
    return LifecycleResult(True, f"stopped (PID {pid})")


def start(cfg: Config, config_path: Path, key: str, timeout: float) -> LifecycleResult:
    if use_systemd():
        ok, msg = systemd.act("start")
        if not ok:
            return LifecycleResult(False, f"systemctl --user start {UNIT_NAME} failed: {msg}")
        healthy, why = wait_healthy(cfg, key, timeout)
        if not healthy:
            return LifecycleResult(False, f"{UNIT_NAME} started but {why}; see switchyard status")
        return LifecycleResult(True, f"started {UNIT_NAME}, listening on {base_url(cfg)}")
    return start_detached(cfg, config_path, key, timeout)


def stop(cfg: Config, timeout: float | None = None, force: bool = False) -> LifecycleResult:
    if use_systemd():
        ok, msg = systemd.act("stop")
        if not ok:
            return LifecycleResult(False, f"systemctl --user stop {UNIT_NAME} failed: {msg}")
        # A proxy started by hand beside the unit would keep the port: stop it too.
        extra = stop_detached(cfg, timeout, force)
        return LifecycleResult(extra.ok, f"stopped {UNIT_NAME}" + ("" if extra.ok else f"; {extra.message}"))
    return stop_detached(cfg, timeout, force)


def restart(cfg: Config, config_path: Path, key: str, timeout: float, force: bool = False) -> LifecycleResult:
    if use_systemd():
        ok, msg = systemd.act("restart")
        if not ok:
            return LifecycleResult(False, f"systemctl --user restart {UNIT_NAME} failed: {msg}")
        healthy, why = wait_healthy(cfg, key, timeout)
        return LifecycleResult(healthy, f"restarted {UNIT_NAME}" if healthy else f"restarted, but {why}")
    stopped = stop_detached(cfg, None, force)
    if not stopped.ok:
        return LifecycleResult(False, f"not restarted: {stopped.message}")
    started = start_detached(cfg, config_path, key, timeout)
    return LifecycleResult(started.ok, f"{stopped.message}; {started.message}")
