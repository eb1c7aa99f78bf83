"""The local path through the whole proxy: replayed server streams, fallback before content,
honest failure after it, and the retry that goes to the cloud."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config
from tests.standins import AnthropicUpstream, OpenAILocal
from tests.standins.anthropic_upstream import text_reply
from tests.standins.openai_local import ChunkReply, GarbageReply, HTTPErrorReply, StallReply, chat_chunks
from tests.standins.sse import anthropic_grammar_errors, parse_sse
from tests.streams import TOOLS, Case, all_cases

TOOL_DEFS = [
    {"name": n, "description": f"the {n} tool", "input_schema": {"type": "object", "properties": {}}}
    for n in sorted(TOOLS)
]


@pytest.fixture
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(default=text_reply("cloud says hi")) as srv:
        yield srv


@pytest.fixture
def proxy(tmp_path: Path, local: OpenAILocal, upstream: AnthropicUpstream) -> Iterator[ProxyThread]:
    cfg = make_config(
        tmp_path,
        local_url=local.v1_url,
        cloud_url=upstream.url,
        local={"first_token_timeout_s": 1.0, "read_timeout_s": 1.0},
    )
    with ProxyThread(cfg) as p:
        yield p


def body(
    text: str = "fix the typo", *, stream: bool = True, model: str = "local", session: str | None = None
) -> dict[str, Any]:
    b: dict[str, Any] = {
        "model": model,
        "max_tokens": 64000,
        "stream": stream,
        "tools": TOOL_DEFS,
        "messages": [{"role": "user", "content": text}],
    }
    if session:
        b["metadata"] = {"user_id": f'{{"session_id": "{session}"}}'}
    return b


def sdk_final(proxy: ProxyThread, b: dict[str, Any]) -> Any:
    client = anthropic.Anthropic(base_url=proxy.url, api_key=ROUTER_KEY, max_retries=0, timeout=30)
    kwargs = {k: v for k, v in b.items() if k != "stream"}
    with client.messages.stream(**kwargs) as s:
        return s.get_final_message()


def normalise(content: list[Any]) -> list[dict[str, Any]]:
    out = []
    for block in content:
        d = block.model_dump() if hasattr(block, "model_dump") else dict(block)
        if d["type"] == "text":
            out.append({"type": "text", "text": d["text"]})
        else:
            out.append({"type": "tool_use", "name": d["name"], "input": d["input"]})
    return out


def expected(case: Case) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": b["text"]}
        if b["type"] == "text"
        else {"type": "tool_use", "name": b["name"], "input": b["input"]}
        for b in case.content
    ]


OK_CASES = [c for c in all_cases() if c.ok]
FAULT_CASES = [c for c in all_cases() if not c.ok and not c.content_before_error]


@pytest.mark.parametrize("case", OK_CASES, ids=lambda c: f"{c.server}-{c.name}")
def test_replayed_server_streams_reach_the_sdk_intact(proxy: ProxyThread, local: OpenAILocal, case: Case) -> None:
    local.script(ChunkReply(case.chunks, done=case.done))
    final = sdk_final(proxy, body())
    assert normalise(final.content) == expected(case)
    assert final.stop_reason == case.stop_reason
    got_ids = [b.id for b in final.content if b.type == "tool_use"]
    want_ids = [b["id"] for b in case.content if b["type"] == "tool_use"]
    for got, want in zip(got_ids, want_ids, strict=True):
        assert got == want if want else got.startswith("toolu_")
    [rec] = proxy.decisions()
    assert (rec["route"], rec["fallback"], rec["status"]) == ("local", None, 200)


@pytest.mark.parametrize("case", FAULT_CASES, ids=lambda c: f"{c.server}-{c.name}")
def test_stream_faults_before_content_fall_back_to_the_cloud(
    proxy: ProxyThread, local: OpenAILocal, upstream: AnthropicUpstream, case: Case
) -> None:
    local.script(ChunkReply(case.chunks, done=case.done))
    final = sdk_final(proxy, body())
    assert normalise(final.content) == [{"type": "text", "text": "cloud says hi"}]
    [rec] = proxy.decisions()
    assert (rec["route"], rec["fallback"], rec["model"]) == ("cloud", case.error, "cloud-simple")
    assert upstream.requests_tagged("messages")[0].json["model"] == "cloud-simple"


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        (HTTPErrorReply(500), "http-500"),
        (GarbageReply(b"\x00\xffthis is not SSE\n\n"), "malformed-stream"),
        (StallReply(None), "first-token-timeout"),
        (ChunkReply(chat_chunks(text="never arrives"), stall_after=1, stall_seconds=None), "first-token-timeout"),
        (ChunkReply(chat_chunks(text=None, tool_calls=[("Write", '{"file_path": "a"}')]), drop_after=2), "dropped"),
        (ChunkReply(chat_chunks(text=None, tool_calls=[("Nope", "{}")])), "unknown-tool"),
        (ChunkReply(chat_chunks(text=None, tool_calls=[("Write", '{"file_path": ')])), "invalid-tool-call"),
        (ChunkReply(chat_chunks(text=None, reasoning="hmm " * 10)), "reasoning-only"),
    ],
    ids=["500", "garbage", "no-response", "stall-after-role", "drop", "unknown-tool", "broken-json", "reasoning"],
)
def test_local_faults_fall_back_transparently(proxy: ProxyThread, local: OpenAILocal, reply: Any, cause: str) -> None:
    local.script(reply)
    final = sdk_final(proxy, body())
    assert final.content[0].type == "text" and final.content[0].text == "cloud says hi"
    [rec] = proxy.decisions()
    assert (rec["route"], rec["fallback"]) == ("cloud", cause)


def test_connection_refused_falls_back(tmp_path: Path, upstream: AnthropicUpstream) -> None:
    cfg = make_config(tmp_path, local_url="http://127.0.0.1:9/v1", cloud_url=upstream.url)
    with ProxyThread(cfg) as p:
        final = sdk_final(p, body())
        [rec] = p.decisions()
    assert final.content[0].type == "text" and final.content[0].text == "cloud says hi"
    assert (rec["route"], rec["fallback"]) == ("cloud", "connect-error")


def test_failure_after_content_ends_with_error_event_and_retry_goes_to_cloud(
    proxy: ProxyThread, local: OpenAILocal, upstream: AnthropicUpstream
) -> None:
    # Longer than the text-tool-call hold (64 characters): the first part reaches the client.
    chunks = chat_chunks(text="Here is the first part of a long answer. " * 3, piece=8)
    local.script(ChunkReply(chunks, drop_after=12))
    b = body("explain the module", model="claude-sonnet-4-5", session="s-42")
    local.script_classifier("SIMPLE")
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=b, timeout=30)
    events = parse_sse(r.content)
    assert events[-1].event == "error"
    assert [e.event for e in events].count("message_stop") == 0
    assert anthropic_grammar_errors(events, allow_error=True) == []
    assert b"Here is " in r.content
    # Claude Code retries the same turn: it must not loop on the local model.
    r2 = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=b, timeout=30)
    assert r2.status_code == 200 and b"message_stop" in r2.content
    recs = proxy.decisions(2)
    assert recs[0]["route"] == "local" and "local stream broke after content" in recs[0]["detail"]
    assert (recs[1]["route"], recs[1]["reason"]) == ("cloud", "retry-to-cloud")
    assert len(local.requests_tagged("chat")) == 1


def test_non_streaming_local_and_fallback(proxy: ProxyThread, local: OpenAILocal) -> None:
    local.script(ChunkReply(chat_chunks(text="plain local answer")))
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=body(stream=False), timeout=30)
    msg = r.json()
    assert msg["type"] == "message" and msg["content"] == [{"type": "text", "text": "plain local answer"}]
    assert msg["stop_reason"] == "end_turn" and msg["usage"]["output_tokens"] == 10
    local.script(HTTPErrorReply(503))
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=body(stream=False), timeout=30)
    assert r.json()["content"][0]["text"] == "cloud says hi"
    recs = proxy.decisions(2)
    assert [(x["route"], x["fallback"]) for x in recs] == [("local", None), ("cloud", "http-503")]


def test_outgoing_local_request_is_allow_listed(proxy: ProxyThread, local: OpenAILocal) -> None:
    b = body()
    b.update(
        {"thinking": {"type": "adaptive"}, "context_management": {"edits": []}, "output_config": {"effort": "high"}}
    )
    local.script(ChunkReply(chat_chunks(text="ok")))
    httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=b, timeout=30)
    sent = local.requests_tagged("chat")[0].json
    assert not {"thinking", "reasoning", "enable_thinking", "context_management", "output_config", "metadata"} & set(
        sent
    )
    assert sent["model"] == "local-model" and sent["max_tokens"] == 4096 and sent["stream"] is True
