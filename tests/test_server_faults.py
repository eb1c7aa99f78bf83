"""Hostile input on the server side: each answer is Anthropic JSON with the right status, never a 500.

Bad bytes in headers, bodies that lie about their encoding, nesting deeper than the JSON libraries
can take.  (Protocol garbage over raw sockets, disconnects and signals: tests/test_fault_suite.py.)
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config, messages_body
from tests.rawhttp import exchange, request_bytes
from tests.standins import AnthropicUpstream, OpenAILocal
from tests.standins.anthropic_upstream import text_reply


@pytest.fixture
def proxy(tmp_path: Path, local: OpenAILocal, upstream: AnthropicUpstream) -> Iterator[ProxyThread]:
    cfg = make_config(tmp_path, local_url=local.v1_url, cloud_url=upstream.url)
    with ProxyThread(cfg) as p:
        yield p


def anthropic_error(status: int, body: bytes, expected: int, kind: str) -> str:
    assert status == expected, body[:300]
    data = json.loads(body)
    assert data["type"] == "error" and data["error"]["type"] == kind, data
    message = data["error"]["message"]
    assert isinstance(message, str) and message and "\n" not in message
    return str(message)


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def body_with(placeholder_json: dict[str, object], depth: int) -> bytes:
    """``placeholder_json`` as JSON text with its "@@" string replaced by a ``depth``-deep list."""
    return json.dumps(placeholder_json).replace('"@@"', nested(depth)).encode()


# --- 1. bytes that are not UTF-8 in the key headers ---------------------------------------------

@pytest.mark.parametrize("path", ["/health", "/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize(
    "header", [b"x-api-key: \xff\xfe", b"Authorization: Bearer \xff" + ROUTER_KEY.encode(), b"x-api-key: caf\xe9"]
)
def test_a_key_that_is_not_utf8_is_a_401(proxy: ProxyThread, path: str, header: bytes) -> None:
    method = "GET" if path == "/health" else "POST"
    body = json.dumps(messages_body()).encode() if method == "POST" else b""
    name, _, value = header.partition(b": ")
    data = request_bytes(
        method, path, {name.decode(): value, "content-type": "application/json", "connection": "close"}, body
    )
    r = exchange(proxy.url, data)
    assert r.headers["content-type"].startswith("application/json")
    anthropic_error(r.status, r.body, 401, "authentication_error")
    assert httpx.get(proxy.url + "/health", headers=proxy.headers()).status_code == 200


def test_the_right_key_sent_as_utf8_still_works_and_a_non_utf8_forwarded_header_is_a_400(
    proxy: ProxyThread, upstream: AnthropicUpstream
) -> None:
    body = json.dumps(messages_body(model="cloud")).encode()
    headers: dict[str, str | bytes] = {
        "x-api-key": ROUTER_KEY,
        "content-type": "application/json",
        "anthropic-beta": b"tools-\xff",
        "connection": "close",
    }
    r = exchange(proxy.url, request_bytes("POST", "/v1/messages", headers, body))
    assert "anthropic-beta" in anthropic_error(r.status, r.body, 400, "invalid_request_error")
    assert upstream.requests_tagged("messages") == []


# --- 2. Content-Encoding --------------------------------------------------------------------------

def _post(proxy: ProxyThread, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(**headers), content=body, timeout=30)


def test_gzip_declared_on_a_plain_body_is_a_400_that_says_so(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    r = _post(proxy, json.dumps(messages_body(model="cloud")).encode(), **{"content-encoding": "gzip"})
    message = anthropic_error(r.status_code, r.content, 400, "invalid_request_error")
    assert "gzip" in message
    assert upstream.requests_tagged("messages") == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_really_compressed_body_is_accepted_and_forwarded_plain(
    proxy: ProxyThread, upstream: AnthropicUpstream, encoding: str
) -> None:
    upstream.script(text_reply("unzipped"))
    plain = json.dumps(messages_body(model="cloud")).encode()
    packed = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)
    r = _post(proxy, packed, **{"content-encoding": encoding})
    assert r.status_code == 200, r.text
    [sent] = upstream.requests_tagged("messages")
    assert sent.json["messages"] == messages_body()["messages"]
    assert "content-encoding" not in {k.lower() for k in sent.headers}


@pytest.mark.parametrize("encoding", ["compress", "gzip, gzip", "br", "zstd"])
def test_an_encoding_that_is_not_taken_is_a_415(proxy: ProxyThread, upstream: AnthropicUpstream, encoding: str) -> None:
    # br and zstd are refused by aiohttp as the headers arrive (without their modules), the rest by the app.
    r = _post(proxy, json.dumps(messages_body(model="cloud")).encode(), **{"content-encoding": encoding})
    message = anthropic_error(r.status_code, r.content, 415, "invalid_request_error")
    assert "not supported" in message and "plain, gzip or deflate" in message


def test_a_gzip_bomb_is_a_413(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, listen={"max_body_bytes": 100_000})
    with ProxyThread(cfg) as p:
        bomb = gzip.compress(b'{"model": "' + b"a" * 5_000_000 + b'"}')
        assert len(bomb) < 100_000
        r = _post(p, bomb, **{"content-encoding": "gzip"})
        anthropic_error(r.status_code, r.content, 413, "request_too_large")


# --- 3. deep nesting ------------------------------------------------------------------------------

def test_a_tool_schema_too_deep_for_the_local_server_falls_back_to_the_cloud(
    proxy: ProxyThread, local: OpenAILocal, upstream: AnthropicUpstream
) -> None:
    upstream.script(text_reply("answered by the cloud"))
    tool = {"name": "t", "description": "d", "input_schema": {"type": "object", "properties": {"p": "@@"}}}
    body = body_with(messages_body(model="local", tools=[tool]), 300)
    r = _post(proxy, body)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "answered by the cloud"
    assert local.requests_tagged("chat") == []
    [rec] = proxy.decisions()
    assert rec["fallback"] == "translation-error" and "JSON" in rec["detail"]


@pytest.mark.parametrize("where", ["tool_input", "schema", "metadata"])
@pytest.mark.parametrize("endpoint", ["/v1/messages", "/v1/messages/count_tokens"])
def test_nesting_near_the_parse_limit_is_answered(proxy: ProxyThread, upstream: AnthropicUpstream,
                                                 where: str, endpoint: str) -> None:
    upstream.script(text_reply("ok"))
    base = messages_body(model="cloud")
    placed: dict[str, object]
    if where == "tool_input":
        call = {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {"a": "@@"}}
        result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}
        placed = {**base, "messages": [*base["messages"], {"role": "assistant", "content": [call]},
                                       {"role": "user", "content": [result]}]}
    elif where == "schema":
        placed = {**base, "tools": [{"name": "t", "input_schema": {"type": "object", "properties": {"p": "@@"}}}]}
    else:
        placed = {**base, "metadata": {"x": "@@"}}
    r = httpx.post(proxy.url + endpoint, headers=proxy.headers(), content=body_with(placed, 1015), timeout=30)
    assert r.status_code == 200, r.text
    if endpoint.endswith("count_tokens"):
        assert r.json()["input_tokens"] > 0


def test_nesting_beyond_the_parse_limit_is_a_400_that_says_why(proxy: ProxyThread) -> None:
    body = body_with({**messages_body(), "metadata": {"x": "@@"}}, 1100)
    for endpoint in ("/v1/messages", "/v1/messages/count_tokens"):
        r = httpx.post(proxy.url + endpoint, headers=proxy.headers(), content=body, timeout=30)
        assert "nested more than 1024 levels" in anthropic_error(r.status_code, r.content, 400, "invalid_request_error")


def test_a_deep_body_is_re_encoded_for_the_cloud_with_the_routed_model(
    proxy: ProxyThread, upstream: AnthropicUpstream
) -> None:
    # Every cloud body is re-encoded (one model key, the router's); 1,015 levels is past orjson's
    # writer (254), so the stdlib encoder takes it, with room for every level the parser took.
    upstream.script(text_reply("ok"))
    body = json.dumps({"max_tokens": 5, "metadata": {"x": "@@"}, "model": "cloud",
                       "messages": [{"role": "user", "content": "x"}]}).replace('"@@"', nested(1015))
    r = _post(proxy, body.encode())
    assert r.status_code == 200, r.text
    [sent] = upstream.requests_tagged("messages")
    assert sent.body.count(b'"model"') == 1 and b'"model":"cloud-complex"' in sent.body
    [rec] = proxy.decisions()
    assert rec["status"] == 200


def test_a_user_id_holding_deep_json_is_just_a_string(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    upstream.script(text_reply("ok"))
    deep_text = "[" * 50_000 + "]" * 50_000
    r = _post(proxy, json.dumps(messages_body(model="cloud", metadata={"user_id": deep_text})).encode())
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("stream", [True, False])
def test_local_tool_arguments_nested_too_deeply_fall_back_to_the_cloud(
    proxy: ProxyThread, local: OpenAILocal, upstream: AnthropicUpstream, stream: bool
) -> None:
    from tests.standins.openai_local import chat_chunks

    upstream.script(text_reply("from the cloud"))
    local.script(chat_chunks(tool_calls=[("t", '{"a": ' + nested(990) + "}")]))
    tool = {"name": "t", "description": "d", "input_schema": {"type": "object"}}
    r = _post(proxy, json.dumps(messages_body(model="local", tools=[tool], stream=stream)).encode())
    assert r.status_code == 200, r.text
    assert r.headers["x-switchyard-route"] == "cloud"
    [rec] = proxy.decisions()
    assert rec["route"] == "cloud" and rec["fallback"] in ("invalid-tool-call", "malformed-response"), rec
