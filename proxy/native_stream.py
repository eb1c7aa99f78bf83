"""The local server's own Anthropic stream → the chunks :class:`~proxy.openai_stream.StreamTranslator` eats.

A local server's ``/v1/messages`` stream is not relayed as it comes: it is checked event by event
against the Anthropic grammar (:class:`~proxy.stream_grammar.StreamGrammar`: block indices, deltas
of the block's own type, a real stop reason, nothing after the end) and then re-expressed as OpenAI
chunk deltas for the same :class:`StreamTranslator` the OpenAI dialect uses.  So both dialects share
every guard after that: tool names checked against the request, arguments parsed, text held until
it is known not to be a tool call written as text, reasoning dropped (thinking blocks from a local
model carry no genuine signature), empty/whitespace/reasoning-only answers refused, block indices
renumbered by Switchyard and never taken from the server.

:class:`NativeToChunks` raises :class:`~proxy.openai_stream.TranslationError` with cause
``native-grammar`` on a stream that breaks the grammar, or on a block type a local model has no
business sending (server-tool results, citations); the local path falls back before the first byte
or, after it, ends the stream with an ``error`` event and marks the turn.
"""

from __future__ import annotations

from typing import Any

from proxy import jsonio
from proxy.openai_stream import TranslationError
from proxy.stream_grammar import StreamGrammar

Chunk = dict[str, Any]

# Anthropic stop_reason → the OpenAI finish_reason the translator maps back (stop_sequence and the
# others it does not know pass as themselves: StreamTranslator maps them).
_FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
_REASONING_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def _choice(delta: dict[str, Any], finish: str | None = None) -> Chunk:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class NativeToChunks:
    """Feed ``(event name, parsed data)`` in order; get OpenAI-style chunks.  Raises TranslationError."""

    __slots__ = ("_block", "_calls", "_finish", "_grammar", "_tool", "ended")

    def __init__(self) -> None:
        self._grammar = StreamGrammar()
        self._block = ""  # type of the open block
        self._tool: dict[str, Any] = {}  # the open tool_use block: id, name, input parts
        self._calls = 0
        # The finish chunk waits for message_stop: an answer is whole only once the stream has ended
        # properly, and until then the held text has not been committed.
        self._finish: list[Chunk] = []
        self.ended = False

    def feed(self, event: str | None, data: Any) -> list[Chunk]:
        problem = self._grammar.feed(event, data)
        if problem is not None:
            raise TranslationError("native-grammar", problem[:200])
        etype = data["type"]
        if etype == "error":
            err = data.get("error")
            msg = err.get("message") if isinstance(err, dict) else err
            raise TranslationError("upstream-error", str(msg)[:200])
        if etype == "message_start":
            return self._usage(data["message"].get("usage"))
        if etype == "content_block_start":
            return self._start(data["content_block"])
        if etype == "content_block_delta":
            return self._delta(data["delta"])
        if etype == "content_block_stop":
            return self._stop()
        if etype == "message_delta":
            reason = data["delta"]["stop_reason"]
            self._finish = [*self._usage(data.get("usage")), _choice({}, _FINISH.get(reason, reason))]
            return []
        if etype == "message_stop":
            self.ended = True
            return self._finish
        return []  # ping, and event types added to the API later

    def finish(self) -> None:
        """End of the server's stream: raises when it ended before ``message_stop``."""
        problem = self._grammar.finish()
        if problem is not None:
            raise TranslationError("native-grammar", problem[:200])

    def _usage(self, usage: Any) -> list[Chunk]:
        if not isinstance(usage, dict):
            return []
        out: dict[str, Any] = {}
        cached = _count(usage.get("cache_read_input_tokens"))
        if "input_tokens" in usage:
            # The server's input_tokens leaves out what it served from its cache: the prompt is both.
            prompt = _count(usage.get("input_tokens")) + cached + _count(usage.get("cache_creation_input_tokens"))
            out["prompt_tokens"] = prompt
            if "cache_read_input_tokens" in usage:
                out["prompt_tokens_details"] = {"cached_tokens": cached}
        if "output_tokens" in usage and _count(usage["output_tokens"]):
            out["completion_tokens"] = usage["output_tokens"]
        return [{"usage": out}] if out else []

    def _start(self, block: dict[str, Any]) -> list[Chunk]:
        btype = block["type"]
        self._block = btype
        if btype == "text":
            text = block.get("text")
            return [_choice({"content": text})] if isinstance(text, str) and text else []
        if btype == "tool_use":
            initial = block.get("input")
            self._tool = {"id": block.get("id"), "name": block.get("name"), "parts": [], "initial": initial}
            return []
        if btype in _REASONING_BLOCKS:
            return [_choice({"reasoning_content": "…"})]
        raise TranslationError("native-grammar", f"the local server sent a {btype[:40]!r} block")

    def _delta(self, delta: dict[str, Any]) -> list[Chunk]:
        dtype = delta["type"]
        if dtype == "text_delta":
            text = delta.get("text")
            if not isinstance(text, str):
                raise TranslationError("native-grammar", "text_delta without text")
            return [_choice({"content": text})] if text else []
        if dtype == "input_json_delta":
            part = delta.get("partial_json")
            if not isinstance(part, str):
                raise TranslationError("native-grammar", "input_json_delta without partial_json")
            self._tool["parts"].append(part)
            return []
        if dtype == "citations_delta":
            raise TranslationError("native-grammar", "the local server sent citations")
        return []  # thinking_delta / signature_delta: reasoning, dropped

    def _stop(self) -> list[Chunk]:
        btype, self._block = self._block, ""
        if btype != "tool_use":
            return []
        tool, self._tool = self._tool, {}
        args = "".join(tool["parts"])
        if not args.strip() and isinstance(tool["initial"], dict) and tool["initial"]:
            # Clients take the input from the deltas only; a server that put it in the start block
            # would have its call run with {} by Claude Code — say what it meant instead.
            args = jsonio.dumps(tool["initial"]).decode()
        index, self._calls = self._calls, self._calls + 1
        name = tool["name"] if isinstance(tool["name"], str) else ""
        tc_id = tool["id"] if isinstance(tool["id"], str) else ""
        fn = {"name": name, "arguments": args}
        return [_choice({"tool_calls": [{"index": index, "id": tc_id, "function": fn}]})]


def message_to_events(message: Any) -> list[tuple[str, Any]]:
    """A non-streaming Anthropic message → the events a stream of it would have had (so the same
    checks run on both).  Raises TranslationError on a message that is not one."""
    if not isinstance(message, dict) or message.get("type") != "message":
        raise TranslationError("native-grammar", "the local server's answer is not a message object")
    content = message.get("content")
    if not isinstance(content, list):
        raise TranslationError("native-grammar", "the message has no content list")
    raw_usage = message.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    events: list[tuple[str, Any]] = [
        ("message_start", {"type": "message_start", "message": {**message, "content": [], "usage": usage}})
    ]
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise TranslationError("native-grammar", f"content block {i} has no type")
        btype = block["type"]
        if btype == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": block.get("text", "")}]
        elif btype == "tool_use":
            start = {"type": "tool_use", "id": block.get("id", ""), "name": block.get("name"), "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": jsonio.dumps(block.get("input", {})).decode()}]
        elif btype == "thinking":
            start = {"type": "thinking", "thinking": ""}
            deltas = []
        else:
            start, deltas = dict(block), []
        events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": start}))
        for d in deltas:
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")},
                "usage": {"output_tokens": usage.get("output_tokens", 0)},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def native_message_chunks(message: Any) -> list[Chunk]:
    """A non-streaming Anthropic message, checked like a stream, as translator chunks."""
    conv = NativeToChunks()
    chunks: list[Chunk] = []
    for name, data in message_to_events(message):
        chunks += conv.feed(name, data)
    conv.finish()
    return chunks
