"""Fault injection on the server side: protocol garbage over raw sockets, clients that vanish,
connection floods.  Each kind is one parametrized case, so the README's fault-suite figures
("kinds tried, clean, defects") are the cases here and in tests/test_server_faults.py; signals and
descriptor limits need a real process and live in tests/test_serve_process.py.

What every case checks: an answer in Anthropic's error shape where the connection allows one (or the
answer the request deserves), at most one log line per fault and never a traceback, and a server
that still answers /health afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web, web_protocol

from proxy import listener
from proxy.config import LocalConfig
from proxy.health import LocalHealth
from proxy.server_log import RateLimit
from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config, messages_body
from tests.rawhttp import exchange, host_port, request_bytes
from tests.standins import AnthropicUpstream, OpenAILocal
from tests.standins.anthropic_upstream import StallReply, text_reply
from tests.standins.openai_local import ChunkReply, chat_chunks
from tests.standins.openai_local import StallReply as LocalStall

KEY = ROUTER_KEY.encode()
BODY = json.dumps(messages_body(model="cloud")).encode()


def _post(extra: bytes, body: bytes = BODY) -> bytes:
    return (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: " + KEY
        + b"\r\ncontent-type: application/json\r\n" + extra + b"\r\n" + body
    )


@dataclass(frozen=True)
class Fault:
    data: bytes
    status: int  # what the answer's status must be
    error: bool = True  # an Anthropic error body (False: a normal answer)


# The twenty-odd ways a request can break HTTP itself.  aiohttp rejects them before the app runs.
PROTOCOL_FAULTS: dict[str, Fault] = {
    "bad chunk size": Fault(_post(b"Transfer-Encoding: chunked\r\n", b"zz\r\n"), 400),
    "chunk data without CRLF": Fault(_post(b"Transfer-Encoding: chunked\r\n", b"4\r\nabcdXX\r\n0\r\n\r\n"), 400),
    "chunk extension garbage": Fault(_post(b"Transfer-Encoding: chunked\r\n", b"4;\x01\r\nabcd\r\n0\r\n\r\n"), 400),
    "chunked and Content-Length": Fault(
        _post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"), 400
    ),
    "unknown Transfer-Encoding": Fault(_post(b"Transfer-Encoding: gzip\r\n", b""), 400),
    "Content-Length not a number": Fault(_post(b"Content-Length: abc\r\n"), 400),
    "negative Content-Length": Fault(_post(b"Content-Length: -5\r\n"), 400),
    "two Content-Lengths": Fault(_post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"abcdef"), 400),
    "HTTP/2 preface": Fault(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    "TLS client hello": Fault(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400),
    "request line over 8 KB": Fault(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "header over 8 KB": Fault(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 400),
    "200 headers": Fault(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n",
                         400),
    "header without colon": Fault(b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
    "space in header name": Fault(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400),
    "space before colon": Fault(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    "NUL in header value": Fault(b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    "obsolete line folding": Fault(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n", 400),
    "bad HTTP version": Fault(b"GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400),
    "bare LF line ends": Fault(b"GET / HTTP/1.1\nHost: x\n\n", 400),
    "invalid method": Fault(b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "invalid URL": Fault(b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "NUL in path": Fault(b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "unknown Expect": Fault(_post(b"Expect: teapot\r\nContent-Length: %d\r\n" % len(BODY)), 417),
    "unknown Expect on an unknown path": Fault(
        b"POST /nope HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}", 417
    ),
    # Odd but valid: these get a real answer.
    "HTTP/0.9-style request line": Fault(b"GET /\r\n\r\n", 200, error=False),
    "HTTP/2.0 version on an HTTP/1 line": Fault(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 200, error=False),
    "Upgrade: websocket on /health": Fault(
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nx-api-key: " + KEY
        + b"\r\n\r\n", 200, error=False
    ),
    "Expect: 100-continue": Fault(_post(b"Expect: 100-continue\r\nContent-Length: %d\r\n" % len(BODY)), 200,
                                  error=False),
}


# Valid but odd HTTP: each gets the answer it deserves (status), always in JSON.
_H = {"x-api-key": ROUTER_KEY, "content-type": "application/json", "connection": "close"}
ODD_REQUESTS: dict[str, tuple[bytes, int]] = {
    "PUT on /v1/messages": (request_bytes("PUT", "/v1/messages", _H, BODY), 405),
    "DELETE on /health": (request_bytes("DELETE", "/health", _H), 405),
    "OPTIONS *": (request_bytes("OPTIONS", "*", _H), 404),
    "GET on count_tokens": (request_bytes("GET", "/v1/messages/count_tokens", _H), 405),
    "encoded NUL in the path": (request_bytes("GET", "/v1/messages%00", _H), 404),
    "double slash": (request_bytes("POST", "//v1/messages", _H, BODY), 404),
    "dot segments": (request_bytes("GET", "/v1/../health", _H), 404),
    "non-UTF-8 query string": (request_bytes("POST", "/v1/messages?x=%ff%fe", _H, BODY), 200),
    "raw non-UTF-8 path": (b"GET /h\xffalth HTTP/1.1\r\nHost: x\r\nx-api-key: " + KEY + b"\r\n\r\n", 400),
    "HTTP/1.1 without Host": (b"GET /health HTTP/1.1\r\nx-api-key: " + KEY + b"\r\nConnection: close\r\n\r\n", 400),
    "HTTP/1.0 without Host": (b"GET /health HTTP/1.0\r\nx-api-key: " + KEY + b"\r\n\r\n", 200),
    "two x-api-key headers, wrong first": (
        b"GET /health HTTP/1.1\r\nHost: x\r\nx-api-key: wrong\r\nx-api-key: " + KEY + b"\r\nConnection: close\r\n\r\n",
        401,
    ),
    # Not a key at all: /health answers liveness only (no detail) to a probe without a key.
    "Basic auth with the key": (request_bytes("GET", "/health", {"authorization": "Basic " + ROUTER_KEY}), 200),
    "Basic auth with the key, messages": (
        request_bytes("POST", "/v1/messages", {"authorization": "Basic " + ROUTER_KEY}), 401),
    "lowercase bearer": (request_bytes("GET", "/health", {"authorization": "bearer " + ROUTER_KEY}), 200),
    "absolute-form target": (request_bytes("GET", "http://127.0.0.1/health", _H), 200),
    "content-type with charset": (
        request_bytes("POST", "/v1/messages", {**_H, "content-type": "application/json; charset=utf-8"}, BODY), 200
    ),
    "content-type in capitals": (
        request_bytes("POST", "/v1/messages", {**_H, "content-type": "APPLICATION/JSON"}, BODY), 200
    ),
    "content-type json-seq": (
        request_bytes("POST", "/v1/messages", {**_H, "content-type": "application/json-seq"}, BODY), 415
    ),
    "chunked body": (
        request_bytes("POST", "/v1/messages", {**_H, "transfer-encoding": "chunked"},
                      b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n"),
        200,
    ),
    "two pipelined requests": (request_bytes("GET", "/health", {"x-api-key": ROUTER_KEY})
                               + request_bytes("GET", "/health", _H), 200),
    "empty POST body": (request_bytes("POST", "/v1/messages", {**_H, "content-length": "0"}), 400),
    "h2c upgrade asked": (
        request_bytes("GET", "/health", {**_H, "connection": "Upgrade, HTTP2-Settings", "upgrade": "h2c",
                                         "http2-settings": "AAMAAABkAAQAAP__"}),
        200,
    ),
    "Accept: text/html on an error": (request_bytes("GET", "/nope", {**_H, "accept": "text/html"}), 404),
    "100-continue with a wrong key": (
        request_bytes("POST", "/v1/messages", {**_H, "x-api-key": "wrong", "expect": "100-continue"}, BODY), 401
    ),
    "8 KB key": (request_bytes("GET", "/health", {"x-api-key": "k" * 8000, "connection": "close"}), 401),
    "5 KB session id": (request_bytes("POST", "/v1/messages", {**_H, "x-claude-code-session-id": "s" * 5000}, BODY),
                        200),
}


def _b(**fields: object) -> bytes:
    return json.dumps({"model": "cloud", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **fields}
                      ).encode()


def _user(content: object) -> list[dict[str, object]]:
    return [{"role": "user", "content": content}]


# Malformed or odd Messages bodies: a 4xx that names the problem, or an answer; never a 5xx.
BODY_FAULTS: dict[str, bytes] = {
    "empty": b"",
    "null": b"null",
    "a string": b'"hello"',
    "a number": b"42",
    "NaN literal": b'{"model":"cloud","max_tokens":NaN,"messages":[]}',
    "40-digit integer": b'{"model":"cloud","max_tokens":' + b"9" * 40 + b',"messages":[]}',
    "max_tokens 2**63": _b(max_tokens=2**63),
    "max_tokens negative": _b(max_tokens=-1),
    "max_tokens 5.5": _b(max_tokens=5.5),
    "model a number": _b(model=5),
    "model empty": _b(model=""),
    "model 100 KB": _b(model="x" * 100_000),
    "model with NUL": _b(model="clo\u0000ud"),
    "model 'local,'": _b(model="local,"),
    "model not ASCII": _b(model="clöud"),
    "messages an object": _b(messages={"a": 1}),
    "messages empty": _b(messages=[]),
    "a null message": _b(messages=[None]),
    "content null": _b(messages=_user(None)),
    "block without type": _b(messages=_user([{"text": "x"}])),
    "block of unknown type": _b(messages=_user([{"type": "bogus"}])),
    "tool_result inside tool_result": _b(messages=_user([{"type": "tool_result", "tool_use_id": "a", "content": [
        {"type": "tool_result", "content": [{"type": "text", "text": "x"}]}]}])),
    "image with a string source": _b(messages=_user([{"type": "image", "source": "x"}])),
    "system a number": _b(system=5),
    "system a list of strings": _b(system=["a"]),
    "system text a number": _b(system=[{"type": "text", "text": 5}]),
    "tools an object": _b(tools={"a": 1}),
    "tool name a number": _b(tools=[{"name": 5}]),
    "tool schema a string": _b(tools=[{"name": "t", "input_schema": "x"}]),
    "tool_choice a string": _b(tool_choice="x"),
    "stream a string": _b(stream="yes"),
    "temperature a string": _b(temperature="hot"),
    "metadata a list": _b(metadata=[1]),
    "user_id a number": _b(metadata={"user_id": 5}),
    "stop_sequences a string": _b(stop_sequences="x"),
    "thinking a string": _b(thinking="x"),
    "lone surrogate escape": b'{"model":"cloud","max_tokens":5,"messages":[{"role":"user","content":"\\ud800"}]}',
    "invalid UTF-8 in a string": b'{"model":"cloud","max_tokens":5,"messages":[{"role":"user","content":"\xff"}]}',
    "UTF-8 BOM first": b"\xef\xbb\xbf" + _b(),
    "trailing garbage": _b() + b"xyz",
    "two objects": _b() + _b(),
    "100,000 messages": _b(messages=_user("x") * 100_000),
    "5 MB of text": _b(messages=_user("x" * 5_000_000)),
    "only a system message": _b(messages=[{"role": "system", "content": "x"}]),
    "assistant first": _b(messages=[{"role": "assistant", "content": "x"}]),
    "local: image without data": _b(model="local", messages=_user([{"type": "image", "source": {"type": "base64"}}])),
    "local: tool_use input a string": _b(model="local", messages=[
        {"role": "assistant", "content": [{"type": "tool_use", "id": "1", "name": "t", "input": "x"}]},
        {"role": "user", "content": "y"}]),
    "300 nested tool_results": json.dumps({"model": "cloud", "max_tokens": 5, "messages": _user("@@")}).replace(
        '"@@"', '[{"type":"tool_result","tool_use_id":"a","content":' * 300 + '"x"' + "}]" * 300).encode(),
}


@pytest.fixture(autouse=True)
def fresh_log_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # The protocol-error budget is per process; each test starts with a full one.
    monkeypatch.setattr(listener, "_PROTOCOL_LOG", RateLimit(limit=20, window_s=10.0))


@pytest.fixture
def proxy(tmp_path: Path, local: OpenAILocal, upstream: AnthropicUpstream) -> Iterator[ProxyThread]:
    cfg = make_config(tmp_path, local_url=local.v1_url, cloud_url=upstream.url,
                      local={"first_token_timeout_s": 1.0})
    with ProxyThread(cfg) as p:
        yield p


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


@pytest.mark.parametrize("name", list(PROTOCOL_FAULTS))
def test_protocol_garbage_gets_anthropic_json_and_one_log_line(
    proxy: ProxyThread, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    fault = PROTOCOL_FAULTS[name]
    with caplog.at_level(logging.INFO):
        r = exchange(proxy.url, fault.data, timeout=10)
    assert r.status == fault.status, (name, r.raw[:300])
    if fault.error:
        assert r.headers["content-type"].startswith("application/json"), r.raw[:300]
        data = r.json()
        assert data["type"] == "error" and data["error"]["type"] in ("invalid_request_error",)
        message = data["error"]["message"]
        assert message and "\n" not in message and "\\x" not in message
    assert _tracebacks(caplog) == []
    assert len([rec for rec in caplog.records if rec.name.startswith(("switchyard.http", "aiohttp"))]) <= 1
    assert httpx.get(proxy.url + "/health", headers=proxy.headers()).status_code == 200


@pytest.mark.parametrize("name", list(ODD_REQUESTS))
def test_odd_but_valid_http_gets_the_answer_it_deserves_in_json(proxy: ProxyThread, name: str) -> None:
    data, status = ODD_REQUESTS[name]
    r = exchange(proxy.url, data, timeout=20)
    assert r.status == status, (name, r.raw[:300])
    assert r.headers["content-type"].startswith("application/json"), r.raw[:300]
    if status >= 400:
        assert r.json()["type"] == "error"


@pytest.fixture
def roomy_proxy(tmp_path: Path, local: OpenAILocal, upstream: AnthropicUpstream) -> Iterator[ProxyThread]:
    cfg = make_config(tmp_path, local_url=local.v1_url, cloud_url=upstream.url, listen={"max_body_bytes": 8_000_000})
    with ProxyThread(cfg) as p:
        yield p


@pytest.mark.parametrize("endpoint", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize("name", list(BODY_FAULTS))
def test_malformed_bodies_get_a_4xx_that_names_the_problem_or_an_answer(
    roomy_proxy: ProxyThread, name: str, endpoint: str
) -> None:
    r = httpx.post(roomy_proxy.url + endpoint, headers=roomy_proxy.headers(), content=BODY_FAULTS[name], timeout=60)
    assert r.status_code < 500, (name, r.text[:300])
    assert r.headers["content-type"].startswith(("application/json", "text/event-stream")), r.text[:300]
    if r.status_code >= 400:
        data = r.json()
        assert data["type"] == "error" and data["error"]["message"] and "\n" not in data["error"]["message"]


def test_a_client_sending_garbage_in_a_loop_cannot_flood_the_log(
    proxy: ProxyThread, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: a ~500-byte traceback per request (about 1.2 MB/s from one client).
    with caplog.at_level(logging.INFO):
        for _ in range(300):
            r = exchange(proxy.url, PROTOCOL_FAULTS["bad chunk size"].data, timeout=10)
            assert r.status == 400
    lines = [rec for rec in caplog.records if rec.name == "switchyard.http"]
    assert 1 <= len(lines) <= 22  # the budget of 20 per 10 s, and a count of what was dropped
    assert sum(len(rec.getMessage()) for rec in lines) < 5000
    assert _tracebacks(caplog) == []


def test_a_client_sending_wrong_keys_in_a_loop_cannot_flood_the_log(
    proxy: ProxyThread, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy import server

    monkeypatch.setattr(server, "_CLIENT_ERRORS", RateLimit(limit=50, window_s=10.0))
    with caplog.at_level(logging.INFO), httpx.Client() as client:
        for _ in range(200):
            assert client.get(proxy.url + "/health", headers={"x-api-key": "wrong"}).status_code == 401
    lines = [rec for rec in caplog.records if rec.name == "switchyard"]
    assert 1 <= len(lines) <= 52


def test_no_secret_from_a_malformed_header_reaches_the_log_or_the_answer(
    proxy: ProxyThread, caplog: pytest.LogCaptureFixture
) -> None:
    secret = b"sk-secret-in-a-broken-header"
    with caplog.at_level(logging.INFO):
        r = exchange(proxy.url, b"GET /health HTTP/1.1\r\nHost: x\r\nx-api-key: " + secret + b"\x00\r\n\r\n")
    assert r.status == 400
    assert secret not in r.body
    assert all(secret.decode() not in rec.getMessage() for rec in caplog.records)


def test_the_protocol_hooks_are_where_this_aiohttp_has_them() -> None:
    # Switchyard's HTTP layer overrides these aiohttp internals; a release that moves them must fail here.
    for name in ("handle_error", "finish_response", "log_exception", "_request_in_progress", "_messages"):
        assert hasattr(web_protocol.RequestHandler, name), name
    assert hasattr(web.AppRunner, "_make_server") and "__call__" in vars(web.Server)


def test_a_bug_in_a_handler_is_a_500_in_anthropic_json_with_a_bounded_traceback(
    proxy: ProxyThread, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy import server

    def broken(body: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(server, "estimate_request_tokens", broken)
    monkeypatch.setattr(server, "_UNEXPECTED", RateLimit(limit=5, window_s=60.0))
    with caplog.at_level(logging.INFO):
        for _ in range(20):
            r = httpx.post(proxy.url + "/v1/messages/count_tokens", headers=proxy.headers(), json=messages_body())
            assert r.status_code == 500 and r.json()["error"]["type"] == "api_error", r.text
            assert "RuntimeError" in r.json()["error"]["message"]
    assert 1 <= len([rec for rec in caplog.records if rec.exc_info]) <= 5  # a few tracebacks, not one each


# --- a client that goes away ---------------------------------------------------------------------

def _open_request(url: str, body: dict[str, object]) -> socket.socket:
    data = json.dumps(body).encode()
    s = socket.create_connection(host_port(url), timeout=10)
    s.sendall(request_bytes("POST", "/v1/messages",
                            {"x-api-key": ROUTER_KEY, "content-type": "application/json"}, data))
    return s


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_while_the_local_answer_is_held_costs_no_cloud_call(
    proxy: ProxyThread, local: OpenAILocal, upstream: AnthropicUpstream, stream: bool
) -> None:
    local.script(LocalStall(None))  # the local model never answers
    s = _open_request(proxy.url, messages_body(model="local", stream=stream))
    local.wait_for_requests(1, tag="chat")
    s.close()  # the client gives up while its answer is held
    [rec] = proxy.decisions(1, timeout=20)
    assert rec["status"] == 499 and "client went away" in rec["detail"], rec
    assert rec["fallback"] is None
    # The record is written when the handler ends: no fallback can come after it.
    assert upstream.requests_tagged("messages") == []


def test_a_client_that_leaves_during_cloud_retries_stops_them(
    proxy: ProxyThread, upstream: AnthropicUpstream
) -> None:
    upstream.script(StallReply(None))  # the cloud never answers the first attempt
    s = _open_request(proxy.url, messages_body(model="cloud"))
    upstream.wait_for_requests(1, tag="messages")
    s.close()
    [rec] = proxy.decisions(1, timeout=20)
    assert rec["status"] == 499 and "client went away" in rec["detail"], rec
    assert len(upstream.requests_tagged("messages")) == 1


def test_a_client_that_leaves_mid_stream_is_recorded_as_gone(
    proxy: ProxyThread, local: OpenAILocal, upstream: AnthropicUpstream
) -> None:
    local.script(ChunkReply(chat_chunks(text="a long answer " * 50, piece=4), delay=0.05))
    s = _open_request(proxy.url, messages_body(model="local", stream=True))
    head = b""
    while b"content_block_delta" not in head:  # headers and the first content are out
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200")
    s.close()
    [rec] = proxy.decisions(1, timeout=20)
    assert rec["status"] == 499 and "after 200 was sent" in rec["detail"], rec
    assert upstream.requests_tagged("messages") == []


async def test_a_shared_health_probe_survives_the_request_that_started_it() -> None:
    release = asyncio.Event()

    async def slow_models(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get("/v1/models", slow_models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    health = LocalHealth(LocalConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", health_timeout_s=10), 5.0)
    import aiohttp

    async with aiohttp.ClientSession() as session:
        first = asyncio.create_task(health.is_up(session))  # starts the probe
        await asyncio.sleep(0.05)
        second = asyncio.create_task(health.is_up(session))  # waits on the same probe
        await asyncio.sleep(0.05)
        first.cancel()  # its client went away
        release.set()
        assert await asyncio.wait_for(second, 10) is True
        assert health.checks == 1
        await health.close()
    await runner.cleanup()


# --- too many connections ------------------------------------------------------------------------

def _idle_connections(url: str, n: int) -> list[socket.socket]:
    return [socket.create_connection(host_port(url), timeout=10) for _ in range(n)]


def _closed_by_server(s: socket.socket, timeout: float = 5.0) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_over_the_cap_idle_connections_are_closed_first(tmp_path: Path, upstream: AnthropicUpstream) -> None:
    cfg = make_config(tmp_path, cloud_url=upstream.url, listen={"max_connections": 3})
    with ProxyThread(cfg) as p:
        idle = _idle_connections(p.url, 3)
        try:
            deadline = time.monotonic() + 10
            while p.state.connections.open < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            r = httpx.post(p.url + "/v1/messages", headers=p.headers(), json=messages_body(model="cloud"), timeout=30)
            assert r.status_code == 200
            assert _closed_by_server(idle[0])  # the oldest idle one made room
            assert p.state.connections.closed_idle >= 1 and p.state.connections.refused == 0
        finally:
            for s in idle:
                s.close()


def test_when_every_connection_is_busy_a_new_one_gets_503_json(
    tmp_path: Path, upstream: AnthropicUpstream
) -> None:
    cfg = make_config(tmp_path, cloud_url=upstream.url, listen={"max_connections": 2})
    upstream.script(StallReply(None), StallReply(None))
    with ProxyThread(cfg) as p:
        busy = [_open_request(p.url, messages_body(model="cloud")) for _ in range(2)]
        try:
            upstream.wait_for_requests(2, tag="messages")
            r = exchange(p.url, request_bytes("GET", "/health", {"x-api-key": ROUTER_KEY}))
            assert r.status == 503 and r.headers.get("retry-after") == "1"
            assert r.json()["error"]["message"].startswith("Switchyard has too many open connections")
            assert p.state.connections.refused == 1
        finally:
            for s in busy:
                s.close()


def test_many_clients_at_once_all_get_answers(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    upstream.default = text_reply("ok")
    codes: list[int] = []

    def one() -> None:
        r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud"),
                       timeout=60)
        codes.append(r.status_code)

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert codes == [200] * 40


def test_the_connection_cap_keeps_room_below_the_descriptor_limit() -> None:
    assert listener.connection_cap(1000, 524_288) == 1000
    assert listener.connection_cap(1000, 1024) == 1024 - listener.DESCRIPTOR_RESERVE
    assert listener.connection_cap(1000, 256) == 64  # too few for the pools: a quarter, and a warning
    assert listener.connection_cap(10, 1024) == 10
