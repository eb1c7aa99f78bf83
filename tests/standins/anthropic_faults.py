"""Ways to break an Anthropic stream, for the cloud fault suite (``tests/test_cloud_faults.py``).

A stream is handled as its frames: ``frames(raw)`` splits recorded SSE bytes into ``(name, data)``
pairs, ``encode(frames)`` writes them back byte for byte in Anthropic's framing.  Each entry of
:data:`VIOLATIONS` turns a valid stream (one text block, then one tool_use block) into one that
breaks the grammar in one way; :func:`boundaries` and :func:`inner_offsets` give byte offsets to cut,
stall or garble at.  Send the result with ``RawReply(body, fault=Fault(...))``.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable
from typing import Any

from .base import sse_event

Frame = tuple[str, dict[str, Any]]


def frames(raw: bytes) -> list[Frame]:
    """``event:``/``data:`` pairs of a well-formed Anthropic SSE body."""
    out: list[Frame] = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = "", ""
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data = value
        out.append((name, json.loads(data)))
    return out


def encode(fs: list[Frame]) -> bytes:
    return b"".join(sse_event(name, data) for name, data in fs)


def boundaries(raw: bytes) -> list[int]:
    """Every frame boundary: 0, the end of each frame."""
    out = [0]
    pos = raw.find(b"\n\n")
    while pos >= 0:
        out.append(pos + 2)
        pos = raw.find(b"\n\n", pos + 2)
    return out


def inner_offsets(raw: bytes) -> list[int]:
    """A few offsets inside each frame: 1 byte in, inside the data line, and 1 and 2 bytes short of
    its end (the JSON complete, the blank line missing)."""
    bs = boundaries(raw)
    out: list[int] = []
    for start, end in itertools.pairwise(bs):
        data_at = raw.find(b"\ndata: ", start, end) + 7
        out += sorted({start + 1, data_at + (end - data_at) // 2, end - 2, end - 1})
    return out


# ----- grammar violations -------------------------------------------------------------------------
def _index_of(fs: list[Frame], name: str, index: int | None = None, nth: int = 0) -> int:
    found = [i for i, (n, d) in enumerate(fs) if n == name and (index is None or d.get("index") == index)]
    return found[nth]


def _tool_index(fs: list[Frame]) -> int:
    starts = [d for n, d in fs if n == "content_block_start" and d["content_block"]["type"] == "tool_use"]
    index: int = starts[0]["index"]
    return index


def _tool_input_as_text(fs: list[Frame]) -> list[Frame]:
    """What LiteLLM has been reported to send: the tool's arguments as text_delta."""
    tool = _tool_index(fs)
    out = copy.deepcopy(fs)
    for _, d in out:
        if d.get("type") == "content_block_delta" and d["index"] == tool:
            d["delta"] = {"type": "text_delta", "text": d["delta"]["partial_json"]}
    return out


def _renumber_tool_block(fs: list[Frame]) -> list[Frame]:
    tool = _tool_index(fs)
    out = copy.deepcopy(fs)
    for _, d in out:
        if d.get("index") == tool:
            d["index"] = tool + 1
    return out


def _text_delta(index: int, text: str) -> Frame:
    delta = {"type": "text_delta", "text": text}
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def _delta_after_stop(fs: list[Frame]) -> list[Frame]:
    at = _index_of(fs, "content_block_stop", 0) + 1
    return [*fs[:at], _text_delta(0, "!"), *fs[at:]]


def _delta_before_start(fs: list[Frame]) -> list[Frame]:
    at = _index_of(fs, "content_block_start", 0)
    return [*fs[:at], _text_delta(0, "?"), *fs[at:]]


def _without(name: str, index: int | None = None) -> Callable[[list[Frame]], list[Frame]]:
    def edit(fs: list[Frame]) -> list[Frame]:
        at = _index_of(fs, name, index)
        return [*fs[:at], *fs[at + 1 :]]

    return edit


def _stop_reason(value: Any, drop: bool = False) -> Callable[[list[Frame]], list[Frame]]:
    def edit(fs: list[Frame]) -> list[Frame]:
        out = copy.deepcopy(fs)
        delta = out[_index_of(out, "message_delta")][1]["delta"]
        if drop:
            del delta["stop_reason"]
        else:
            delta["stop_reason"] = value
        return out

    return edit


def _after_stop(fs: list[Frame]) -> list[Frame]:
    start = {"type": "content_block_start", "index": 9, "content_block": {"type": "text", "text": ""}}
    return [*fs, ("content_block_start", start), _text_delta(9, "x")]


def _second_message_start(fs: list[Frame]) -> list[Frame]:
    at = _index_of(fs, "content_block_stop", 0) + 1
    return [*fs[:at], fs[0], *fs[at:]]


def _name_mismatch(fs: list[Frame]) -> list[Frame]:
    at = _index_of(fs, "content_block_delta", 0)
    return [*fs[:at], ("content_block_stop", fs[at][1]), *fs[at + 1 :]]


def _json_delta_in_text(fs: list[Frame]) -> list[Frame]:
    out = copy.deepcopy(fs)
    d = out[_index_of(out, "content_block_delta", 0)][1]
    d["delta"] = {"type": "input_json_delta", "partial_json": d["delta"]["text"]}
    return out


def _bad_tool_id(fs: list[Frame]) -> list[Frame]:
    out = copy.deepcopy(fs)
    out[_index_of(out, "content_block_start", _tool_index(out))][1]["content_block"]["id"] = "toolu 01/bad"
    return out


VIOLATIONS: dict[str, Callable[[list[Frame]], list[Frame]]] = {
    "text_delta inside tool_use": _tool_input_as_text,
    "input_json_delta inside text": _json_delta_in_text,
    "skipped block index": _renumber_tool_block,
    "delta for a closed block": _delta_after_stop,
    "delta before its block starts": _delta_before_start,
    "block started while one is open": _without("content_block_stop", 0),
    "no content_block_stop before message_delta": _without("content_block_stop", 1),
    "stop_reason null": _stop_reason(None),
    "stop_reason missing": _stop_reason(None, drop=True),
    "stop_reason not a string": _stop_reason(42),
    "no message_delta": _without("message_delta"),
    "no message_stop": _without("message_stop"),
    "no message_start": _without("message_start"),
    "second message_start": _second_message_start,
    "event name differs from data type": _name_mismatch,
    "invalid tool id": _bad_tool_id,
    "events after message_stop": _after_stop,
}


def garbles(raw: bytes) -> dict[str, tuple[int, bytes]]:
    """Byte edits that a client cannot take for valid data: (offset, replacement) by name."""
    first_delta = raw.find(b"event: content_block_delta")
    tool_delta = raw.find(b'"input_json_delta","partial_json":"{')
    stop = raw.find(b"event: message_stop")
    return {
        "data JSON brace garbled": (raw.find(b"data: {", first_delta) + 6, b"x"),
        "frame terminator garbled (frames merge)": (raw.find(b"\n\n", first_delta) + 1, b"X"),
        "block index digit garbled": (raw.find(b'"index":0', first_delta) + 8, b"5"),
        "delta type garbled": (raw.find(b'"text_delta"', first_delta) + 9, b"x"),
        "event name garbled": (first_delta + len("event: content_block_del"), b"7"),
        "tool JSON delta type garbled": (tool_delta + 2, b"Z"),
        "message_stop name garbled": (stop + len("event: message_s"), b"k"),
    }
