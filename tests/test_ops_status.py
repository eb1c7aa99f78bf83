"""``switchyard status``: each check as a pure function, then the command against a running proxy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from proxy.capabilities import UNKNOWN, LocalCapabilities, capabilities_json
from proxy.config import LocalConfig
from proxy.host.http_probe import HttpResult
from proxy.host.paths import Paths
from proxy.host.procs import listeners
from proxy.host.systemd import UnitState
from proxy.ops.checks import render
from proxy.ops.status import (
    FROM_PROXY,
    PROBED,
    Facts,
    Listener,
    check_health,
    check_linger,
    check_litellm,
    check_local_model,
    check_local_server,
    check_pid_stable,
    check_port,
    check_service,
    local_capabilities,
)
from tests.conftest import LiteLLMCloud, UserPaths
from tests.standins import OllamaLocal, OpenAILocal
from tests.test_ops_doctor import lines_for
from tests.test_ops_support import ROUTER_KEY, run_cli, stale_pidfile, write_setup

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
    assert stale.failed and "no running process holds its lock" in stale.detail and "switchyard start" in stale.fix
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
    # Without the key a running proxy answers liveness only: up, but no detail to check.
    liveness = HttpResult(200, b'{"status": "ok", "version": "0.1.0", "detail": "send the router key for more"}')
    bare = check_health(detached(health=liveness, key_set=False))
    assert bare.failed and "up (version 0.1.0)" in bare.detail and "not set here" in bare.detail
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
        stale_pidfile(Paths.from_env().pidfile, stranger.pid)
        deadline = time.monotonic() + 10
        while not listeners(port)[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        res = run_cli("status")
        assert res.returncode == 1
        assert f"names PID {stranger.pid}, but no running process holds its lock" in res.stdout
        assert "another program" in res.stdout and "http.server" in res.stdout
        assert "- main PID stable: not running" in res.stdout
        # The banner (http.server answers 404 to /health) is not taken for a healthy proxy.
        assert "✗ /health" in res.stdout
    finally:
        stranger.kill()
        stranger.wait()


def test_systemctl_show_output_is_parsed() -> None:
    from proxy.host.systemd import parse_unit_show

    state = parse_unit_show("ActiveState=active\nSubState=running\nMainPID=4242\nNRestarts=2\n")
    assert state == UnitState(True, "active", "running", 4242, 2)
    # An unknown unit: systemd answers with defaults, and [not set] for counters.
    empty = parse_unit_show("ActiveState=inactive\nSubState=dead\nMainPID=0\nNRestarts=[not set]\n")
    assert (empty.active, empty.main_pid, empty.restarts) == ("inactive", 0, 0)


# ---------------------------------------------------------------- what the local server can take


def test_local_server_check_says_what_the_server_takes() -> None:
    ollama = LocalCapabilities(kind="ollama", version="0.14.2", context_per_request=4096, tools=True,
                               truncates_silently=True)  # fmt: skip
    bad = check_local_server(Facts(local_caps=ollama, local_caps_source=FROM_PROXY))
    assert bad.failed
    assert bad.detail.startswith("Ollama 0.14.2, 4,096 tokens per request, takes tools (as the running proxy sees it);")
    assert "Ollama: 4,096 tokens per request; Claude Code's requests need about 19,000 plus 2,048" in bad.detail
    assert "without an error" in bad.detail  # the silent truncation, too
    fix = "set OLLAMA_CONTEXT_LENGTH=65536 for the Ollama server"
    assert bad.fix.startswith(fix) and bad.fix.count(fix) == 1  # the same fix for both problems, said once
    llama = LocalCapabilities(kind="llama.cpp", context_per_request=8192, slots=4, tools=False)
    both = check_local_server(Facts(local_caps=llama))
    assert render(both).count("\n    fix: ") == 2  # one line per distinct fix
    assert "\n    fix: restart llama-server with `-np 1`" in render(both) and "`--jinja`" in both.fix

    big = LocalCapabilities(kind="llama.cpp", version="b1-x", context_per_request=65536, slots=1, tools=True)
    good = check_local_server(Facts(local_caps=big, local_caps_source=PROBED))
    assert good.ok and good.detail == "llama.cpp b1-x, 65,536 tokens per request, takes tools (probed directly)"
    # A configured local.context_tokens is what routing goes by.
    capped = check_local_server(Facts(local_caps=big, local=LocalConfig(context_tokens=8192)))
    assert capped.failed and "local.context_tokens: 8,192 tokens per request" in capped.detail

    vllm = LocalCapabilities(kind="vllm", context_per_request=32768)
    unsure = check_local_server(Facts(local_caps=vllm))
    assert unsure.ok and unsure.detail.endswith("; vLLM does not say; tool requests are tried locally")

    down = check_local_server(Facts(local_caps=UNKNOWN))
    assert down.skipped and down.detail == (
        "the local server did not answer its discovery endpoints; check that it is running; "
        "Switchyard tries it and falls back to the cloud"
    )
    assert check_local_server(Facts()).skipped


def test_local_capabilities_prefer_the_proxys_report() -> None:
    from proxy.config import Config

    with OllamaLocal(models=("qwen3",)) as ollama:
        cfg = Config(local=LocalConfig(base_url=ollama.v1_url, model="qwen3:latest"))
        reported = {"status": "ok", "local": capabilities_json(LocalCapabilities(kind="vllm", context_per_request=9))}
        caps, source = local_capabilities(cfg, HttpResult(200, json.dumps(reported).encode()))
        assert (caps.kind, caps.context_per_request, source) == ("vllm", 9, FROM_PROXY)
        assert ollama.requests == []
        # An older proxy (no "local"), one that found nothing, or none at all: the server is asked.
        for answer in (health(), HttpResult(200, b'{"local": {"kind": "unknown"}}'), None):
            caps, source = local_capabilities(cfg, answer)
            assert (caps.kind, caps.context_per_request, source) == ("ollama", 4096, PROBED)


def test_status_shows_what_the_local_server_takes(running: Callable[..., int]) -> None:
    with OllamaLocal(models=("qwen3",)) as ollama:
        running(local_url=ollama.v1_url, model="qwen3:latest")
        res = run_cli("status")
    assert res.returncode == 1
    line = lines_for(res.stdout, "local server")
    assert line.startswith("✗ local server: Ollama 0.14.2, 4,096 tokens per request, takes tools")
    assert "(as the running proxy sees it)" in line
    assert "Claude Code's requests need about 19,000 plus 2,048 for the answer" in line
    assert "fix: set OLLAMA_CONTEXT_LENGTH=65536 for the Ollama server" in line
    assert "✓ local model: qwen3:latest available" in res.stdout
