"""OpenAI chunks → Anthropic events: replayed server shapes, every split, grammar, and the real SDK.

The end-to-end tests replay each recorded stream from the shared stand-in local server
(:class:`tests.standins.OpenAILocal`), read it with :func:`proxy.local_client.stream_chat`, translate
it, serve the encoded Anthropic SSE bytes from a small aiohttp app on loopback, and let the official
``anthropic`` SDK (``AsyncAnthropic.messages.stream`` → ``get_final_message``) parse and accumulate
them.  The SDK's accumulator alone is lenient (it silently ignores a text delta on a tool_use
block), so every event list also goes through :func:`check_grammar`, which is strict.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiohttp
import anthropic
import pytest
from aiohttp import web

from proxy.config import LocalConfig
from proxy.local_client import LocalFailure, stream_chat
from proxy.openai_stream import (
    Event,
    StreamTranslator,
    TranslationError,
    completion_to_message,
    events_to_message,
    parse_tool_arguments,
)
from proxy.sse import encode_event
from tests.standins import OpenAILocal
from tests.standins.openai_local import ChunkReply
from tests.streams import TOOLS, Case, all_cases, call, vllm

CASES = all_cases()
OK_CASES = [c for c in CASES if c.ok]
FAULT_CASES = [c for c in CASES if not c.ok]
TOOL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
DELTA_FOR = {"text": "text_delta", "tool_use": "input_json_delta"}


# ----- grammar checker ---------------------------------------------------------------------------
def check_grammar(events: Iterable[Event], tools: Iterable[str] = TOOLS) -> None:
    """Assert the Anthropic stream grammar Claude Code enforces (see field notes)."""
    events = list(events)
    tools = set(tools)
    names = [n for n, _ in events if n != "ping"]
    assert names, "no events"
    assert names[0] == "message_start", names
    assert names[-2:] == ["message_delta", "message_stop"], names
    assert names.count("message_start") == 1 and names.count("message_delta") == 1
    assert names.count("message_stop") == 1
    next_index = 0
    open_block: dict[str, Any] | None = None
    open_index = -1
    acc = ""
    for name, data in events:
        assert data.get("type") == name, (name, data)
        if name == "message_start":
            msg = data["message"]
            assert msg["id"].startswith("msg_") and msg["role"] == "assistant" and msg["content"] == []
            assert isinstance(msg["usage"]["input_tokens"], int)
        elif name == "content_block_start":
            assert open_block is None, "a block started while another is open"
            assert data["index"] == next_index, f"index {data['index']}, expected {next_index}"
            open_block, open_index, acc = data["content_block"], data["index"], ""
            next_index += 1
            assert open_block["type"] in DELTA_FOR, open_block
            if open_block["type"] == "tool_use":
                assert TOOL_ID_RE.match(open_block["id"]), open_block["id"]
                assert open_block["name"] in tools
        elif name == "content_block_delta":
            assert open_block is not None and data["index"] == open_index, "delta outside its open block"
            delta = data["delta"]
            assert delta["type"] == DELTA_FOR[open_block["type"]], "delta type differs from its block type"
            acc += delta["text"] if delta["type"] == "text_delta" else delta["partial_json"]
        elif name == "content_block_stop":
            assert open_block is not None and data["index"] == open_index
            if open_block["type"] == "text":
                assert acc.strip(), "empty or whitespace-only text block"
            else:
                assert isinstance(json.loads(acc), dict), "tool input is not a JSON object"
            open_block = None
        elif name == "message_delta":
            assert open_block is None, "message_delta while a block is open"
            assert data["delta"]["stop_reason"] in STOP_REASONS
            assert isinstance(data["usage"]["output_tokens"], int)
        elif name == "message_stop":
            pass
        else:
            assert name == "ping", f"unexpected event {name}"
    assert next_index > 0, "no content blocks"


def grammar_violation(events: list[Event]) -> bool:
    try:
        check_grammar(events)
    except AssertionError:
        return True
    return False


def test_grammar_checker_catches_what_clients_reject() -> None:
    good = translate(next(c for c in OK_CASES if c.name == "ollama-text-tool-text"))
    check_grammar(good)
    # Text delta on a tool_use block ("Content block is not a text block").
    bad = [e for e in good]
    bad.insert(
        4,
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "x"}},
        ),
    )
    assert grammar_violation(bad)
    # A skipped index.
    bad = [(n, {**d, "index": d["index"] + 1} if "index" in d and d["index"] == 2 else d) for n, d in good]
    assert grammar_violation(bad)
    # An empty text block.
    empty = [
        good[0],
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        *good[-2:],
    ]
    assert grammar_violation(empty)
    # message_stop without message_delta.
    assert grammar_violation(good[:-2] + good[-1:])


# ----- helpers ------------------------------------------------------------------------------------
def translate(case: Case, **kw: Any) -> list[Event]:
    t = StreamTranslator(TOOLS, model="claude-sonnet-4-6", **kw)
    events: list[Event] = []
    for chunk in case.chunks:
        events += t.feed(chunk)
    events += t.finish()
    return events


def normalise(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Generated tool ids become None (after checking their form) so they compare with the case."""
    out = []
    for block in content:
        block = {k: v for k, v in block.items() if k in ("type", "text", "id", "name", "input")}
        if block["type"] == "tool_use" and block["id"].startswith("toolu_"):
            assert TOOL_ID_RE.match(block["id"])
            block["id"] = None
        out.append(block)
    return out


def expected(case: Case) -> list[dict[str, Any]]:
    return normalise([{**b, "id": b["id"] or "toolu_x"} if b["type"] == "tool_use" else b for b in case.content])


# ----- every recorded case, translated directly -------------------------------------------------
@pytest.mark.parametrize("case", OK_CASES, ids=lambda c: c.name)
def test_recorded_stream_translates(case: Case) -> None:
    t = StreamTranslator(TOOLS, model="claude-sonnet-4-6", input_tokens=1234)
    events: list[Event] = []
    for chunk in case.chunks:
        events += t.feed(chunk)
    assert t.has_content
    assert t.stop_reason == case.stop_reason
    events += t.finish()
    check_grammar(events)
    message = events_to_message(events)
    assert normalise(message["content"]) == expected(case)
    assert message["stop_reason"] == case.stop_reason
    assert events[0][1]["message"]["usage"]["input_tokens"] == 1234
    final_usage = events[-2][1]["usage"]
    if case.usage is not None:
        assert final_usage == {"input_tokens": case.usage[0], "output_tokens": case.usage[1]}
    else:
        assert final_usage["output_tokens"] > 0 and "input_tokens" not in final_usage


@pytest.mark.parametrize("case", FAULT_CASES, ids=lambda c: c.name)
def test_fault_stream_raises_with_cause(case: Case) -> None:
    t = StreamTranslator(TOOLS, model="m")
    events: list[Event] = []
    with pytest.raises(TranslationError) as info:
        for chunk in case.chunks:
            events += t.feed(chunk)
        events += t.finish()
    assert info.value.cause == case.error, info.value
    assert t.has_content == case.content_before_error
    # Nothing emitted so far ever ends the message (no made-up end_turn).
    assert "message_delta" not in [n for n, _ in events]


# ----- split every way ----------------------------------------------------------------------------
WRITE_ARGS = {"file_path": "/tmp/a b/ü.txt", "content": 'line "1"\n\tline 2 {not json}, ]\n'}
WRITE_JSON = json.dumps(WRITE_ARGS, ensure_ascii=False)


def _tool_events(chunks: list[dict[str, Any]]) -> list[Event]:
    t = StreamTranslator(TOOLS, model="m")
    events: list[Event] = []
    for c in chunks:
        events += t.feed(c)
    events += t.finish()
    check_grammar(events)
    return events


def _only_write(events: list[Event]) -> None:
    message = events_to_message(events)
    assert [b["type"] for b in message["content"]] == ["tool_use"]
    assert message["content"][0]["name"] == "Write"
    assert message["content"][0]["input"] == WRITE_ARGS


def test_arguments_split_at_every_point_with_id_and_name_first() -> None:
    for i in range(len(WRITE_JSON) + 1):
        chunks = [
            vllm({"tool_calls": [call(0, id="c1", name="Write", args="")]}),
            vllm({"tool_calls": [call(0, args=WRITE_JSON[:i])]}),
            vllm({"tool_calls": [call(0, args=WRITE_JSON[i:])]}),
            vllm({}, "tool_calls"),
        ]
        _only_write(_tool_events(chunks))


def test_arguments_split_at_every_pair_of_points_with_name_last() -> None:
    n = len(WRITE_JSON)
    for i in range(0, n + 1, 3):
        for j in range(i, n + 1, 5):
            chunks = [
                vllm({"tool_calls": [call(0, args=WRITE_JSON[:i])]}),
                vllm({"tool_calls": [call(0, args=WRITE_JSON[i:j])]}),
                vllm({"tool_calls": [call(0, id="c1", name="Write", args=WRITE_JSON[j:])]}),
                vllm({}, "tool_calls"),
            ]
            _only_write(_tool_events(chunks))


def test_cumulative_snapshots_at_every_prefix() -> None:
    for i in range(1, len(WRITE_JSON)):
        chunks = [
            vllm({"tool_calls": [call(0, id="c1", name="Write", args=WRITE_JSON[:i])]}),
            vllm({"tool_calls": [call(0, args=WRITE_JSON[: (i + len(WRITE_JSON)) // 2])]}),
            vllm({"tool_calls": [call(0, args=WRITE_JSON)]}),
            vllm({"tool_calls": [call(0, args=WRITE_JSON)]}),  # a repeated full snapshot
            vllm({}, "tool_calls"),
        ]
        _only_write(_tool_events(chunks))


def test_interleaved_calls_split_at_every_point() -> None:
    a = json.dumps({"file_path": "/x/y"})
    b = json.dumps({"command": "echo 'hi, there'"})
    for i in range(len(a) + 1):
        j = min(i, len(b))
        chunks = [
            vllm({"tool_calls": [call(0, args=a[:i]), call(1, args=b[:j])]}),
            vllm({"tool_calls": [call(1, id="cb", name="Bash")]}),
            vllm({"tool_calls": [call(0, id="ca", name="Read", args=a[i:])]}),
            vllm({"tool_calls": [call(1, args=b[j:])]}),
            vllm({}, "tool_calls"),
        ]
        message = events_to_message(_tool_events(chunks))
        assert [(b_["id"], b_["input"]) for b_ in message["content"]] == [
            ("ca", {"file_path": "/x/y"}),
            ("cb", {"command": "echo 'hi, there'"}),
        ]


def test_think_tags_split_at_every_point() -> None:
    stream = "<think>\nplan: say <hi> </thin k>\n</think>\n\nHello <think> is a tag."
    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1, 4):
            parts = [stream[:i], stream[i:j], stream[j:]]
            t = StreamTranslator(TOOLS, model="m")
            events: list[Event] = []
            for p in parts:
                events += t.feed(vllm({"content": p}))
            events += t.feed(vllm({}, "stop"))
            events += t.finish()
            check_grammar(events)
            assert events_to_message(events)["content"] == [{"type": "text", "text": "Hello <think> is a tag."}]


def test_text_that_only_looks_like_a_think_prefix_is_kept() -> None:
    t = StreamTranslator(TOOLS, model="m")
    events = t.feed(vllm({"content": "<thi"}))
    assert not t.has_content  # still undecided
    events += t.feed(vllm({}, "stop"))
    events += t.finish()
    assert events_to_message(events)["content"] == [{"type": "text", "text": "<thi"}]


# ----- first valid content, early emission ------------------------------------------------------
def test_has_content_waits_for_visible_text() -> None:
    t = StreamTranslator(TOOLS, model="m")
    t.feed(vllm({"role": "assistant", "content": ""}))
    t.feed(vllm({"reasoning_content": "thinking hard"}))
    t.feed(vllm({"content": "<think>x</think>"}))
    t.feed(vllm({"content": "\n \n"}))
    assert not t.has_content
    events = t.feed(vllm({"content": "Yes"}))
    assert t.has_content
    assert [n for n, _ in events] == ["content_block_start", "content_block_delta"]


def test_complete_call_is_emitted_when_the_next_index_starts() -> None:
    t = StreamTranslator(TOOLS, model="m")
    t.feed(vllm({"tool_calls": [call(0, id="a", name="Read", args='{"file_path": "/a"}')]}))
    assert not t.has_content  # could still be a prefix of a longer snapshot: not yet complete
    events = t.feed(vllm({"tool_calls": [call(1, id="b", name="Read", args="{")]}))
    assert t.has_content
    assert [n for n, _ in events] == ["content_block_start", "content_block_delta", "content_block_stop"]
    assert events[0][1]["content_block"]["id"] == "a"


def test_incomplete_call_waits_for_finish_and_text_after_it_opens_a_new_block() -> None:
    t = StreamTranslator(TOOLS, model="m")
    events = t.feed(vllm({"content": "Before."}))
    events += t.feed(vllm({"tool_calls": [call(0, id="a", name="Read", args='{"file_path": "/a"}')]}))
    events += t.feed(vllm({"content": " After."}))
    events += t.feed(vllm({}, "tool_calls"))
    events += t.finish()
    check_grammar(events)
    message = events_to_message(events)
    assert [b["type"] for b in message["content"]] == ["text", "tool_use", "text"]
    assert message["content"][2]["text"] == "After."


def test_fragment_after_completed_call_is_rejected() -> None:
    t = StreamTranslator(TOOLS, model="m")
    t.feed(vllm({"tool_calls": [call(0, id="a", name="Read", args='{"file_path": "/a"}')]}))
    t.feed(vllm({"content": "next"}))
    with pytest.raises(TranslationError) as info:
        t.feed(vllm({"tool_calls": [call(0, args=', "x": 1}')]}))
    assert info.value.cause == "invalid-tool-call"


def test_no_tools_in_request_means_any_call_is_unknown() -> None:
    t = StreamTranslator((), model="m")
    t.feed(vllm({"tool_calls": [call(0, id="a", name="Read", args="{}")]}))
    with pytest.raises(TranslationError) as info:
        t.feed(vllm({}, "tool_calls"))
    assert info.value.cause == "unknown-tool"


def test_message_start_fields_and_ids() -> None:
    t = StreamTranslator(TOOLS, model="claude-haiku-4-5", input_tokens=77, message_id="msg_fixed")
    (name, data), *_ = t.feed(vllm({"role": "assistant", "content": ""}))
    assert name == "message_start"
    assert data["message"]["id"] == "msg_fixed" and data["message"]["model"] == "claude-haiku-4-5"
    assert data["message"]["usage"] == {"input_tokens": 77, "output_tokens": 0}
    assert re.match(r"^msg_[0-9a-f]{24}$", StreamTranslator().message_id)


def test_chunk_after_finish_is_rejected() -> None:
    t = StreamTranslator(TOOLS, model="m")
    t.feed(vllm({"content": "a"}, "stop"))
    with pytest.raises(TranslationError) as info:
        t.feed(vllm({"content": "more"}))
    assert info.value.cause == "malformed-chunk"


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("", {}),
        ("  ", {}),
        ('{"a": 1}', {"a": 1}),
        ('{"a": [1, 2,], "b": "x,}",}', {"a": [1, 2], "b": "x,}"}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ("```\n{}\n```", {}),
    ],
)
def test_parse_tool_arguments_repairs(raw: str, value: dict[str, Any]) -> None:
    assert parse_tool_arguments(raw) == value


@pytest.mark.parametrize("raw", ['{"a": ', "[1]", '"s"', "null", "{'a': 1}"])
def test_parse_tool_arguments_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_tool_arguments(raw)


# ----- non-streaming --------------------------------------------------------------------------------
def completion(message: dict[str, Any], finish: str | None, usage: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "qwen",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
    }
    if usage:
        out["usage"] = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    return out


def test_completion_with_text_and_tool_call() -> None:
    msg = completion_to_message(
        completion(
            {
                "content": "<think>plan</think>\n\nOn it.",
                "reasoning_content": "more plan",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "Write", "arguments": '{"file_path": "/a", "content": "x",}'},
                    }
                ],
            },
            "tool_calls",
        ),
        TOOLS,
        model="claude-sonnet-4-6",
        input_tokens=5,
    )
    assert msg["id"].startswith("msg_") and msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["model"] == "claude-sonnet-4-6"
    assert msg["content"] == [
        {"type": "text", "text": "On it."},
        {"type": "tool_use", "id": "call_1", "name": "Write", "input": {"file_path": "/a", "content": "x"}},
    ]
    assert msg["stop_reason"] == "tool_use" and msg["stop_sequence"] is None
    assert msg["usage"] == {"input_tokens": 100, "output_tokens": 20}
    # The SDK's own model accepts it.
    parsed = anthropic.types.Message.model_validate(msg)
    assert parsed.content[1].type == "tool_use"


def test_completion_without_usage_uses_the_estimate() -> None:
    msg = completion_to_message(completion({"content": "Hi"}, "stop", usage=False), TOOLS, model="m", input_tokens=9)
    assert msg["usage"]["input_tokens"] == 9 and msg["usage"]["output_tokens"] >= 1
    assert msg["content"] == [{"type": "text", "text": "Hi"}]


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (completion({"content": "Hi"}, None), "no-finish-reason"),
        (completion({"content": ""}, "stop"), "empty-answer"),
        (
            completion(
                {
                    "content": None,
                    "tool_calls": [{"id": "x", "type": "function", "function": {"name": "Nope", "arguments": "{}"}}],
                },
                "tool_calls",
            ),
            "unknown-tool",
        ),
        (
            completion(
                {
                    "content": None,
                    "tool_calls": [{"id": "x", "type": "function", "function": {"name": "Read", "arguments": "{"}}],
                },
                "tool_calls",
            ),
            "invalid-tool-call",
        ),
        ({"choices": []}, "malformed-chunk"),
        ({"error": {"message": "boom"}}, "upstream-error"),
    ],
)
def test_completion_failures(body: dict[str, Any], cause: str) -> None:
    with pytest.raises(TranslationError) as info:
        completion_to_message(body, TOOLS, model="m")
    assert info.value.cause == cause


# ----- end to end: stand-in local server → stream_chat → translator → SSE bytes → anthropic SDK ------
@pytest.fixture
async def sdk_server() -> AsyncIterator[Callable[[bytes], str]]:
    """Serve fixed Anthropic SSE bytes at POST {url}/v1/messages; returns a function bytes → base URL."""
    bodies: dict[str, bytes] = {}

    async def messages(request: web.Request) -> web.StreamResponse:
        payload = bodies[request.match_info["key"]]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        # Odd-sized writes so the SDK's SSE parser sees events split across reads.
        for i in range(0, len(payload), 97):
            await resp.write(payload[i : i + 97])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/{key}/v1/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    def serve(payload: bytes) -> str:
        key = f"k{len(bodies)}"
        bodies[key] = payload
        return f"http://127.0.0.1:{port}/{key}"

    yield serve
    await runner.cleanup()


async def _translate_via_local(case: Case, local: OpenAILocal) -> list[Event]:
    local.script(ChunkReply(case.chunks, done=case.done))
    cfg = LocalConfig(base_url=local.v1_url, model="local-model", first_token_timeout_s=10, read_timeout_s=10)
    t = StreamTranslator(TOOLS, model="claude-sonnet-4-6", input_tokens=321)
    events: list[Event] = []
    async with aiohttp.ClientSession() as session:
        async for chunk in stream_chat(session, cfg, {"model": "local-model", "messages": []}, ""):
            events += t.feed(chunk)
    events += t.finish()
    return events


@pytest.mark.parametrize("case", OK_CASES, ids=lambda c: c.name)
async def test_sdk_accumulates_translated_stream(
    case: Case, openai_local: OpenAILocal, sdk_server: Callable[[bytes], str]
) -> None:
    events = await _translate_via_local(case, openai_local)
    check_grammar(events)
    base_url = sdk_server(b"".join(encode_event(n, d) for n, d in events))
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="sk-test-not-a-key", max_retries=0)
    try:
        async with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=1024, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            final = await stream.get_final_message()
    finally:
        await client.close()
    dumped = final.model_dump()
    assert normalise(dumped["content"]) == expected(case)
    assert final.stop_reason == case.stop_reason
    assert final.id.startswith("msg_")
    if case.usage is not None:
        assert (final.usage.input_tokens, final.usage.output_tokens) == case.usage
    else:
        assert final.usage.input_tokens == 321


@pytest.mark.parametrize("case", FAULT_CASES, ids=lambda c: c.name)
async def test_fault_stream_through_local_client_fails_typed(case: Case, openai_local: OpenAILocal) -> None:
    with pytest.raises((TranslationError, LocalFailure)) as info:
        await _translate_via_local(case, openai_local)
    assert getattr(info.value, "cause", None) == case.error


def test_prefix_cache_figures_come_from_the_usage_chunk_or_llamacpp_timings() -> None:
    """Recorded from the real llama-server (.ci/llama.sh): its usage chunk carries both spellings."""
    usage_chunk = {
        "choices": [],
        "object": "chat.completion.chunk",
        "usage": {"completion_tokens": 3, "prompt_tokens": 33, "total_tokens": 36,
                  "prompt_tokens_details": {"cached_tokens": 0}},
        "timings": {"cache_n": 30, "prompt_n": 3, "prompt_ms": 145.468, "predicted_n": 3},
    }
    t = StreamTranslator(TOOLS, model="m", input_tokens=10)
    t.feed({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]})
    assert (t.cached_tokens, t.prefill_ms) == (None, None)
    t.feed(usage_chunk)
    assert (t.cached_tokens, t.prefill_ms, t.upstream_input_tokens) == (30, 145.468, 33)
    # OpenAI-style servers (vLLM) report only prompt_tokens_details; garbage is ignored.
    t2 = StreamTranslator(TOOLS, model="m")
    t2.feed({"choices": [], "usage": {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4}}})
    t2.feed({"choices": [], "timings": {"cache_n": "lots", "prompt_ms": -1}})
    assert (t2.cached_tokens, t2.prefill_ms) == (4, None)
