"""The HTTP surface: probes, auth, bad input, count_tokens, routing glue and the decision log."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config, messages_body
from tests.standins import AnthropicUpstream, OpenAILocal
from tests.standins.anthropic_upstream import text_reply


@pytest.fixture
def proxy(tmp_path: Path, local: OpenAILocal, upstream: AnthropicUpstream) -> Iterator[ProxyThread]:
    cfg = make_config(tmp_path, local_url=local.v1_url, cloud_url=upstream.url, listen={"max_body_bytes": 200_000})
    with ProxyThread(cfg) as p:
        yield p


def anthropic_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    data = r.json()
    assert data["type"] == "error" and data["error"]["type"] == kind
    assert isinstance(data["error"]["message"], str) and data["error"]["message"]
    return str(data["error"]["message"])


def test_root_answers_head_and_get_without_a_key(proxy: ProxyThread) -> None:
    assert httpx.head(proxy.url + "/").status_code == 200
    assert httpx.get(proxy.url + "/").status_code == 200


def test_health_reports_version_local_state_and_uptime(proxy: ProxyThread, local: OpenAILocal) -> None:
    data = httpx.get(proxy.url + "/health", headers=proxy.headers()).json()
    assert data["status"] == "ok" and data["local_up"] is True
    assert data["version"] and data["uptime_s"] >= 0
    local.stop()
    proxy.state.health.forget()
    assert httpx.get(proxy.url + "/health", headers=proxy.headers()).json()["local_up"] is False


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "wrong"}, {"authorization": "Bearer wrong"}, {"authorization": ROUTER_KEY}, {"x-api-key": ""}],
)
def test_wrong_or_missing_key_is_401(proxy: ProxyThread, headers: dict[str, str]) -> None:
    for path in ("/health", "/v1/messages", "/v1/messages/count_tokens"):
        r = httpx.post(proxy.url + path, headers=headers, json=messages_body())
        if path == "/health":
            r = httpx.get(proxy.url + path, headers=headers)
            if not _presents_a_key(headers):
                continue  # liveness without a key: test_health_without_a_key_is_liveness_only
        anthropic_error(r, 401, "authentication_error")


def _presents_a_key(headers: dict[str, str]) -> bool:
    auth = headers.get("authorization", "")
    return bool(headers.get("x-api-key") or (auth.lower().startswith("bearer ") and auth[7:].strip()))


@pytest.mark.parametrize("headers", [{}, {"x-api-key": ""}, {"authorization": ROUTER_KEY}])
def test_health_without_a_key_is_liveness_only(proxy: ProxyThread, headers: dict[str, str]) -> None:
    # Service managers, containers and users' guides probe /health without a key.
    r = httpx.get(proxy.url + "/health", headers=headers)
    assert r.status_code == 200
    data = r.json()
    assert data["status"] == "ok" and data["version"]
    assert set(data) == {"status", "version", "detail"}  # nothing about the local server, the log or the PID
    full = httpx.get(proxy.url + "/health", headers=proxy.headers()).json()
    assert {"local_up", "local", "pid", "decisions"} <= set(full)


def test_bearer_token_is_accepted(proxy: ProxyThread) -> None:
    r = httpx.get(proxy.url + "/health", headers={"authorization": f"Bearer {ROUTER_KEY}"})
    assert r.status_code == 200


def test_unknown_path_and_method(proxy: ProxyThread) -> None:
    assert "GET /v1/nope" in anthropic_error(
        httpx.get(proxy.url + "/v1/nope", headers=proxy.headers()), 404, "not_found_error"
    )
    anthropic_error(httpx.get(proxy.url + "/v1/messages", headers=proxy.headers()), 405, "invalid_request_error")


@pytest.mark.parametrize(
    ("content", "ctype", "status", "needle"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[]", "application/json", 400, "JSON object"),
        (json.dumps(messages_body()).encode(), "text/plain", 415, "content-type must be application/json"),
        (json.dumps({"max_tokens": 5, "messages": []}).encode(), "application/json", 400, "model"),
        (json.dumps({"model": "m", "max_tokens": 5}).encode(), "application/json", 400, "messages"),
        (
            json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode(),
            "application/json",
            400,
            "max_tokens",
        ),
        (json.dumps({**messages_body(), "max_tokens": "9"}).encode(), "application/json", 400, "max_tokens"),
        (json.dumps({**messages_body(), "stream": "yes"}).encode(), "application/json", 400, "stream"),
        (
            json.dumps({**messages_body(), "messages": [{"role": "bot", "content": "x"}]}).encode(),
            "application/json",
            400,
            "messages.0.role",
        ),
        (
            json.dumps({**messages_body(), "messages": [{"role": "user", "content": 5}]}).encode(),
            "application/json",
            400,
            "messages.0.content",
        ),
        (json.dumps({**messages_body(), "tools": [{"description": "x"}]}).encode(), "application/json", 400, "tools.0"),
        (b'{"model": "m", "pad": "' + b"x" * 300_000 + b'"}', "application/json", 413, "limit"),
        (b"\xff\xfe\x00garbage", "application/json", 400, "not valid JSON"),
    ],
)
def test_bad_input_gets_anthropic_4xx_and_the_server_survives(
    proxy: ProxyThread, upstream: AnthropicUpstream, content: bytes, ctype: str, status: int, needle: str
) -> None:
    headers = {"x-api-key": ROUTER_KEY, "content-type": ctype}
    r = httpx.post(proxy.url + "/v1/messages", headers=headers, content=content)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]
    assert upstream.requests_tagged("messages") == []
    assert httpx.get(proxy.url + "/health", headers=proxy.headers()).status_code == 200


def test_count_tokens_is_local_and_fast_path(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello " * 400}]}
    r = httpx.post(proxy.url + "/v1/messages/count_tokens?beta=true", headers=proxy.headers(), json=body)
    assert r.status_code == 200
    assert 300 < r.json()["input_tokens"] < 900
    assert upstream.requests == []


def test_explicit_cloud_is_forwarded_with_query_string_ignored(
    proxy: ProxyThread, upstream: AnthropicUpstream, local: OpenAILocal
) -> None:
    upstream.script(text_reply("from the cloud"))
    r = httpx.post(proxy.url + "/v1/messages?beta=true", headers=proxy.headers(), json=messages_body(model="cloud"))
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "from the cloud"
    sent = upstream.requests_tagged("messages")[0]
    assert sent.json["model"] == "cloud-complex"
    assert local.requests_tagged("classify") == []
    [rec] = proxy.decisions()
    assert (rec["route"], rec["reason"], rec["model"], rec["status"]) == ("cloud", "explicit", "cloud-complex", 200)


def test_classification_happens_once_per_user_turn(
    proxy: ProxyThread, local: OpenAILocal, upstream: AnthropicUpstream
) -> None:
    local.script_classifier("Needs a design.\nCOMPLEX")
    headers = proxy.headers(**{"X-Claude-Code-Session-Id": "sess-1"})
    first = messages_body("design a plugin system")
    assert httpx.post(proxy.url + "/v1/messages", headers=headers, json=first).status_code == 200
    cont = dict(first)
    cont["messages"] = [
        *first["messages"],
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"p": "a"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]},
    ]
    assert httpx.post(proxy.url + "/v1/messages", headers=headers, json=cont).status_code == 200
    assert len(local.requests_tagged("classify")) == 1
    recs = proxy.decisions(2)
    assert [(r["reason"], r["verdict"], r["route"]) for r in recs] == [
        ("classified", "COMPLEX", "cloud"),
        ("cached", "COMPLEX", "cloud"),
    ]
    assert recs[0]["classify_ms"] is not None and recs[1]["classify_ms"] is None
    assert recs[0]["session"] == "sess-1" and recs[0]["local_up"] is True


def test_classifier_failure_is_recorded_with_its_cause(proxy: ProxyThread, local: OpenAILocal) -> None:
    local.script_classifier("I cannot decide.")
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body("do a thing"))
    assert r.status_code == 200
    [rec] = proxy.decisions()
    assert (rec["route"], rec["reason"], rec["detail"]) == ("cloud", "classify-empty", "reply of 16 characters")


def test_simple_verdict_routes_local(proxy: ProxyThread, local: OpenAILocal) -> None:
    local.script_classifier("SIMPLE")
    httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body("fix a typo"))
    [rec] = proxy.decisions()
    assert (rec["route"], rec["reason"], rec["verdict"], rec["model"]) == (
        "local",
        "classified",
        "SIMPLE",
        "local-model",
    )


def test_a_burst_pays_for_one_health_check(proxy: ProxyThread, local: OpenAILocal) -> None:
    local.default_verdict = "COMPLEX"
    body = messages_body("explain", model="claude-haiku-4-5")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: (
                    httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=body, timeout=30).status_code
                ),
                range(8),
            )
        )
    assert len(codes) == 8
    assert proxy.state.health.checks == 1
    # One GET /v1/models for the health check; the capability probe at start made the other
    # requests, and none was repeated for the burst (the start-up probe is still fresh).
    assert proxy.state.health.capability_probes == 1
    assert [r.path for r in local.requests_tagged("")].count("/v1/models") == 2


def test_local_down_goes_to_cloud_and_is_logged(
    proxy: ProxyThread, local: OpenAILocal, upstream: AnthropicUpstream
) -> None:
    local.stop()
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body("hello"))
    assert r.status_code == 200
    [rec] = proxy.decisions()
    assert (rec["route"], rec["reason"], rec["local_up"]) == ("cloud", "local-down", False)


def test_decision_record_fields_and_no_prompt_text(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    secret_words = "my-private-prompt-words"
    httpx.post(
        proxy.url + "/v1/messages",
        headers=proxy.headers(),
        json=messages_body(secret_words, model="cloud", stream=True),
    )
    proxy.decisions(1)
    text = Path(proxy.cfg.log.decisions).read_text()
    assert secret_words not in text and ROUTER_KEY not in text
    rec = json.loads(text.splitlines()[0])
    assert list(rec) == [
        "ts",
        "id",
        "session",
        "route",
        "model",
        "reason",
        "verdict",
        "local_up",
        "classify_ms",
        "status",
        "ttft_ms",
        "total_ms",
        "fallback",
        "input_tokens",
        "output_tokens",
        "detail",
        "stream",
        "cached_tokens",
        "prefill_ms",
        "prompt_hash",
        "turn",
        "project",
        "project_name",
        "repaired",
    ]
    assert rec["ts"].endswith("Z") and rec["id"].startswith("req_")
    assert rec["stream"] is True and rec["input_tokens"] == 25 and rec["output_tokens"] == 12
    assert rec["ttft_ms"] is not None and rec["total_ms"] >= rec["ttft_ms"]


def test_health_counts_requests_and_decision_records(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud"))
    proxy.decisions(1)
    data = httpx.get(proxy.url + "/health", headers=proxy.headers()).json()
    assert data["requests"] == 1
    assert data["decisions"] == {
        "path": proxy.cfg.log.decisions,
        "written": 1,
        "failed": 0,
        "ok": True,
        "last_error": None,
        "last_failure": None,
    }


def test_unwritable_decision_log_is_reported_not_fatal(tmp_path: Path, upstream: AnthropicUpstream) -> None:
    (tmp_path / "decisions.jsonl").mkdir()  # a directory where the log file should be
    cfg = make_config(tmp_path, cloud_url=upstream.url)
    with ProxyThread(cfg) as p:
        r = httpx.post(p.url + "/v1/messages", headers=p.headers(), json=messages_body(model="cloud"))
        assert r.status_code == 200  # the request is answered all the same
        d = httpx.get(p.url + "/health", headers=p.headers()).json()["decisions"]
    assert d["written"] == 0 and d["failed"] >= 2  # at start, then for the request
    assert "Is a directory" in d["last_error"]


def test_a_body_that_stops_half_way_gets_408_and_the_server_carries_on(tmp_path: Path) -> None:
    import socket

    cfg = make_config(tmp_path, listen={"body_read_timeout_s": 0.3})
    with ProxyThread(cfg) as p:
        host, port = p.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(
                b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                + f"x-api-key: {ROUTER_KEY}\r\ncontent-length: 1000\r\n\r\n".encode()
                + b'{"model": "m", '
            )
            reply = s.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408")
        assert b'"timeout_error"' in reply and b"did not arrive in time" in reply
        assert httpx.get(p.url + "/health", headers=p.headers()).status_code == 200
