"""``switchyard start | stop | restart`` without a user manager: detached, with a pidfile that is only
live while its process holds its lock, and never removed for a process still running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy.host import http_probe, pidfile, procs
from proxy.host.paths import Paths
from tests.conftest import UserPaths
from tests.test_ops_support import ROUTER_KEY, run_cli, spawn_holding, stale_pidfile, write_setup

FAKE_SWITCHYARD = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(120)\n"
)


@pytest.fixture
def spawned() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start helper processes and make sure each one is gone after the test."""
    procs: list[subprocess.Popen[str]] = []

    def spawn(*argv: str, holding: Path | None = None) -> subprocess.Popen[str]:
        if holding is not None:
            proc = spawn_holding(holding, *argv, stdout=subprocess.PIPE)
        else:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _pidfile(up: UserPaths) -> Path:
    return Paths.from_env().pidfile  # the installer's config names the one default


def _stop_quietly() -> None:
    run_cli("stop", "--force", "--timeout", "5")


def test_start_ignores_a_stale_pidfile_and_stop_leaves_the_stranger_alone(
    user_paths: UserPaths, free_port: Callable[[], int], spawned: Callable[..., subprocess.Popen[str]]
) -> None:
    port = free_port()
    write_setup(user_paths, port=port)
    stranger = spawned("sleep", "60")
    pid_path = _pidfile(user_paths)
    stale_pidfile(pid_path, stranger.pid)  # the PID a reboot handed to someone else
    try:
        res = run_cli("start", "--timeout", "20")
        assert res.returncode == 0, res.stderr
        assert "started, PID" in res.stdout
        proxy_pid = pidfile.live_pid(pid_path)
        assert proxy_pid is not None and proxy_pid != stranger.pid
        # Start again: already running, nothing new spawned.
        again = run_cli("start")
        assert again.returncode == 0 and f"already running (PID {proxy_pid}" in again.stdout
        res = run_cli("stop")
        assert res.returncode == 0, res.stderr
        assert f"stopped (PID {proxy_pid})" in res.stdout
        assert procs.gone(proxy_pid)
        assert not os.path.exists(pid_path)
        assert stranger.poll() is None, "stop must never signal a process that is not Switchyard"
    finally:
        _stop_quietly()


def test_stop_with_only_a_stale_pidfile_signals_nobody(
    user_paths: UserPaths, spawned: Callable[..., subprocess.Popen[str]]
) -> None:
    write_setup(user_paths, port=1)
    stranger = spawned("sleep", "60")
    pid_path = _pidfile(user_paths)
    stale_pidfile(pid_path, stranger.pid)
    res = run_cli("stop")
    assert res.returncode == 0
    assert f"names PID {stranger.pid}, but no process holds its lock" in res.stdout
    assert stranger.poll() is None
    assert pidfile.read_pid(pid_path) == stranger.pid


def test_stop_keeps_the_pidfile_of_a_process_it_could_not_stop(
    user_paths: UserPaths, spawned: Callable[..., subprocess.Popen[str]]
) -> None:
    write_setup(user_paths, port=1)
    # Holds the pidfile's lock (what makes it the pidfile's process; its command line does not count),
    # and ignores SIGTERM.
    pid_path = _pidfile(user_paths)
    fake = spawned(sys.executable, "-c", FAKE_SWITCHYARD, holding=pid_path)
    assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
    assert pidfile.live_pid(pid_path) == fake.pid
    res = run_cli("stop", "--timeout", "0.5")
    assert res.returncode == 1
    assert "still running" in res.stderr and "pidfile kept" in res.stderr
    assert pidfile.read_pid(pid_path) == fake.pid and fake.poll() is None
    res = run_cli("stop", "--timeout", "0.5", "--force")
    assert res.returncode == 0, res.stderr
    assert fake.wait(timeout=10) == -signal.SIGKILL
    assert not os.path.exists(pid_path)


def test_start_refuses_a_port_held_by_another_program(
    user_paths: UserPaths, free_port: Callable[[], int], spawned: Callable[..., subprocess.Popen[str]]
) -> None:
    port = free_port()
    write_setup(user_paths, port=port)
    holder = spawned(sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _listening(port):
        time.sleep(0.05)
    res = run_cli("start", "--timeout", "5")
    assert res.returncode == 1
    assert f"port {port} is held by" in res.stderr and "http.server" in res.stderr
    assert holder.poll() is None


def _listening(port: int) -> bool:
    return procs.listeners(port)[0]


def test_a_proxy_that_cannot_start_is_reported_with_its_log(
    user_paths: UserPaths, free_port: Callable[[], int]
) -> None:
    # The config loads, but the server refuses to run: its prompt file is missing.
    port = free_port()
    missing = user_paths.home / "no-such-prompt.txt"
    write_setup(user_paths, port=port, pidfile=False, routing_extra=f'classifier_prompt_file = "{missing}"')
    res = run_cli("start", "--timeout", "15")
    assert res.returncode == 1
    assert "the proxy exited with status" in res.stderr
    assert "no-such-prompt.txt" in res.stderr  # the end of proxy.log is shown
    assert pidfile.live_pid(Paths.from_env().pidfile) is None


def test_restart_replaces_the_process(user_paths: UserPaths, free_port: Callable[[], int]) -> None:
    port = free_port()
    write_setup(user_paths, port=port, pidfile=False)  # start keeps its own pidfile
    try:
        assert run_cli("start", "--timeout", "20").returncode == 0
        first = pidfile.live_pid(Paths.from_env().pidfile)
        assert first is not None
        res = run_cli("restart", "--timeout", "20")
        assert res.returncode == 0, res.stderr
        second = pidfile.live_pid(Paths.from_env().pidfile)
        assert second is not None and second != first
        assert procs.gone(first)
        url = f"http://127.0.0.1:{port}/health"
        assert http_probe.request(url, http_probe.router_headers(ROUTER_KEY)).status == 200
    finally:
        _stop_quietly()


def test_start_without_the_router_key_says_how_to_fix_it(user_paths: UserPaths) -> None:
    config = write_setup(user_paths, port=1)
    (config.parent / "env").write_text("SWITCHYARD_LITELLM_KEY=x\n")
    res = run_cli("start")
    assert res.returncode == 1
    assert "SWITCHYARD_ROUTER_KEY is not set" in res.stderr
