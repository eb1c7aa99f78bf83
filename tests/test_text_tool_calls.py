"""Tool calls written as text: the recogniser alone, then inside the OpenAI-dialect translator.

Every shape seen in the field is replayed whole and split at every position (so inside each tag,
inside each JSON string, between a backslash and what it escapes), and prose that merely contains
JSON with a ``name`` key must come out exactly as it went in.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.openai_stream import StreamTranslator, TranslationError, events_to_message
from proxy.text_tool_calls import HOLD_CHARS, Found, TextHold, ToolCall, Unusable, parse_text

SCHEMAS: dict[str, Any] = {
    "Read": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["file_path"],
        "additionalProperties": False,
    },
    "get_weather": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
READ = ToolCall("Read", {"file_path": '/tmp/a "b".txt', "limit": 5})
WEATHER = ToolCall("get_weather", {"city": "Paris"})

# (id, text, shape, prose before, calls)
SHAPES: list[tuple[str, str, str, str, tuple[ToolCall, ...]]] = [
    (
        "bare-json",
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        "bare_json",
        "",
        (WEATHER,),
    ),
    (
        "bare-json-string-arguments",
        '{"name": "Read", "arguments": "{\\"file_path\\": \\"/tmp/a \\\\\\"b\\\\\\".txt\\", \\"limit\\": 5}"}',
        "bare_json",
        "",
        (READ,),
    ),
    (
        "bare-json-list",
        '[{"name": "get_weather", "parameters": {"city": "Paris"}}, '
        '{"name": "Read", "arguments": {"file_path": "/tmp/a \\"b\\".txt", "limit": 5}}]',
        "bare_json",
        "",
        (WEATHER, READ),
    ),
    (
        "tool-call-tag-after-prose",
        'I will read it.\n<tool_call>\n{"name": "Read", "arguments": {"file_path": "/tmp/a \\"b\\".txt", '
        '"limit": 5}}\n</tool_call>',
        "tool_call_tag",
        "I will read it.\n",
        (READ,),
    ),
    (
        "two-tool-call-tags-trailing-comma",
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris",}}</tool_call>\n'
        '<tool_call>{"name": "Read", "arguments": {"file_path": "/tmp/a \\"b\\".txt", "limit": 5}}</tool_call>',
        "tool_call_tag",
        "",
        (WEATHER, READ),
    ),
    (
        "tool-call-tag-unclosed",
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}',
        "tool_call_tag",
        "",
        (WEATHER,),
    ),
    (
        "function-tag-json",
        '<function=get_weather>{"city": "Paris"}</function>',
        "function_tag",
        "",
        (WEATHER,),
    ),
    (
        "function-tag-parameters",
        'Reading.\n<tool_call>\n<function=Read>\n<parameter=file_path>\n/tmp/a "b".txt\n</parameter>\n'
        "<parameter=limit>\n5\n</parameter>\n</function>\n</tool_call>",
        "function_tag",
        "Reading.\n",
        (READ,),
    ),
    (
        "mistral-list",
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        "mistral",
        "",
        (WEATHER,),
    ),
    (
        "mistral-named",
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
        "mistral",
        "",
        (WEATHER,),
    ),
    (
        "fenced-json",
        '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        "fenced_json",
        "",
        (WEATHER,),
    ),
    (
        "fenced-json-after-prose",
        'Let me check.\n\n```json\n{"name": "Read", "arguments": '
        '{"file_path": "/tmp/a \\"b\\".txt", "limit": 5}}\n```\n',
        "fenced_json",
        "Let me check.\n\n",
        (READ,),
    ),
    (
        "single-quoted",
        "{'name': 'get_weather', 'arguments': {'city': 'Paris'}}",
        "single_quoted",
        "",
        (WEATHER,),
    ),
]

# Answers that are text and must stay exactly as they are.
PROSE = [
    'Here is the JSON you asked for:\n```json\n{"name": "Alice", "age": 3}\n```\nIt has two keys.',
    '{"name": "Alice", "age": 3}',
    '[{"name": "Alice"}, {"name": "Bob"}]',
    "In Python, `d = {'name': 'x'}` builds a dict; `d['name']` reads it back.",
    'An OpenAI tool call looks like {"name": "lookup", "arguments": {"q": "x"}} in the response.',
    'To call a tool the model writes:\n```json\n{"name": "search", "arguments": {"query": "x"}}\n```',
    "Use <b>bold</b> and [links](http://x) freely; a { brace alone is fine.",
    "Sure! " + "This is a long plain answer without any tool call in it. " * 6,
]

UNUSABLE = [
    ("unknown-tool", '{"name": "Delete", "arguments": {"path": "/"}}', "names 'Delete'"),
    ("unknown-tool-tag", '<tool_call>{"name": "Delete", "arguments": {}}</tool_call>', "names 'Delete'"),
    ("broken-json", '{"name": "get_weather", "arguments": {"city": "Par', "not valid JSON"),
    ("broken-tag-json", '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>', "not JSON"),
    ("missing-required", '{"name": "Read", "arguments": {"limit": 5}}', "'file_path' is a required property"),
    ("wrong-type", '<function=Read>{"file_path": "/a", "limit": "five"}</function>', "limit fails 'type'"),
    ("extra-key", '[TOOL_CALLS][{"name": "Read", "arguments": {"file_path": "/a", "x": 1}}]', "additionalProperties"),
    ("arguments-not-object", '{"name": "Read", "arguments": [1, 2]}', "not an object"),
    ("empty-tag", "<tool_call></tool_call>", "not JSON"),
]


def _through_hold(pieces: list[str]) -> str | Found:
    hold = TextHold(SCHEMAS)
    released = "".join(hold.feed(p) for p in pieces)
    result = hold.finish()
    if isinstance(result, str):
        return released + result
    assert released == "", "text was released before the tool call it belongs to"
    return result


@pytest.mark.parametrize(("name", "text", "shape", "before", "calls"), SHAPES, ids=[s[0] for s in SHAPES])
def test_every_shape_is_recognised_at_every_split(
    name: str, text: str, shape: str, before: str, calls: tuple[ToolCall, ...]
) -> None:
    want = Found(shape, before, calls)
    assert parse_text(text, SCHEMAS) == want
    for cut in range(1, len(text)):
        assert _through_hold([text[:cut], text[cut:]]) == want, cut
    for size in (1, 2, 3, 7):
        assert _through_hold([text[i : i + size] for i in range(0, len(text), size)]) == want, size


@pytest.mark.parametrize("text", PROSE)
def test_prose_with_json_passes_untouched(text: str) -> None:
    assert parse_text(text, SCHEMAS) is None
    for size in (1, 5, len(text)):
        assert _through_hold([text[i : i + size] for i in range(0, len(text), size)]) == text


@pytest.mark.parametrize(("name", "text", "why"), UNUSABLE, ids=[u[0] for u in UNUSABLE])
def test_a_call_that_cannot_be_made_valid_is_unusable(name: str, text: str, why: str) -> None:
    with pytest.raises(Unusable) as info:
        _through_hold([text[i : i + 4] for i in range(0, len(text), 4)])
    assert why in info.value.detail
    assert info.value.cause == "text-tool-call-invalid"


def test_plain_text_is_released_once_the_window_shows_no_shape() -> None:
    hold = TextHold(SCHEMAS)
    text = "x" * (HOLD_CHARS - 1)
    assert hold.feed(text) == ""
    assert hold.feed("yz") == text + "yz"
    # From then on plain text passes at once.
    assert hold.feed(" more words") == " more words"


def test_after_the_window_a_call_is_still_held_and_repaired() -> None:
    hold = TextHold(SCHEMAS)
    prose = "p" * HOLD_CHARS + " I will read it now.\n"
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    released = hold.feed(prose) + hold.feed(call[:5]) + hold.feed(call[5:])
    assert released == prose
    assert hold.finish() == Found("tool_call_tag", "", (WEATHER,))


def test_after_the_window_an_example_call_in_prose_stays_text() -> None:
    hold = TextHold(SCHEMAS)
    text = "p" * HOLD_CHARS + ' A call looks like {"name": "lookup", "arguments": {}}'
    released = "".join(hold.feed(text[i : i + 3]) for i in range(0, len(text), 3))
    result = hold.finish()
    assert isinstance(result, str) and released + result == text


def test_after_the_window_an_unusable_call_raises_at_the_end() -> None:
    hold = TextHold(SCHEMAS)
    assert hold.feed("p" * HOLD_CHARS + "\n") != ""
    assert hold.feed('<tool_call>{"name": "Delete", "arguments": {}}</tool_call>') == ""
    with pytest.raises(Unusable):
        hold.finish()


def test_a_partial_tag_is_held_back_until_it_resolves() -> None:
    hold = TextHold(SCHEMAS)
    assert hold.feed("a" * HOLD_CHARS + "\n<tool_c") == "a" * HOLD_CHARS + "\n"
    assert hold.feed("all>") == ""
    assert hold.suspect
    other = TextHold(SCHEMAS)
    assert other.feed("a" * HOLD_CHARS + " <tool_c") == "a" * HOLD_CHARS + " "
    assert other.feed("hest> is not a tag") == "<tool_chest> is not a tag"
    assert not other.suspect


def test_the_detail_carries_no_argument_values() -> None:
    secret = "hunter2-private-value"
    with pytest.raises(Unusable) as info:
        parse_text(f'{{"name": "Read", "arguments": {{"file_path": "/a", "limit": "{secret}"}}}}', SCHEMAS)
    assert secret not in info.value.detail


# --- inside the translator ---------------------------------------------------------------------


def _chunk(content: str | None = None, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(delta)
    if content is not None:
        d["content"] = content
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def _translate(chunks: list[dict[str, Any]], schemas: dict[str, Any] = SCHEMAS) -> tuple[dict[str, Any], Any]:
    t = StreamTranslator(schemas, model="m", text_tools=schemas)
    events = []
    for c in chunks:
        events += t.feed(c)
    events += t.finish()
    return events_to_message(events), t


@pytest.mark.parametrize(("name", "text", "shape", "before", "calls"), SHAPES, ids=[s[0] for s in SHAPES])
def test_translator_emits_repaired_calls_as_tool_use_blocks(
    name: str, text: str, shape: str, before: str, calls: tuple[ToolCall, ...]
) -> None:
    chunks = [_chunk(text[i : i + 3]) for i in range(0, len(text), 3)] + [_chunk(finish="stop")]
    msg, t = _translate(chunks)
    want: list[dict[str, Any]] = [{"type": "text", "text": before.strip()}] if before.strip() else []
    want += [{"type": "tool_use", "name": c.name, "input": c.arguments} for c in calls]
    got = [
        {"type": "text", "text": b["text"].strip()}
        if b["type"] == "text"
        else {k: b[k] for k in ("type", "name", "input")}
        for b in msg["content"]
    ]
    assert got == want
    assert msg["stop_reason"] == "tool_use" and t.repaired == shape
    assert all(b["id"].startswith("toolu_") for b in msg["content"] if b["type"] == "tool_use")


@pytest.mark.parametrize("text", PROSE)
def test_translator_keeps_prose_exactly(text: str) -> None:
    chunks = [_chunk(text[i : i + 5]) for i in range(0, len(text), 5)] + [_chunk(finish="stop")]
    msg, t = _translate(chunks)
    assert msg["content"] == [{"type": "text", "text": text}]
    assert msg["stop_reason"] == "end_turn" and t.repaired is None


def test_translator_without_tools_holds_nothing() -> None:
    t = StreamTranslator((), model="m", text_tools={})
    events = t.feed(_chunk('{"name": "x", "arguments": {}}'))
    assert t.has_content and any(e[0] == "content_block_delta" for e in events)


def test_a_real_tool_call_releases_held_prose_unchanged() -> None:
    call = {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    msg, t = _translate([_chunk("Checking {"), _chunk(tool_calls=[call]), _chunk(finish="tool_calls")])
    assert [b["type"] for b in msg["content"]] == ["text", "tool_use"]
    assert msg["content"][0]["text"] == "Checking {" and t.repaired is None


@pytest.mark.parametrize(
    ("chunks", "cause"),
    [
        ([_chunk("   \n "), _chunk(finish="stop")], "empty-answer"),
        ([_chunk(reasoning_content="thinking hard"), _chunk(finish="stop")], "reasoning-only"),
        ([_chunk("<think>only this</think>\n"), _chunk(finish="stop")], "reasoning-only"),
        ([_chunk(reasoning_content="long thoughts"), _chunk(finish="length")], "length-before-content"),
        ([_chunk("Let me call the tool."), _chunk(finish="tool_calls")], "tool-finish-without-call"),
        ([_chunk('{"name": "Nope", "arguments": {}}'), _chunk(finish="stop")], "text-tool-call-invalid"),
    ],
    ids=["whitespace", "reasoning", "think-tags", "length", "tool-finish", "text-call-invalid"],
)
def test_unusable_answers_raise_their_own_cause(chunks: list[dict[str, Any]], cause: str) -> None:
    with pytest.raises(TranslationError) as info:
        _translate(chunks)
    assert info.value.cause == cause
