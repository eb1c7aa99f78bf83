"""`python -m proxy serve` as a real process: pidfile, startup refusals, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.host import pidfile
from tests.standins import AnthropicUpstream, OpenAILocal
from tests.standins.anthropic_upstream import StallReply, text_reply
from tests.standins.base import free_port
from tests.standins.openai_local import ChunkReply, chat_chunks

REPO = Path(__file__).resolve().parents[1]
KEY = "serve-test-key"


def write_config(
    tmp_path: Path,
    port: int,
    cloud_url: str = "http://127.0.0.1:9",
    host: str = "127.0.0.1",
    *,
    local_url: str = "http://127.0.0.1:9/v1",
    grace: float = 10,
    log_lines: str = "",
) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""
[listen]
host = "{host}"
port = {port}
pidfile = "{tmp_path / "piddir" / "switchyard.pid"}"
shutdown_grace_s = {grace}
[local]
base_url = "{local_url}"
model = "local-model"
[cloud]
base_url = "{cloud_url}"
simple_model = "cloud-simple"
complex_model = "cloud-complex"
[log]
decisions = "{tmp_path / "decisions.jsonl"}"
{log_lines}
"""
    )
    return cfg


def start(
    cfg: Path, env_key: str | None = KEY, *, nofile: int | None = None, stderr: Any = subprocess.PIPE
) -> subprocess.Popen[str]:
    """``python -m proxy serve``; ``nofile`` lowers RLIMIT_NOFILE (soft and hard) in the child."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    if env_key is not None:
        env["SWITCHYARD_ROUTER_KEY"] = env_key

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    return subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(cfg)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        preexec_fn=limit if nofile is not None else None,
    )


def wait_up(port: int, proc: subprocess.Popen[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            httpx.head(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("serve did not come up")


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for a process that is expected to exit by itself."""
    _, err = proc.communicate(timeout=20)
    return proc.returncode, err


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    return proc.returncode, err


@pytest.mark.parametrize("stale", ["dead-pid", "other-process", "garbage"])
def test_stale_pidfile_never_blocks_a_start(tmp_path: Path, stale: str) -> None:
    port = free_port()
    cfg = write_config(tmp_path, port)
    pid_path = tmp_path / "piddir" / "switchyard.pid"
    pid_path.parent.mkdir()
    other = None
    if stale == "dead-pid":
        dead = subprocess.Popen(["true"])
        dead.wait()
        pid_path.write_text(f"{dead.pid}\n")
    elif stale == "other-process":
        other = subprocess.Popen(["sleep", "60"])
        pid_path.write_text(f"{other.pid}\n")
    else:
        pid_path.write_text("not a pid\n")
    proc = start(cfg)
    try:
        wait_up(port, proc)
        assert pidfile.read_pid(pid_path) == proc.pid
        assert pidfile.live_pid(pid_path) == proc.pid
    finally:
        code, err = stop(proc)
        if other is not None:
            assert other.poll() is None, "a stranger's process was signalled"
            other.kill()
            other.wait()
    assert code == 0, err
    assert not pid_path.exists()


def test_a_live_switchyard_pidfile_refuses_a_second_start(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_config(tmp_path, port)
    first = start(cfg)
    try:
        wait_up(port, first)
        code, err = finish(start(cfg))
        assert code != 0 and f"already running as PID {first.pid}" in err
        assert pidfile.read_pid(tmp_path / "piddir" / "switchyard.pid") == first.pid
    finally:
        stop(first)


def test_refuses_non_loopback_without_key(tmp_path: Path) -> None:
    proc = start(write_config(tmp_path, free_port(), host="0.0.0.0"), env_key=None)
    code, err = finish(proc)
    assert code == 2
    assert "refusing to listen on 0.0.0.0 without a router key" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[listen]\nport = "x"\n')
    proc = start(cfg)
    code, err = finish(proc)
    assert code == 2 and err.strip() == "switchyard: config key 'listen.port' must be an integer, got 'x'"


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        proc = start(write_config(tmp_path, s.getsockname()[1]))
        code, err = finish(proc)
    assert code == 2 and "cannot listen on 127.0.0.1" in err
    assert not (tmp_path / "piddir" / "switchyard.pid").exists()


def test_sigterm_lets_an_inflight_stream_finish(tmp_path: Path) -> None:
    with AnthropicUpstream() as up:
        up.script(text_reply("slow answer " * 10, event_delay=0.1))
        port = free_port()
        proc = start(write_config(tmp_path, port, cloud_url=up.url))
        wait_up(port, proc)
        result: dict[str, bytes] = {}

        def client() -> None:
            body = {"model": "cloud", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "x"}]}
            r = httpx.post(f"http://127.0.0.1:{port}/v1/messages", json=body, headers={"x-api-key": KEY}, timeout=30)
            result["body"] = r.content

        t = threading.Thread(target=client)
        t.start()
        up.wait_for_requests(1, tag="messages")
        time.sleep(0.3)  # the stream is flowing
        code, err = stop(proc)
        t.join(30)
    assert code == 0, err
    assert b"message_stop" in result["body"], "the in-flight stream was cut by SIGTERM"
    assert b"event: error" not in result["body"]


def _records(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "decisions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _stream_in_thread(url: str, body: dict[str, Any], out: dict[str, Any], key: str) -> threading.Thread:
    def run() -> None:
        try:
            r = httpx.post(url, json=body, headers={"x-api-key": KEY}, timeout=60)
            out[key] = (r.status_code, r.content)
        except httpx.HTTPError as exc:
            out[key] = (0, repr(exc).encode())

    t = threading.Thread(target=run)
    t.start()
    return t


def _sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Parse an SSE body strictly: every frame has an event and JSON data; blank frames are skipped."""
    events = []
    for frame in raw.decode().split("\n\n"):
        lines = [line for line in frame.split("\n") if line]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_sigterm_past_the_grace_period_ends_streams_with_an_error_event_and_records_503(tmp_path: Path) -> None:
    with AnthropicUpstream() as up, OpenAILocal() as local:
        up.script(text_reply("slow cloud answer " * 40, event_delay=0.3), StallReply(None))
        local.script(ChunkReply(chat_chunks(text="slow local answer " * 40, piece=6), delay=0.3))
        port = free_port()
        proc = start(write_config(tmp_path, port, cloud_url=up.url, local_url=local.v1_url, grace=3))
        wait_up(port, proc)
        url = f"http://127.0.0.1:{port}/v1/messages"
        out: dict[str, Any] = {}

        def body(model: str, stream: bool = True) -> dict[str, Any]:
            return {"model": model, "max_tokens": 10, "stream": stream, "messages": [{"role": "user", "content": "x"}]}

        threads = [
            _stream_in_thread(url, body("cloud"), out, "cloud"),
            _stream_in_thread(url, body("local"), out, "local"),
        ]
        up.wait_for_requests(1, tag="messages")
        local.wait_for_requests(1, tag="chat")
        threads.append(_stream_in_thread(url, body("cloud", stream=False), out, "held"))
        up.wait_for_requests(2, tag="messages")  # the third is held: the cloud stalls
        code, err = stop(proc)
        for t in threads:
            t.join(60)
    assert code == 0, err
    for name in ("cloud", "local"):
        status, raw = out[name]
        assert status == 200, (name, raw[-300:])
        events = _sse_events(raw)  # well-formed to the last byte
        assert events[0][0] == "message_start" and events[-1][0] == "error", (name, events[-3:])
        assert "shutting down" in events[-1][1]["error"]["message"]
        assert "message_stop" not in [e for e, _ in events]
    status, raw = out["held"]
    assert status == 503 and json.loads(raw)["error"]["message"].startswith("Switchyard is shutting down")
    recs = _records(tmp_path)
    assert len(recs) == 3
    assert all(r["status"] == 503 and "shutdown" in r["detail"] for r in recs), recs
    assert "cutting 3 answer(s)" in err



def test_idle_connections_cannot_exhaust_a_low_descriptor_limit(tmp_path: Path) -> None:
    port = free_port()
    proc = start(write_config(tmp_path, port), nofile=256)
    idle: list[socket.socket] = []
    try:
        wait_up(port, proc)
        for _ in range(300):  # more idle connections than the process has descriptors
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        r = httpx.get(f"http://127.0.0.1:{port}/health", headers={"x-api-key": KEY}, timeout=30)
        assert r.status_code == 200, r.text
        conns = r.json()["connections"]
        assert conns["max"] < 256 and conns["open"] <= conns["max"] + 1
        assert conns["closed_idle"] >= 300 - conns["max"]
    finally:
        for s in idle:
            s.close()
        code, err = stop(proc)
    assert code == 0, err
    assert "Too many open files" not in err and "descriptor limit (256)" in err


def test_the_server_log_is_rotated_and_stderr_follows_it(tmp_path: Path) -> None:
    log_path = tmp_path / "proxy.log"
    log_lines = f'server = "{log_path}"\nserver_max_bytes = 600\nserver_backups = 2'
    port = free_port()
    # As systemd's StandardError=append: does: stderr is the same file, appended.
    with log_path.open("ab") as appended:
        proc = start(write_config(tmp_path, port, log_lines=log_lines), stderr=appended)
    try:
        wait_up(port, proc)
        for _ in range(3):
            for _ in range(40):
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET / HTTP/1.x\r\nHost: x\r\n\r\n")
                    s.recv(65536)
            time.sleep(0.1)
        assert log_path.with_name("proxy.log.2").exists()
        # What the process writes to stdout/stderr lands in the current file, not a rotated one.
        for fd in (1, 2):
            assert os.readlink(f"/proc/{proc.pid}/fd/{fd}") == str(log_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    files = [log_path, log_path.with_name("proxy.log.1"), log_path.with_name("proxy.log.2")]
    assert all(f.exists() for f in files), list(tmp_path.iterdir())
    assert not log_path.with_name("proxy.log.3").exists()
    for f in files:
        assert f.stat().st_size <= 600 + 300, f  # the cap, plus at most the line that crossed it
        assert "Traceback" not in f.read_text()
    assert "Switchyard stopped" in log_path.read_text()  # the last lines are in the current file


@pytest.mark.parametrize("signals", [["SIGINT"], ["SIGHUP"], ["SIGTERM", "SIGTERM"]])
def test_every_stop_signal_lets_an_inflight_stream_finish(tmp_path: Path, signals: list[str]) -> None:
    with AnthropicUpstream() as up:
        up.script(text_reply("slow answer " * 10, event_delay=0.1))
        port = free_port()
        proc = start(write_config(tmp_path, port, cloud_url=up.url))
        wait_up(port, proc)
        out: dict[str, Any] = {}
        body = {"model": "cloud", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "x"}]}
        t = _stream_in_thread(f"http://127.0.0.1:{port}/v1/messages", body, out, "stream")
        up.wait_for_requests(1, tag="messages")
        for name in signals:
            proc.send_signal(getattr(signal, name))
        _, err = proc.communicate(timeout=30)
        t.join(30)
    assert proc.returncode == 0, err
    status, raw = out["stream"]
    assert status == 200 and b"message_stop" in raw and b"event: error" not in raw
    assert not (tmp_path / "piddir" / "switchyard.pid").exists()
