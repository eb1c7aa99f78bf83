"""The Anthropic Messages stream grammar, checked one event at a time.

    message_start → ( content_block_start → content_block_delta* → content_block_stop )*
                  → message_delta → message_stop          (ping anywhere before the end)

Block indices are 0, 1, 2… in start order, one block open at a time; a delta belongs to the open
block and has that block's own type (``text_delta`` in a text block, ``input_json_delta`` in a tool
call…); ``message_delta`` carries the stop_reason; nothing follows ``message_stop``.  An ``error``
event ends the stream too.  Clients enforce this: a ``text_delta`` inside a ``tool_use`` block becomes
a tool call with ``input: {}`` in the SDK, a skipped index makes it throw, a stream without a stop
reason is a truncation nobody notices.

:class:`StreamGrammar` is fed each event once, already parsed (the cloud relay parses SSE frames;
the local path holds its events as ``(name, data)`` pairs), and answers ``None`` or a one-line
description of the violation.  It keeps a handful of fields and does a few dict lookups per event,
so it can sit on the hot path of every stream.

What it does not know it lets through, because the API grows: unknown event types (Anthropic's
versioning policy says clients must ignore them), unknown block types (new server-tool result
blocks) with any delta, and any well-formed stop_reason string (``pause_turn``, ``refusal`` and
``model_context_window_exceeded`` were all added after the first release).  What it knows it checks
strictly: a known block gets only its own deltas.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# Deltas each known block type may receive.  Blocks that arrive whole (results, redacted thinking)
# get none.
DELTAS_FOR_BLOCK: dict[str, frozenset[str]] = {
    "text": frozenset({"text_delta", "citations_delta"}),
    "tool_use": frozenset({"input_json_delta"}),
    "server_tool_use": frozenset({"input_json_delta"}),
    "mcp_tool_use": frozenset({"input_json_delta"}),
    "thinking": frozenset({"thinking_delta", "signature_delta"}),
    "redacted_thinking": frozenset(),
    "web_search_tool_result": frozenset(),
    "web_fetch_tool_result": frozenset(),
    "code_execution_tool_result": frozenset(),
    "mcp_tool_result": frozenset(),
}
# Any lowercase identifier: end_turn, max_tokens, stop_sequence, tool_use, pause_turn, refusal,
# model_context_window_exceeded today, more tomorrow.  What matters is that one is there.
_STOP_REASON_RE = re.compile(r"^[a-z][a-z_]{0,63}$")
_TOOL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")

# States: before message_start, in the message with no block open, in a block, after message_delta,
# ended (message_stop or error).
_START, _MESSAGE, _BLOCK, _DELTA, _ENDED = range(5)


class StreamGrammar:
    """Incremental checker for one Anthropic stream (see the module docstring).

    >>> g = StreamGrammar()
    >>> g.feed("message_start", {"type": "message_start", "message": {}}) is None
    True
    >>> g.feed("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text"}})
    'content_block_start has index 1, expected 0'
    """

    __slots__ = ("_block_type", "_index", "_state", "ended", "errored", "started")

    def __init__(self) -> None:
        self._state = _START
        self._index = 0  # the next block's index; the open block is _index - 1
        self._block_type = ""
        #: ``message_start`` has been seen.
        self.started = False
        #: ``message_stop`` or an ``error`` event has been seen: nothing may follow.  (A plain
        #: attribute, not a property: a relay asks once per frame.)
        self.ended = False
        #: The stream was ended by an ``error`` event.
        self.errored = False

    def feed(self, event: str | None, data: Any) -> str | None:
        """Check one event (``event``: the SSE ``event:`` name, if any; ``data``: the parsed JSON)."""
        if not isinstance(data, dict):
            return f"event data is {type(data).__name__}, not a JSON object"
        etype = data.get("type")
        if not isinstance(etype, str):
            return "event data has no string 'type'"
        if event is not None and event != etype:
            return f"'event: {event}' carries data of type {etype!r}"
        if self._state == _ENDED:
            return f"{etype} after the end of the stream"
        if etype == "ping":
            return None
        if etype == "error":
            self._state = _ENDED
            self.ended = self.errored = True
            return None
        if self._state == _START:
            return self._message_start(etype, data)
        handler = _HANDLERS.get(etype)
        if handler is None:
            return None  # an event type added to the API after this was written: clients skip it
        return handler(self, data)

    def finish(self) -> str | None:
        """End of stream: why it is incomplete, or None when it ended properly."""
        if self._state == _ENDED:
            return None
        if self._state == _START:
            return "the stream ended before message_start"
        if self._state == _BLOCK:
            return f"the stream ended inside block {self._index - 1}"
        if self._state == _DELTA:
            return "the stream ended after message_delta, before message_stop"
        return "the stream ended before message_delta (no stop_reason)"

    # ----- one method per event type -----------------------------------------------------------------
    def _message_start(self, etype: str, data: dict[str, Any]) -> str | None:
        if etype != "message_start":
            return f"{etype} before message_start"
        if not isinstance(data.get("message"), dict):
            return "message_start without a message object"
        self._state = _MESSAGE
        self.started = True
        return None

    def _block_start(self, data: dict[str, Any]) -> str | None:
        if self._state == _BLOCK:
            return f"content_block_start while block {self._index - 1} is still open"
        if self._state == _DELTA:
            return "content_block_start after message_delta"
        index = data.get("index")
        if type(index) is not int or index != self._index:
            return f"content_block_start has index {index!r}, expected {self._index}"
        block = data.get("content_block")
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"content_block_start {index} has no block type"
        btype: str = block["type"]
        if btype == "tool_use" and not _TOOL_ID_RE.match(str(block.get("id", ""))):
            return f"tool_use block {index} has an invalid id"
        self._block_type = btype
        self._index += 1
        self._state = _BLOCK
        return None

    def _block_delta(self, data: dict[str, Any]) -> str | None:
        index = data.get("index")
        if self._state != _BLOCK or type(index) is not int or index != self._index - 1:
            return f"content_block_delta for block {index!r}, which is not open"
        delta = data.get("delta")
        dtype = delta.get("type") if isinstance(delta, dict) else None
        if not isinstance(dtype, str):
            return f"content_block_delta {index} has no delta type"
        allowed = DELTAS_FOR_BLOCK.get(self._block_type)
        if allowed is not None and dtype not in allowed:
            return f"{dtype} inside {self._block_type} block {index}"
        return None

    def _block_stop(self, data: dict[str, Any]) -> str | None:
        index = data.get("index")
        if self._state != _BLOCK or type(index) is not int or index != self._index - 1:
            return f"content_block_stop for block {index!r}, which is not open"
        self._state = _MESSAGE
        return None

    def _message_delta(self, data: dict[str, Any]) -> str | None:
        if self._state == _BLOCK:
            return f"message_delta while block {self._index - 1} is still open"
        if self._state == _DELTA:
            return "a second message_delta"
        delta = data.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if not isinstance(reason, str) or not _STOP_REASON_RE.match(reason):
            return f"message_delta has stop_reason {reason!r}"
        self._state = _DELTA
        return None

    def _second_start(self, data: dict[str, Any]) -> str | None:
        return "a second message_start"

    def _message_stop(self, data: dict[str, Any]) -> str | None:
        if self._state != _DELTA:
            return "message_stop without a message_delta before it"
        self._state = _ENDED
        self.ended = True
        return None


_HANDLERS: dict[str, Callable[[StreamGrammar, dict[str, Any]], str | None]] = {
    "message_start": StreamGrammar._second_start,
    "content_block_start": StreamGrammar._block_start,
    "content_block_delta": StreamGrammar._block_delta,
    "content_block_stop": StreamGrammar._block_stop,
    "message_delta": StreamGrammar._message_delta,
    "message_stop": StreamGrammar._message_stop,
}
