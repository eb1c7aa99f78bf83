"""Parse Server-Sent Events and check Anthropic's stream grammar (for assertions in tests).

    events = parse_sse(raw_bytes)                 # [SSEEvent(event="message_start", data="{...}"), ...]
    assert anthropic_grammar_errors(events) == []  # [] when the stream is exactly valid

The grammar (see the field notes): ``message_start``, then per block in order ``content_block_start``
(index 0, 1, 2… never skipped or reused) → deltas of that block's own type → ``content_block_stop``;
then ``message_delta`` (a valid stop_reason) → ``message_stop``; ``ping`` anywhere; nothing after
``message_stop``.  Tool ids must match ``^[a-zA-Z0-9_-]+$``; empty text blocks are errors.
An ``error`` event is reported as an error (pass ``allow_error=True`` to accept one as the end).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
DELTA_FOR_BLOCK = {
    "text": {"text_delta"},
    "tool_use": {"input_json_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "redacted_thinking": set(),
}
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(raw: bytes | str) -> list[SSEEvent]:
    """Split an SSE body into events (``event:`` and joined ``data:`` lines; comments skipped)."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[SSEEvent] = []
    for frame in text.split("\n\n"):
        event: str | None = None
        data: list[str] = []
        for line in frame.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
        if event is not None or data:
            out.append(SSEEvent(event, "\n".join(data)))
    return out


def anthropic_grammar_errors(events: list[SSEEvent], *, allow_error: bool = False) -> list[str]:
    """Every grammar violation found (empty list: the stream is valid)."""
    errs: list[str] = []
    state = "start"  # start → message → block → message → delta → stopped
    next_index = 0
    open_type: str | None = None
    open_len = 0
    for n, ev in enumerate(events):
        try:
            d = ev.json()
        except ValueError:
            errs.append(f"event {n}: data is not JSON: {ev.data[:80]!r}")
            continue
        etype = d.get("type") if isinstance(d, dict) else None
        if ev.event is not None and ev.event != etype:
            errs.append(f"event {n}: 'event: {ev.event}' but data type {etype!r}")
        if etype == "ping":
            continue
        if etype == "error":
            if not allow_error:
                errs.append(f"event {n}: error event {d.get('error')!r}")
            elif state == "start":
                errs.append(f"event {n}: error event before message_start")
            state = "stopped"
            continue
        if state == "stopped":
            errs.append(f"event {n}: {etype} after the stream ended")
            continue
        if etype == "message_start":
            if state != "start":
                errs.append(f"event {n}: second message_start")
            state = "message"
        elif state == "start":
            errs.append(f"event {n}: {etype} before message_start")
        elif etype == "content_block_start":
            if state != "message":
                errs.append(f"event {n}: content_block_start while a block is open or after message_delta")
            if d.get("index") != next_index:
                errs.append(f"event {n}: block index {d.get('index')} (expected {next_index})")
            block = d.get("content_block") or {}
            open_type = block.get("type")
            open_len = 0
            if open_type not in DELTA_FOR_BLOCK:
                errs.append(f"event {n}: unknown block type {open_type!r}")
            if open_type == "tool_use" and not TOOL_ID.match(str(block.get("id", ""))):
                errs.append(f"event {n}: tool id {block.get('id')!r} does not match {TOOL_ID.pattern}")
            next_index += 1
            state = "block"
        elif etype == "content_block_delta":
            delta = d.get("delta") or {}
            if state != "block" or d.get("index") != next_index - 1:
                errs.append(f"event {n}: delta for index {d.get('index')} but open block is "
                            f"{next_index - 1 if state == 'block' else None}")
            elif delta.get("type") not in DELTA_FOR_BLOCK.get(open_type or "", set()):
                errs.append(f"event {n}: {delta.get('type')} inside a {open_type} block")
            open_len += len(str(delta.get("text", "")))
        elif etype == "content_block_stop":
            if state != "block" or d.get("index") != next_index - 1:
                errs.append(f"event {n}: content_block_stop for index {d.get('index')} with no such open block")
            if open_type == "text" and open_len == 0:
                errs.append(f"event {n}: empty text block {next_index - 1}")
            state = "message"
        elif etype == "message_delta":
            if state != "message":
                errs.append(f"event {n}: message_delta while a block is open or twice")
            reason = (d.get("delta") or {}).get("stop_reason")
            if reason not in STOP_REASONS:
                errs.append(f"event {n}: stop_reason {reason!r}")
            state = "delta"
        elif etype == "message_stop":
            if state != "delta":
                errs.append(f"event {n}: message_stop without a message_delta before it")
            state = "stopped"
        else:
            errs.append(f"event {n}: unknown event type {etype!r}")
    if state != "stopped":
        errs.append(f"stream ended in state {state!r} without message_stop")
    return errs
