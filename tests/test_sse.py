"""SSE decoder, encoder and frame splitter: every split point, every line ending, comments, multi-line data, EOF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.sse import FrameSplitter, SSEDecodeError, SSEDecoder, SSEEvent, encode_event, parse_frame

STREAM = (
    b": keep-alive comment\n"
    b"event: message_start\n"
    b'data: {"type":"message_start","text":"h\xc3\xa9llo \xe2\x82\xac"}\n'
    b"\n"
    b"data: first line\n"
    b"data: second line\n"
    b"data:no space\n"
    b"\n"
    b"id: 7\n"
    b"retry: 100\n"
    b"unknown: field\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    SSEEvent("message_start", '{"type":"message_start","text":"héllo €"}'),
    SSEEvent(None, "first line\nsecond line\nno space"),
    SSEEvent(None, "[DONE]", id="7"),
]


def decode_all(parts: list[bytes]) -> list[SSEEvent]:
    d = SSEDecoder()
    out: list[SSEEvent] = []
    for p in parts:
        out.extend(d.feed(p))
    out.extend(d.flush())
    return out


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_two_way_split_decodes_the_same(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    assert decode_all([stream]) == EXPECTED
    for i in range(len(stream) + 1):
        assert decode_all([stream[:i], stream[i:]]) == EXPECTED, f"split at {i}"


def test_byte_at_a_time_with_crlf() -> None:
    stream = STREAM.replace(b"\n", b"\r\n")
    assert decode_all([stream[i : i + 1] for i in range(len(stream))]) == EXPECTED


def test_events_come_out_as_soon_as_complete() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: a\n") == []
    assert d.feed(b"\n") == [SSEEvent(None, "a")]
    assert d.feed(b"data: b\n\ndata: c") == [SSEEvent(None, "b")]
    assert d.flush() == [SSEEvent(None, "c")]


def test_final_event_without_blank_line_is_dispatched_at_flush() -> None:
    assert decode_all([b'data: {"x":1}\n']) == [SSEEvent(None, '{"x":1}')]
    assert decode_all([b'data: {"x":1}']) == [SSEEvent(None, '{"x":1}')]
    assert decode_all([b'data: {"x":1}\r']) == [SSEEvent(None, '{"x":1}')]


def test_comments_and_blank_lines_alone_dispatch_nothing() -> None:
    assert decode_all([b": ping\n\n\n: another\n\n"]) == []


def test_event_without_data_is_still_dispatched() -> None:
    assert decode_all([b"event: ping\n\n"]) == [SSEEvent("ping", "")]


def test_empty_data_line_dispatches_empty_data() -> None:
    assert decode_all([b"data:\n\n"]) == [SSEEvent(None, "")]


def test_invalid_utf8_raises_decode_error() -> None:
    d = SSEDecoder()
    with pytest.raises(SSEDecodeError):
        d.feed(b"data: \xff\xfe\n\n")


def test_json_helper() -> None:
    assert SSEEvent(None, '{"a": [1]}').json() == {"a": [1]}


def test_encode_event_is_compact_and_round_trips() -> None:
    data = {"type": "content_block_delta", "delta": {"text": "line1\nline2\r\u2028é"}}
    raw = encode_event("content_block_delta", data)
    assert raw.startswith(b"event: content_block_delta\ndata: {")
    assert raw.endswith(b"}\n\n")
    assert b", " not in raw and b": " not in raw.split(b"\n")[1][6:]
    assert raw.count(b"\n") == 3
    (ev,) = decode_all([raw])
    assert ev.event == "content_block_delta"
    assert json.loads(ev.data) == data


def test_encode_event_survives_lone_surrogate() -> None:
    data = {"text": json.loads('"\\ud800"')}
    (ev,) = decode_all([encode_event("x", data)])
    assert json.loads(ev.data) == data


# ----- FrameSplitter / parse_frame: the cloud relay's whole-frame cutting ---------------------------
RECORDED = (Path(__file__).parent / "data" / "litellm_stream_tool_use.sse").read_bytes()
RECORDED_FRAMES = RECORDED.split(b"\n\n")[:-1]


def split_all(pieces: list[bytes]) -> tuple[list[bytes], bytes]:
    s = FrameSplitter()
    out = [f for piece in pieces for f in s.feed(piece)]
    return out + s.end(), s.pending


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_splitter_gives_the_same_frames_at_every_split_point(newline: bytes) -> None:
    raw = RECORDED.replace(b"\n", newline)
    for cut in range(len(raw) + 1):
        assert split_all([raw[:cut], raw[cut:]]) == (RECORDED_FRAMES, b""), cut


def test_splitter_keeps_an_unfinished_frame_pending() -> None:
    cut = len(RECORDED_FRAMES[0]) + 2 + 20
    frames_out, pending = split_all([RECORDED[:cut]])
    assert frames_out == RECORDED_FRAMES[:1] and pending == RECORDED[len(RECORDED_FRAMES[0]) + 2 : cut]
    # The JSON complete but the blank line missing is still unfinished.
    frames_out, pending = split_all([RECORDED[: len(RECORDED_FRAMES[0]) + 1]])
    assert frames_out == [] and pending == RECORDED_FRAMES[0] + b"\n"


def test_splitter_byte_at_a_time_and_blank_line_runs() -> None:
    assert split_all([bytes([b]) for b in RECORDED]) == (RECORDED_FRAMES, b"")
    assert split_all([b"\n\n\n\nevent: ping\ndata: {}\n\n\n\n"]) == ([b"event: ping\ndata: {}"], b"")


@pytest.mark.parametrize(
    ("frame", "parsed"),
    [
        (b'event: ping\ndata: {"type":"ping"}', ("ping", b'{"type":"ping"}')),
        (b"event:ping\ndata:{}", ("ping", b"{}")),
        (b": keep-alive", (None, None)),
        (b": c\nevent: x\ndata: a\ndata: b", ("x", b"a\nb")),
        (b"data: {}", (None, b"{}")),
        (b"event: lonely", ("lonely", None)),
        (b"event: caf\xc3\n data: {}", ("caf\ufffd", None)),
    ],
)
def test_parse_frame(frame: bytes, parsed: tuple[str | None, bytes | None]) -> None:
    assert parse_frame(frame) == parsed
