"""``switchyard start | stop | restart``: through systemd when it can, detached with a pidfile when not.

systemd is used when the unit file exists and a user manager answers.  Otherwise the proxy runs
detached in its own session, its output appended to ``$XDG_STATE_HOME/switchyard/proxy.log``.  The
pidfile is trusted only when its PID is alive *and* is Switchyard (``proxy.pidfile.live_pid``), and
``stop`` removes it only once that very process is gone: a pidfile is never deleted for a process
that is still running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import proxy
from proxy import pidfile
from proxy.config import Config
from proxy.ops import paths, probes
from proxy.ops.context import base_url
from proxy.ops.status import listener_facts


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


def use_systemd() -> bool:
    return paths.unit_path().exists() and probes.user_manager_answers()


def wait_healthy(
    cfg: Config, key: str, timeout: float, still_starting: Callable[[], str | None] | None = None
) -> tuple[bool, str]:
    """Poll ``/health`` with the router key until it answers 200; ``still_starting`` reports an early death."""
    url = f"{base_url(cfg)}/health"
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if still_starting is not None:
            died = still_starting()
            if died:
                return False, died
        r = probes.http_request(url, probes.auth_headers(key), timeout=1.0)
        if r.status == 200:
            return True, "healthy"
        last = f"HTTP {r.status}" if r.status is not None else r.error
        time.sleep(0.1)
    return False, f"/health did not answer 200 within {timeout:g} s (last: {last})"


def tail(path: Path, lines: int = 8) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def _gone(pid: int) -> bool:
    # Not "not alive": an exited child of ours (or of a PID 1 that does not reap) lingers as a
    # zombie, which kill(pid, 0) still finds.  A zombie has no command line, so is_switchyard fails.
    return not pidfile.is_switchyard(pid)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return _gone(pid)


def child_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The detached proxy's environment: ours (env file already applied) and our ``proxy`` package on the path."""
    env = dict(environ if environ is not None else os.environ)
    root = str(Path(proxy.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def start_detached(cfg: Config, config_path: Path, key: str, timeout: float) -> Outcome:
    pid_path = paths.pidfile_path(cfg)
    live = pidfile.live_pid(pid_path)
    if live is not None:
        return Outcome(True, f"already running (PID {live}, pidfile {pid_path})")
    listening, holders = listener_facts(cfg.listen.port)
    if listening:
        ours = [h for h in holders if h.is_switchyard]
        if ours:
            return Outcome(
                False,
                f"a Switchyard (PID {ours[0].pid}) already holds port {cfg.listen.port} but has no pidfile "
                f"at {pid_path}; stop it (kill {ours[0].pid}) and run switchyard start again",
            )
        who = f"{holders[0].command} (PID {holders[0].pid})" if holders else "another user's program"
        return Outcome(
            False,
            f"port {cfg.listen.port} is held by {who}; stop it or choose another listen.port (re-run the installer)",
        )
    log_path = paths.proxy_log_path()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "proxy", "serve", "--config", str(config_path.resolve())]
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives this command and the terminal it ran in
            env=child_env(),
            cwd=str(paths.home()),
        )
    if not cfg.listen.pidfile:
        # The proxy writes the pidfile itself only when the config names one.
        pidfile.write_pidfile(pid_path, child.pid)

    def died() -> str | None:
        code = child.poll()
        if code is None:
            return None
        return f"the proxy exited with status {code}; the end of {log_path}:\n{tail(log_path)}"

    ok, why = wait_healthy(cfg, key, timeout, died)
    if ok:
        # Reaped by init once it exits: this command does not wait for it.
        child.returncode = 0
        return Outcome(True, f"started, PID {child.pid}, listening on {base_url(cfg)} (log: {log_path})")
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=cfg.listen.shutdown_grace_s + 5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)
    pidfile.remove_if_owned(pid_path, child.pid)
    return Outcome(False, f"did not start: {why}")


def stop_detached(cfg: Config, timeout: float | None = None, force: bool = False) -> Outcome:
    pid_path = paths.pidfile_path(cfg)
    pid = pidfile.live_pid(pid_path)
    if pid is None:
        stale = pidfile.read_pid(pid_path)
        if stale is not None:
            return Outcome(
                True,
                f"not running (pidfile {pid_path} names PID {stale}, which is not Switchyard: "
                "left alone, it never blocks a start)",
            )
        return Outcome(True, "not running")
    wait = timeout if timeout is not None else cfg.listen.shutdown_grace_s + 5
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        return Outcome(False, f"not allowed to signal PID {pid}; pidfile {pid_path} kept")
    if not _wait_gone(pid, wait):
        if not force:
            return Outcome(
                False,
                f"PID {pid} is still running {wait:g} s after SIGTERM (finishing answers?); pidfile kept. "
                "Try again, or switchyard stop --force",
            )
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            return Outcome(False, f"not allowed to kill PID {pid}; pidfile {pid_path} kept")
        if not _wait_gone(pid, 5.0):
            return Outcome(False, f"PID {pid} survived SIGKILL; pidfile {pid_path} kept")
    pidfile.remove_if_owned(pid_path, pid)
    return Outcome(True, f"stopped (PID {pid})")


def start(cfg: Config, config_path: Path, key: str, timeout: float) -> Outcome:
    if use_systemd():
        ok, msg = probes.systemctl("start")
        if not ok:
            return Outcome(False, f"systemctl --user start {paths.UNIT_NAME} failed: {msg}")
        healthy, why = wait_healthy(cfg, key, timeout)
        if not healthy:
            return Outcome(False, f"{paths.UNIT_NAME} started but {why}; see switchyard status")
        return Outcome(True, f"started {paths.UNIT_NAME}, listening on {base_url(cfg)}")
    return start_detached(cfg, config_path, key, timeout)


def stop(cfg: Config, timeout: float | None = None, force: bool = False) -> Outcome:
    if use_systemd():
        ok, msg = probes.systemctl("stop")
        if not ok:
            return Outcome(False, f"systemctl --user stop {paths.UNIT_NAME} failed: {msg}")
        # A proxy started by hand beside the unit would keep the port: stop it too.
        extra = stop_detached(cfg, timeout, force)
        return Outcome(extra.ok, f"stopped {paths.UNIT_NAME}" + ("" if extra.ok else f"; {extra.message}"))
    return stop_detached(cfg, timeout, force)


def restart(cfg: Config, config_path: Path, key: str, timeout: float, force: bool = False) -> Outcome:
    if use_systemd():
        ok, msg = probes.systemctl("restart")
        if not ok:
            return Outcome(False, f"systemctl --user restart {paths.UNIT_NAME} failed: {msg}")
        healthy, why = wait_healthy(cfg, key, timeout)
        return Outcome(healthy, f"restarted {paths.UNIT_NAME}" if healthy else f"restarted, but {why}")
    stopped = stop_detached(cfg, None, force)
    if not stopped.ok:
        return Outcome(False, f"not restarted: {stopped.message}")
    started = start_detached(cfg, config_path, key, timeout)
    return Outcome(started.ok, f"{stopped.message}; {started.message}")
