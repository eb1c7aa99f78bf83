"""proxy.stream_grammar: the incremental Anthropic stream check the cloud relay runs on every event.

Valid streams come from the recorded LiteLLM stream, the stand-in upstream's own streams (text,
tools, thinking) and the local path's translator (the same checker must accept what it emits);
broken ones from ``tests.standins.anthropic_faults.VIOLATIONS``, each cross-checked with the tests'
own independent checker (``tests.standins.sse.anthropic_grammar_errors``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.openai_stream import StreamTranslator
from proxy.stream_grammar import StreamGrammar
from tests.standins.anthropic_faults import VIOLATIONS, Frame, encode, frames
from tests.standins.anthropic_upstream import Reply, TextBlock, ThinkingBlock, stream_events, text_reply, tool_use_reply
from tests.standins.sse import anthropic_grammar_errors, parse_sse
from tests.streams import TOOLS, all_cases

RECORDED = (Path(__file__).parent / "data" / "litellm_stream_tool_use.sse").read_bytes()


def problems(events: list[Frame]) -> list[str]:
    """Every answer of the checker: the first violation, or what finish() says."""
    g = StreamGrammar()
    for name, data in events:
        problem = g.feed(name, data)
        if problem is not None:
            return [problem]
    end = g.finish()
    return [] if end is None else [end]


def standin_frames(reply: Reply) -> list[Frame]:
    return frames(b"".join(stream_events(reply, "claude-x")))


def ev(etype: str, **fields: Any) -> Frame:
    return etype, {"type": etype, **fields}


START = ev("message_start", message={"id": "msg_1", "content": []})
TEXT0 = ev("content_block_start", index=0, content_block={"type": "text", "text": ""})
DELTA0 = ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "hi"})
STOP0 = ev("content_block_stop", index=0)
END_TURN = ev("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 1})
MSG_STOP = ev("message_stop")
PING = ev("ping")


@pytest.mark.parametrize(
    "reply",
    [
        text_reply("Hello there, this is a longer answer."),
        tool_use_reply("Write", {"file_path": "/a", "content": "x" * 50}, text_before="Writing."),
        Reply(content=(ThinkingBlock("Let me think."), TextBlock("Done."))),
        Reply(content=(TextBlock("a"), TextBlock("b"), TextBlock("c")), stop_reason="max_tokens"),
    ],
    ids=["text", "text-then-tool", "thinking-then-text", "three-blocks"],
)
def test_valid_standin_streams_pass(reply: Reply) -> None:
    assert problems(standin_frames(reply)) == []


def test_the_recorded_litellm_stream_passes() -> None:
    assert problems(frames(RECORDED)) == []


def test_the_local_translators_output_passes() -> None:
    # The local path can put the same check on its own output.
    for case in [c for c in all_cases() if c.ok]:
        t = StreamTranslator(TOOLS, model="claude-x")
        events = [e for chunk in case.chunks for e in t.feed(chunk)] + t.finish()
        assert problems(events) == [], case.name


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_each_violation_is_caught(name: str) -> None:
    bad = VIOLATIONS[name](frames(RECORDED))
    assert problems(bad) != [], name
    # The tests' own checker, written separately, agrees that the stream is broken.
    assert anthropic_grammar_errors(parse_sse(encode(bad))) != []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("text_delta inside tool_use", "text_delta inside tool_use block 1"),
        ("skipped block index", "content_block_start has index 2, expected 1"),
        ("delta for a closed block", "content_block_delta for block 0, which is not open"),
        ("stop_reason null", "message_delta has stop_reason None"),
        ("no message_stop", "the stream ended after message_delta, before message_stop"),
        ("no message_delta", "message_stop without a message_delta before it"),
        ("events after message_stop", "content_block_start after the end of the stream"),
        ("event name differs from data type", "'event: content_block_stop' carries data of type 'content_block_delta'"),
    ],
)
def test_violations_are_described_in_one_line(name: str, message: str) -> None:
    assert problems(VIOLATIONS[name](frames(RECORDED))) == [message]


def test_ping_anywhere_and_error_as_an_end() -> None:
    assert problems([PING, START, PING, TEXT0, PING, DELTA0, PING, STOP0, PING, END_TURN, PING, MSG_STOP]) == []
    err = ev("error", error={"type": "overloaded_error", "message": "busy"})
    g = StreamGrammar()
    for name, data in [START, TEXT0, DELTA0, err]:
        assert g.feed(name, data) is None
    assert g.ended and g.errored and g.finish() is None
    assert g.feed(*PING) == "ping after the end of the stream"


def test_what_the_api_may_add_is_let_through() -> None:
    # New event types, new block types (with their own deltas), new stop reasons.
    future_block = ev("content_block_start", index=1, content_block={"type": "future_tool_result"})
    future_delta = ev("content_block_delta", index=1, delta={"type": "future_delta", "x": 1})
    new_reason = ev("message_delta", delta={"stop_reason": "model_context_window_exceeded"})
    stream = [START, ev("future_event"), TEXT0, DELTA0, STOP0, future_block, future_delta]
    assert problems([*stream, ev("content_block_stop", index=1), new_reason, MSG_STOP]) == []
    citations = ev("content_block_delta", index=0, delta={"type": "citations_delta", "citation": {}})
    assert problems([START, TEXT0, citations, DELTA0, STOP0, END_TURN, MSG_STOP]) == []
    server_tool = ev("content_block_start", index=0, content_block={"type": "server_tool_use", "id": "srvtoolu_1"})
    args = ev("content_block_delta", index=0, delta={"type": "input_json_delta", "partial_json": "{}"})
    assert problems([START, server_tool, args, STOP0, END_TURN, MSG_STOP]) == []


@pytest.mark.parametrize(
    ("event", "data", "message"),
    [
        ("ping", ["not", "an", "object"], "event data is list, not a JSON object"),
        ("ping", {"no": "type"}, "event data has no string 'type'"),
        (None, {"type": "content_block_start", "index": True, "content_block": {"type": "text"}},
         "content_block_start has index True, expected 0"),
        (None, {"type": "content_block_start", "index": 0, "content_block": "text"},
         "content_block_start 0 has no block type"),
        (None, {"type": "message_delta", "delta": {"stop_reason": "End Turn!"}},
         "message_delta has stop_reason 'End Turn!'"),
        (None, {"type": "content_block_delta", "index": 0, "delta": {}},
         "content_block_delta for block 0, which is not open"),
    ],
)
def test_malformed_events(event: str | None, data: Any, message: str) -> None:
    g = StreamGrammar()
    assert g.feed(*START) is None
    assert g.feed(event, data) == message


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "the stream ended before message_start"),
        ([START, TEXT0, DELTA0], "the stream ended inside block 0"),
        ([START, TEXT0, DELTA0, STOP0], "the stream ended before message_delta (no stop_reason)"),
        ([START, TEXT0, DELTA0, STOP0, END_TURN], "the stream ended after message_delta, before message_stop"),
    ],
)
def test_finish_says_where_the_stream_stopped(events: list[Frame], message: str) -> None:
    assert problems(events) == [message]


def test_first_event_must_be_message_start() -> None:
    g = StreamGrammar()
    assert g.feed(*TEXT0) == "content_block_start before message_start"
    assert not g.started
