"""Unusable local answers and the Anthropic local dialect, through the whole proxy.

Stand-ins replay every text-tool-call shape on both dialects, split into deltas of three characters
(so inside every tag and every JSON string); the official SDK is the client.  Unusable answers fall
back to the cloud before the first byte with their own cause; the server's own Anthropic stream is
grammar-checked, and a broken one never reaches the client as-is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from proxy.config import ConfigError, LocalConfig, config_from_dict, local_dialect
from proxy.native_request import to_native_request
from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config
from tests.standins import AnthropicUpstream, OpenAILocal
from tests.standins.anthropic_upstream import (
    RawReply,
    Reply,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    stream_events,
    text_reply,
)
from tests.standins.base import sse_event
from tests.standins.native_local import NativeLocal
from tests.standins.openai_local import ChunkReply, chat_chunks
from tests.standins.sse import anthropic_grammar_errors, parse_sse
from tests.test_text_tool_calls import SCHEMAS, SHAPES

TOOL_DEFS = [{"name": n, "description": f"the {n} tool", "input_schema": s} for n, s in SCHEMAS.items()]


@pytest.fixture
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(default=text_reply("cloud says hi")) as srv:
        yield srv


@pytest.fixture
def native() -> Iterator[NativeLocal]:
    with NativeLocal(default=text_reply("native local says hi")) as srv:
        yield srv


def _proxy(tmp: Path, local_url: str, cloud_url: str, api: str) -> ProxyThread:
    tmp = tmp / api  # one log per proxy: a test may run both dialects
    tmp.mkdir()
    cfg = make_config(tmp, local_url=local_url, cloud_url=cloud_url, local={"api": api, "first_token_timeout_s": 2.0})
    return ProxyThread(cfg)


@pytest.fixture
def oproxy(tmp_path: Path, local: OpenAILocal, upstream: AnthropicUpstream) -> Iterator[ProxyThread]:
    with _proxy(tmp_path, local.v1_url, upstream.url, "openai") as p:
        yield p


@pytest.fixture
def nproxy(tmp_path: Path, native: NativeLocal, upstream: AnthropicUpstream) -> Iterator[ProxyThread]:
    with _proxy(tmp_path, native.v1_url, upstream.url, "anthropic") as p:
        yield p


def body(*, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "model": "local",
        "max_tokens": 64000,
        "stream": stream,
        "tools": TOOL_DEFS,
        "messages": [{"role": "user", "content": "what is the weather in Paris?"}],
        **extra,
    }


def sdk_final(proxy: ProxyThread, b: dict[str, Any]) -> anthropic.types.Message:
    client = anthropic.Anthropic(base_url=proxy.url, api_key=ROUTER_KEY, max_retries=0, timeout=30)
    kwargs = {k: v for k, v in b.items() if k != "stream"}
    with client.messages.stream(**kwargs) as s:
        for _ in s:
            pass
        return s.get_final_message()


def blocks(msg: anthropic.types.Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for b in msg.content:
        d = b.model_dump()
        out.append(
            {"type": "text", "text": d["text"].strip()}
            if b.type == "text"
            else {k: d[k] for k in ("type", "name", "input")}
        )
    return out


def want_blocks(before: str, calls: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"type": "text", "text": before.strip()}] if before.strip() else []
    return out + [{"type": "tool_use", "name": c.name, "input": c.arguments} for c in calls]


def text_chunks(text: str, finish: str = "stop") -> ChunkReply:
    return ChunkReply(chat_chunks(text=text, piece=3, finish_reason=finish))


# --- text tool calls on both dialects ------------------------------------------------------------


@pytest.mark.parametrize(("name", "text", "shape", "before", "calls"), SHAPES, ids=[s[0] for s in SHAPES])
def test_text_tool_call_is_repaired_on_the_openai_dialect(
    oproxy: ProxyThread, local: OpenAILocal, name: str, text: str, shape: str, before: str, calls: Any
) -> None:
    local.script(text_chunks(text))
    msg = sdk_final(oproxy, body())
    assert blocks(msg) == want_blocks(before, calls)
    assert msg.stop_reason == "tool_use"
    [rec] = oproxy.decisions()
    assert (rec["route"], rec["fallback"], rec["repaired"]) == ("local", None, shape)


@pytest.mark.parametrize(("name", "text", "shape", "before", "calls"), SHAPES, ids=[s[0] for s in SHAPES])
def test_text_tool_call_is_repaired_on_the_anthropic_dialect(
    nproxy: ProxyThread, native: NativeLocal, name: str, text: str, shape: str, before: str, calls: Any
) -> None:
    native.script(text_reply(text, chunk_chars=3))
    msg = sdk_final(nproxy, body())
    assert blocks(msg) == want_blocks(before, calls)
    assert msg.stop_reason == "tool_use"
    [rec] = nproxy.decisions()
    assert (rec["route"], rec["fallback"], rec["repaired"]) == ("local", None, shape)
    assert native.requests_tagged("messages")


def test_non_streaming_answers_are_repaired_too(
    oproxy: ProxyThread, local: OpenAILocal, nproxy: ProxyThread, native: NativeLocal
) -> None:
    text = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    local.script(text_chunks(text))
    native.script(text_reply(text))
    for proxy in (oproxy, nproxy):
        r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=body(stream=False), timeout=30)
        msg = r.json()
        assert r.status_code == 200, msg
        assert [(b["type"], b.get("input")) for b in msg["content"]] == [("tool_use", {"city": "Paris"})]
        assert msg["stop_reason"] == "tool_use"
        [rec] = proxy.decisions()
        assert rec["repaired"] == "tool_call_tag"


PROSE_WITH_JSON = 'Use this:\n```json\n{"name": "Alice", "arguments": {"age": 3}}\n```\nand {"name": "Bob"}.'


def test_prose_with_json_reaches_the_client_unchanged_on_both_dialects(
    oproxy: ProxyThread, local: OpenAILocal, nproxy: ProxyThread, native: NativeLocal
) -> None:
    local.script(text_chunks(PROSE_WITH_JSON))
    native.script(text_reply(PROSE_WITH_JSON, chunk_chars=3))
    for proxy in (oproxy, nproxy):
        msg = sdk_final(proxy, body())
        assert [(b.type, getattr(b, "text", None)) for b in msg.content] == [("text", PROSE_WITH_JSON)]
        assert msg.stop_reason == "end_turn"
        [rec] = proxy.decisions()
        assert (rec["route"], rec["repaired"]) == ("local", None)


INVALID = '{"name": "Delete", "arguments": {"path": "/"}}'


def test_unusable_text_tool_call_falls_back_before_the_first_byte(
    oproxy: ProxyThread, local: OpenAILocal, nproxy: ProxyThread, native: NativeLocal
) -> None:
    local.script(text_chunks(INVALID))
    native.script(text_reply(INVALID, chunk_chars=3))
    for proxy in (oproxy, nproxy):
        msg = sdk_final(proxy, body())
        assert [(b.type, getattr(b, "text", None)) for b in msg.content] == [("text", "cloud says hi")]
        [rec] = proxy.decisions()
        assert (rec["route"], rec["fallback"]) == ("cloud", "text-tool-call-invalid")
        assert "Delete" in rec["detail"] and rec["repaired"] is None


def test_an_unusable_call_after_released_prose_ends_the_stream_with_an_error(
    oproxy: ProxyThread, local: OpenAILocal
) -> None:
    prose = "Here is a plain opening sentence that is longer than the hold window, so it is sent. "
    # A tag is a call wherever it is (a bare JSON object after prose naming no tool is an example: text).
    local.script(text_chunks(prose + f"<tool_call>{INVALID}</tool_call>"))
    b = body(model="claude-sonnet-4-5", metadata={"user_id": json.dumps({"session_id": "s-late"})})
    local.script_classifier("SIMPLE")
    r = httpx.post(oproxy.url + "/v1/messages", headers=oproxy.headers(), json=b, timeout=30)
    got = parse_sse(r.content)
    assert got[-1].event == "error" and anthropic_grammar_errors(got, allow_error=True) == []
    sent = "".join(e.json()["delta"]["text"] for e in got if e.event == "content_block_delta")
    assert sent.strip() == prose.strip()  # the prose was sent; the raw call never was
    r2 = httpx.post(oproxy.url + "/v1/messages", headers=oproxy.headers(), json=b, timeout=30)
    assert r2.status_code == 200
    recs = oproxy.decisions(2)
    assert "text-tool-call-invalid" in recs[0]["detail"]
    assert (recs[1]["route"], recs[1]["reason"]) == ("cloud", "retry-to-cloud")


def test_a_valid_call_after_released_prose_is_still_repaired(oproxy: ProxyThread, local: OpenAILocal) -> None:
    prose = "Here is a plain opening sentence that is longer than the hold window, so it is sent.\n"
    call = '<function=get_weather>{"city": "Paris"}</function>'
    local.script(text_chunks(prose + call))
    msg = sdk_final(oproxy, body())
    assert blocks(msg) == [
        {"type": "text", "text": prose.strip()},
        {"type": "tool_use", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    [rec] = oproxy.decisions()
    assert (rec["route"], rec["repaired"]) == ("local", "function_tag")


# --- other unusable answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "cause"),
    [
        (chat_chunks(text="  \n\n  "), "empty-answer"),
        (chat_chunks(text=None, reasoning="thinking it over " * 4), "reasoning-only"),
        (chat_chunks(text="<think>all of it in tags</think>"), "reasoning-only"),
        (chat_chunks(text=None, reasoning="long thoughts", finish_reason="length"), "length-before-content"),
        (chat_chunks(text="I will call it now.", finish_reason="tool_calls"), "tool-finish-without-call"),
    ],
    ids=["whitespace", "reasoning", "think-tags", "length", "tool-finish"],
)
def test_other_unusable_openai_answers_fall_back_with_their_cause(
    oproxy: ProxyThread, local: OpenAILocal, chunks: list[dict[str, Any]], cause: str
) -> None:
    local.script(ChunkReply(chunks))
    msg = sdk_final(oproxy, body())
    assert msg.content[0].type == "text" and msg.content[0].text == "cloud says hi"
    [rec] = oproxy.decisions()
    assert (rec["route"], rec["fallback"]) == ("cloud", cause)


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        (text_reply(" \n "), "empty-answer"),
        (Reply(content=(ThinkingBlock("I am thinking"),)), "reasoning-only"),
        (Reply(content=(ThinkingBlock("cut"),), stop_reason="max_tokens"), "length-before-content"),
        (text_reply("I will call it now.", stop_reason="tool_use"), "tool-finish-without-call"),
        (Reply(content=(ToolUseBlock("Delete", {}),)), "unknown-tool"),
    ],
    ids=["whitespace", "thinking-only", "length", "tool-finish", "unknown-tool"],
)
def test_other_unusable_native_answers_fall_back_with_their_cause(
    nproxy: ProxyThread, native: NativeLocal, reply: Reply, cause: str
) -> None:
    native.script(reply)
    msg = sdk_final(nproxy, body())
    assert msg.content[0].type == "text" and msg.content[0].text == "cloud says hi"
    [rec] = nproxy.decisions()
    assert (rec["route"], rec["fallback"]) == ("cloud", cause)


# --- the native stream's grammar -----------------------------------------------------------------


def _frames(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(sse_event(name, data) for name, data in events)


_START = (
    "message_start",
    {
        "type": "message_start",
        "message": {"id": "m", "type": "message", "role": "assistant", "content": [], "usage": {"input_tokens": 3}},
    },
)


def _text_start(i: int) -> tuple[str, dict[str, Any]]:
    return ("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "text"}})


def _text_delta(i: int, text: str) -> tuple[str, dict[str, Any]]:
    return (
        "content_block_delta",
        {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": text}},
    )


def _stop(i: int) -> tuple[str, dict[str, Any]]:
    return ("content_block_stop", {"type": "content_block_stop", "index": i})


def _end(reason: str | None = "end_turn") -> list[tuple[str, dict[str, Any]]]:
    return [
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": 2}}),
        ("message_stop", {"type": "message_stop"}),
    ]


TOOL_START = (
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Read"}},
)

BROKEN_NATIVE = {
    "skipped-index": [_START, _text_start(1), _text_delta(1, "hi"), _stop(1), *_end()],
    "text-in-tool-block": [_START, TOOL_START, _text_delta(0, "hi"), _stop(0), *_end("tool_use")],
    "no-stop-reason": [_START, _text_start(0), _text_delta(0, "hi"), _stop(0), *_end(None)],
    "no-message-stop": [_START, _text_start(0), _text_delta(0, "hi"), _stop(0), _end()[0]],
    "delta-before-start": [_START, _text_delta(0, "hi"), *_end()],
    "server-tool-result": [
        _START,
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "web_search_tool_result"}},
        ),
        _stop(0),
        *_end(),
    ],
}


@pytest.mark.parametrize("events", list(BROKEN_NATIVE.values()), ids=list(BROKEN_NATIVE))
def test_a_native_stream_that_breaks_the_grammar_falls_back(
    nproxy: ProxyThread, native: NativeLocal, events: list[tuple[str, dict[str, Any]]]
) -> None:
    native.script(RawReply(_frames(*events)))
    msg = sdk_final(nproxy, body())
    assert msg.content[0].type == "text" and msg.content[0].text == "cloud says hi"
    [rec] = nproxy.decisions()
    assert (rec["route"], rec["fallback"]) == ("cloud", "native-grammar")


def test_a_native_stream_that_breaks_after_content_ends_with_an_error_event(
    nproxy: ProxyThread, native: NativeLocal
) -> None:
    long_text = "This is a plain answer that is long enough to be released to the client. " * 4
    events = [_START, _text_start(0), _text_delta(0, long_text), _text_delta(3, "oops"), *_end()]
    native.script(RawReply(_frames(*events)))
    # A model the classifier routes (SIMPLE: local), so that the retry can go elsewhere.
    b = body(model="claude-sonnet-4-5", metadata={"user_id": json.dumps({"session_id": "s-native"})})
    r = httpx.post(nproxy.url + "/v1/messages", headers=nproxy.headers(), json=b, timeout=30)
    got = parse_sse(r.content)
    assert got[-1].event == "error" and "message_stop" not in [e.event for e in got]
    assert anthropic_grammar_errors(got, allow_error=True) == []
    assert long_text.strip()[:40].encode() in r.content
    # The retry of that turn goes to the cloud.
    r2 = httpx.post(nproxy.url + "/v1/messages", headers=nproxy.headers(), json=b, timeout=30)
    assert r2.status_code == 200 and anthropic_grammar_errors(parse_sse(r2.content)) == []
    recs = nproxy.decisions(2)
    assert (recs[0]["route"], recs[1]["route"], recs[1]["reason"]) == ("local", "cloud", "retry-to-cloud")
    assert "native-grammar" in recs[0]["detail"]
    # The classifier spoke the answers' dialect: the server's own /v1/messages, streamed.
    [classify] = native.requests_tagged("classify")
    assert native.requests_tagged("chat") == [] and classify.json["stream"] is True


def test_a_valid_native_stream_is_renumbered_and_thinking_dropped(nproxy: ProxyThread, native: NativeLocal) -> None:
    reply = Reply(
        content=(ThinkingBlock("let me see"), TextBlock("Reading it."), ToolUseBlock("Read", {"file_path": "/a"})),
        chunk_chars=2,
    )
    native.script(reply)
    r = httpx.post(nproxy.url + "/v1/messages", headers=nproxy.headers(), json=body(), timeout=30)
    got = parse_sse(r.content)
    assert anthropic_grammar_errors(got) == []
    starts = [e.json()["content_block"]["type"] for e in got if e.event == "content_block_start"]
    assert starts == ["text", "tool_use"]
    assert b'"model":"local"' in r.content  # the client's model name, not the server's
    assert len(stream_events(reply, "x")) > 0


# --- the request on the native path --------------------------------------------------------------

CLOUD_ONLY = ("thinking", "context_management", "output_config", "metadata", "service_tier", "container", "betas")


def test_native_request_is_built_from_the_allow_list(nproxy: ProxyThread, native: NativeLocal) -> None:
    b = body(
        thinking={"type": "adaptive"},
        context_management={"edits": []},
        output_config={"effort": "high"},
        metadata={"user_id": "u"},
        service_tier="auto",
        temperature=0.2,
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
    )
    b["tools"] = [*TOOL_DEFS, {"type": "web_search_20250305", "name": "web_search"}]
    b["messages"] = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "x", "signature": "sig"}, {"type": "text", "text": "hello"}],
        },
        {"role": "system", "content": "Plan mode is active."},
        {"role": "user", "content": [{"type": "text", "text": "go", "cache_control": {"type": "ephemeral"}}]},
    ]
    httpx.post(nproxy.url + "/v1/messages", headers=nproxy.headers(), json=b, timeout=30)
    [rec] = native.requests_tagged("messages")
    sent = rec.json
    assert set(sent) <= {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "tools",
        "tool_choice",
    }
    assert not set(CLOUD_ONLY) & set(sent)
    assert sent["model"] == "local-model" and sent["max_tokens"] == 4096 and sent["system"] == "be brief"
    assert [t["name"] for t in sent["tools"]] == list(SCHEMAS)
    assert "thinking" not in json.dumps(sent["messages"]) and "cache_control" not in json.dumps(sent)
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][2]["content"] == [
        {"type": "text", "text": "<system-reminder>\nPlan mode is active.\n</system-reminder>"},
        {"type": "text", "text": "go"},
    ]


def test_native_request_rejects_a_body_without_messages() -> None:
    from proxy.openai_request import RequestTranslationError

    with pytest.raises(RequestTranslationError):
        to_native_request({"model": "x"}, model="m", max_output_tokens=10)


# --- config ------------------------------------------------------------------------------------


def test_local_api_is_checked_and_auto_follows_the_probe() -> None:
    base = {"local": {"model": "m"}, "cloud": {"simple_model": "a", "complex_model": "b"}}
    assert config_from_dict(base).local.api == "openai"
    with pytest.raises(ConfigError, match=r"local\.api' must be one of openai, anthropic, auto"):
        config_from_dict({**base, "local": {"model": "m", "api": "claude"}})
    auto = LocalConfig(api="auto")
    assert [local_dialect(auto, probed) for probed in (True, False, None)] == ["anthropic", "openai", "openai"]
    assert local_dialect(LocalConfig(api="anthropic"), False) == "anthropic"


def test_auto_picks_the_anthropic_path_where_the_probe_found_it(tmp_path: Path, upstream: AnthropicUpstream) -> None:
    with (
        NativeLocal(default=text_reply("native answer"), llamacpp=True) as srv,
        _proxy(tmp_path, srv.v1_url, upstream.url, "auto") as proxy,
    ):
        msg = sdk_final(proxy, body())
        assert msg.content[0].type == "text" and msg.content[0].text == "native answer"
        assert srv.requests_tagged("messages")
