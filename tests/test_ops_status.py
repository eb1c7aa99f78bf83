"""``switchyard status``: each check as a pure function, then the command against a running proxy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from proxy import pidfile
from proxy.ops.probes import HttpResult, UnitState, listeners
from proxy.ops.status import (
    Facts,
    Listener,
    check_health,
    check_linger,
    check_litellm,
    check_local_model,
    check_pid_stable,
    check_port,
    check_service,
)
from tests.conftest import LiteLLMCloud, UserPaths
from tests.standins import OpenAILocal
from tests.test_ops_support import ROUTER_KEY, run_cli, write_setup

SY = Listener(100, True, "python -m proxy serve")


def detached(**kw: object) -> Facts:
    f = Facts(port=4000, pidfile_pid=100, pidfile_live=100, main_pids=(100, 100), listening=True, listeners=[SY])
    for k, v in kw.items():
        setattr(f, k, v)
    return f


def health(pid: int = 100, status: int = 200) -> HttpResult:
    body = {"status": "ok", "version": "0.1.0", "local_up": True, "uptime_s": 12.5, "pid": pid}
    return HttpResult(status, json.dumps(body).encode())


def test_service_check() -> None:
    assert check_service(detached()).ok
    stale = check_service(detached(pidfile_live=None))
    assert stale.failed and "not a Switchyard process" in stale.detail and "switchyard start" in stale.fix
    assert check_service(detached(pidfile_live=None, pidfile_pid=None)).failed
    unit = Facts(unit_file=True, unit=UnitState(True, "active", "running", 321))
    assert check_service(unit).ok and "PID 321" in check_service(unit).detail
    down = check_service(Facts(unit_file=True, unit=UnitState(True, "failed", "failed")))
    assert down.failed and "journalctl --user -u switchyard.service" in down.fix
    # A unit file without a user manager: the pidfile decides.
    assert "no systemd user manager" in check_service(detached(unit_file=True, unit=UnitState(False))).detail


def test_pid_stability_check() -> None:
    assert check_pid_stable(detached()).ok
    assert check_pid_stable(detached(main_pids=(100, 101))).failed
    assert check_pid_stable(detached(main_pids=(None, None))).skipped
    restarted = Facts(unit_file=True, unit=UnitState(True, "active", "running", 5, restarts=3), main_pids=(5, 5))
    assert check_pid_stable(restarted).ok and "restarted it 3 time(s)" in check_pid_stable(restarted).detail


def test_port_check_trusts_the_port_owner() -> None:
    assert check_port(detached()).ok
    assert check_port(detached(listening=False, listeners=[])).failed
    other = check_port(detached(listeners=[Listener(7, False, "nginx")]))
    assert other.failed and "another program (nginx), PID 7" in other.detail
    assert check_port(detached(listeners=[])).failed  # another user's program
    stray = check_port(detached(pidfile_live=None, pidfile_pid=None, listeners=[Listener(8, True, "x")]))
    assert stray.failed and "kill 8" in stray.fix


def test_health_check() -> None:
    assert check_health(detached(health=health())).ok
    assert "refused (401)" in check_health(detached(health=HttpResult(401, b"{}"))).detail
    no_key = check_health(detached(health=HttpResult(401, b"{}"), key_set=False))
    assert "SWITCHYARD_ROUTER_KEY is not set" in no_key.detail
    # A banner from someone else: the port owner is what counts.
    assert check_health(detached(health=health(pid=999))).failed
    assert check_health(detached(health=HttpResult(200, b"<html>"))).failed
    assert check_health(detached(health=HttpResult(None, error="Connection refused"))).failed


def test_model_and_litellm_checks() -> None:
    models = HttpResult(200, json.dumps({"data": [{"id": "a"}, {"id": "b"}]}).encode())
    f = Facts(local_url="http://l/v1", local_model="b", local_models=models)
    assert check_local_model(f).ok
    f.local_model = "c"
    missing = check_local_model(f)
    assert missing.failed and "(it has: a, b)" in missing.detail
    assert check_litellm(Facts(litellm=HttpResult(200))).ok
    assert check_litellm(Facts(litellm=HttpResult(None, error="refused"))).failed
    assert check_linger(True).ok and check_linger(False).failed and check_linger(None).skipped


# ---------------------------------------------------------------- the command


@pytest.fixture
def running(user_paths: UserPaths, free_port: Callable[[], int]) -> Iterator[Callable[..., int]]:
    """Start a real detached proxy with ``switchyard start``; stop it after the test."""

    def start(**kw: Any) -> int:
        port = free_port()
        write_setup(user_paths, port=port, **kw)
        res = run_cli("start", "--timeout", "20")
        assert res.returncode == 0, res.stderr
        return port

    yield start
    run_cli("stop", "--force", "--timeout", "5")


def test_status_of_a_healthy_proxy(running: Callable[..., int], cloud: LiteLLMCloud) -> None:
    with OpenAILocal(models=("local-model",)) as local:
        port = running(local_url=local.v1_url, cloud_url=cloud.url)
        res = run_cli("status")
    assert res.returncode == 0, res.stdout
    out = res.stdout
    assert "✓ service: running detached" in out
    assert "✓ main PID stable" in out
    assert f"listens on 127.0.0.1:{port}" in out
    assert "✓ /health: version" in out and "local up" in out
    assert "✓ local model: local-model available" in out
    assert "✓ LiteLLM: alive" in out
    assert ROUTER_KEY not in out + res.stderr


def test_status_names_each_failure_and_its_fix(running: Callable[..., int]) -> None:
    running()  # local server and LiteLLM point at a closed port
    res = run_cli("status")
    assert res.returncode == 1
    assert "✓ /health" in res.stdout
    assert "✗ local model" in res.stdout and "fix: start your local model server" in res.stdout
    assert "✗ LiteLLM" in res.stdout and "fix: start your LiteLLM proxy" in res.stdout


def test_status_when_stopped_with_a_stale_pidfile_and_a_stranger_on_the_port(
    user_paths: UserPaths, free_port: Callable[[], int]
) -> None:
    port = free_port()
    write_setup(user_paths, port=port)
    stranger = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        pidfile.write_pidfile(user_paths.state / "switchyard" / "switchyard.pid", stranger.pid)
        deadline = time.monotonic() + 10
        while not listeners(port)[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        res = run_cli("status")
        assert res.returncode == 1
        assert f"names PID {stranger.pid}, which is not a Switchyard process" in res.stdout
        assert "another program" in res.stdout and "http.server" in res.stdout
        assert "- main PID stable: not running" in res.stdout
        # The banner (http.server answers 404 to /health) is not taken for a healthy proxy.
        assert "✗ /health" in res.stdout
    finally:
        stranger.kill()
        stranger.wait()


def test_systemctl_show_output_is_parsed() -> None:
    from proxy.ops.probes import parse_unit_show

    state = parse_unit_show("ActiveState=active\nSubState=running\nMainPID=4242\nNRestarts=2\n")
    assert state == UnitState(True, "active", "running", 4242, 2)
    # An unknown unit: systemd answers with defaults, and [not set] for counters.
    empty = parse_unit_show("ActiveState=inactive\nSubState=dead\nMainPID=0\nNRestarts=[not set]\n")
    assert (empty.active, empty.main_pid, empty.restarts) == ("inactive", 0, 0)
