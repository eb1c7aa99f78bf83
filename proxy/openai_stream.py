"""OpenAI chat-completion output → Anthropic Messages output (the local path's response side).

:class:`StreamTranslator` is a state machine fed one parsed OpenAI chunk at a time.  Whatever it
emits satisfies the Anthropic stream grammar that Claude Code enforces:

    message_start → (content_block_start → content_block_delta* → content_block_stop)* → message_delta
    → message_stop

with block indices 0, 1, 2… in start order, deltas of the block's own type, no empty (or
whitespace-only) text blocks, and text after a tool call in a new text block.

Decisions, and why:

* Reasoning (``reasoning_content``/``reasoning`` deltas, a leading ``<think>…</think>`` in the text) is
  dropped, never turned into thinking blocks: those would carry no genuine signature and break a later
  replay of the history to Anthropic.
* A text block is opened at its first non-whitespace character; leading whitespace is dropped (it is
  what remains after a stripped ``</think>``, and Anthropic rejects whitespace-only text blocks).
* Tool calls are collected per index (id and name may arrive late; arguments may come as fragments or as
  cumulative snapshots; several calls may interleave) and each is emitted whole — start, one
  ``input_json_delta`` with the complete JSON, stop — once it is known to be complete: when the
  finish_reason arrives, or earlier when the model has moved on (text or another call index) and its
  arguments already parse.  A call is valid only if its name is one of the request's tools and its
  arguments are a JSON object (after a light repair: code fences, trailing commas; empty → ``{}``).
* finish_reason stop → end_turn, length → max_tokens, tool_calls → tool_use (stop with tool calls is
  also tool_use).  An upstream that ends without a finish_reason is a failure, never an end_turn.
* With ``text_tools`` (the request's tools, name → input_schema), text goes through
  :class:`proxy.text_tool_calls.TextHold` first: it is held until it is known not to be a tool call
  written as text, and a valid one is emitted as a tool_use block (``repaired`` names its shape).
* Unusable answers raise with their own cause: nothing at all or only whitespace (``empty-answer``),
  only reasoning (``reasoning-only``), the length limit before any content
  (``length-before-content``), a tool-call finish reason without a call (``tool-finish-without-call``),
  a tool call written as text that cannot be made valid (``text-tool-call-invalid``).
* ``message_delta``/``message_stop`` are emitted by :meth:`StreamTranslator.finish`, called at end of
  upstream, because the usage chunk usually arrives after the finish_reason chunk.

Any problem raises :class:`TranslationError` with a short machine ``cause`` for the decision log.
The server holds its response until :attr:`StreamTranslator.has_content` is true and may fall back to
the cloud on any failure before that.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.text_tool_calls import Found, TextHold, Unusable
from proxy.tool_arguments import MAX_ARGUMENT_DEPTH, nesting_depth, parse_tool_arguments, strict_object

__all__ = ["MAX_ARGUMENT_DEPTH", "nesting_depth", "parse_tool_arguments"]

Event = tuple[str, dict[str, Any]]

_TOOL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_FINISH_MAP = {
    "stop": "end_turn",
    "eos": "end_turn",
    "end_turn": "end_turn",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    # From the local server's own Anthropic stream (proxy.native_stream).
    "stop_sequence": "stop_sequence",
}
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"


class TranslationError(Exception):
    """The local model's output cannot be turned into a valid Anthropic message.

    ``cause`` is one of: ``no-finish-reason``, ``invalid-tool-call``, ``unknown-tool``,
    ``malformed-chunk``, ``empty-answer``, ``reasoning-only``, ``length-before-content``,
    ``tool-finish-without-call``, ``text-tool-call-invalid``, ``upstream-error`` (and, from
    :mod:`proxy.native_stream`, ``native-grammar``).  ``detail`` is short and carries no secret.
    """

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def new_tool_id() -> str:
    return "toolu_" + secrets.token_hex(12)


@dataclass
class _PendingCall:
    index: int
    order: int
    id: str = ""
    name: str = ""
    args: str = ""
    emitted: bool = False
    # Set once another index or text has arrived after this call's last fragment.
    moved_on: bool = False


@dataclass
class _Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    # Prompt tokens the server took from its prefix cache, and the time it spent on the rest
    # (OpenAI's usage.prompt_tokens_details.cached_tokens; llama.cpp's timings.cache_n / prompt_ms).
    cached_tokens: int | None = None
    prefill_ms: float | None = None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class StreamTranslator:
    """Feed OpenAI chunks (parsed dicts) in order; collect Anthropic events ``(name, data)``.

    ``tool_names``: the request's custom tool names (see ``openai_request.request_tool_names``).
    ``model``: the model name reported in ``message_start`` (normally the one the client asked for).
    ``input_tokens``: the caller's estimate for ``message_start`` (the usage chunk's figure, when it
    comes, is reported in ``message_delta``).  ``message_id``: default a fresh ``msg_…``.

    Usage::

        t = StreamTranslator(tool_names, model=body["model"], input_tokens=estimate)
        for chunk in chunks:            # parsed OpenAI chunks
            events += t.feed(chunk)     # may raise TranslationError
            if t.has_content: ...       # safe to start sending to the client
        events += t.finish()            # raises TranslationError("no-finish-reason") on truncation
    """

    def __init__(
        self,
        tool_names: Iterable[str] = (),
        *,
        model: str = "",
        input_tokens: int = 0,
        message_id: str | None = None,
        text_tools: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self.message_id = message_id or new_message_id()
        self._tools = frozenset(tool_names)
        self._started = False
        self._index = -1  # index of the last block opened
        self._open: str | None = None  # "text" while a text block is open
        self._pending_ws = ""  # whitespace held before a text block opens
        self._raw_text = ""  # text not yet classified (a possible "<think>" prefix, or inside one)
        self._in_think = False
        self._calls: dict[int, _PendingCall] = {}
        self._last_call_index: int | None = None
        self._emitted_ids: set[str] = set()
        self._finish: str | None = None
        self._stop_reason: str | None = None
        self._usage = _Usage()
        self._has_content = False
        self._out_chars = 0
        self._tool_blocks = 0
        self._done = False
        self._saw_reasoning = False
        # With the request's tools (name → input_schema): text is held until it is known not to be a
        # tool call written as text (see proxy.text_tool_calls).
        self._hold = TextHold(text_tools) if text_tools else None
        #: The shape of a tool call repaired from text, for the decision log.
        self.repaired: str | None = None

    # ------------------------------------------------------------------ public state

    @property
    def has_content(self) -> bool:
        """True once a non-empty text delta or a complete valid tool call has been emitted."""
        return self._has_content

    @property
    def finished(self) -> bool:
        """True once a finish_reason has been received."""
        return self._finish is not None

    @property
    def stop_reason(self) -> str | None:
        """The Anthropic stop_reason, known once a finish_reason has been received."""
        return self._stop_reason

    @property
    def output_tokens(self) -> int:
        """From the usage chunk when one came, else a rough estimate (4 characters a token)."""
        if self._usage.output_tokens is not None:
            return self._usage.output_tokens
        return (self._out_chars + 3) // 4

    @property
    def upstream_input_tokens(self) -> int | None:
        """``prompt_tokens`` from the usage chunk, if any."""
        return self._usage.input_tokens

    @property
    def block_count(self) -> int:
        return self._index + 1

    # ------------------------------------------------------------------ feeding

    def start(self) -> list[Event]:
        """The ``message_start`` event (emitted once; ``feed`` calls it implicitly)."""
        if self._started:
            return []
        self._started = True
        return [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": self.message_id,
                        "type": "message",
                        "role": "assistant",
                        "model": self.model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
                    },
                },
            )
        ]

    def feed(self, chunk: Any) -> list[Event]:
        """Translate one OpenAI chunk.  Raises :class:`TranslationError` on invalid input."""
        if self._done:
            raise TranslationError("malformed-chunk", "chunk after end of stream")
        out = self.start()
        if not isinstance(chunk, dict):
            raise TranslationError("malformed-chunk", f"chunk is a {type(chunk).__name__}, not an object")
        if chunk.get("error") is not None:
            raise TranslationError("upstream-error", _error_text(chunk["error"]))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._take_usage(usage)
        timings = chunk.get("timings")
        if isinstance(timings, dict):
            self._take_timings(timings)
        choices = chunk.get("choices")
        if choices is None:
            return out
        if not isinstance(choices, list):
            raise TranslationError("malformed-chunk", "'choices' is not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise TranslationError("malformed-chunk", "a choice is not an object")
            if choice.get("index", 0) != 0:
                continue  # n > 1 is never requested; ignore extra choices
            delta = choice.get("delta")
            if delta is None:
                delta = choice.get("message")  # a few servers put the final message here
            if delta is not None and not isinstance(delta, dict):
                raise TranslationError("malformed-chunk", "'delta' is not an object")
            if delta:
                self._delta(delta, out)
            reason = choice.get("finish_reason")
            if reason is not None:
                if not isinstance(reason, str):
                    raise TranslationError("malformed-chunk", "'finish_reason' is not a string")
                self._on_finish(reason, out)
        return out

    def finish(self) -> list[Event]:
        """End of upstream ([DONE] or EOF): the closing ``message_delta`` and ``message_stop``."""
        if self._done:
            return []
        if self._finish is None:
            raise TranslationError("no-finish-reason", "upstream ended without a finish_reason")
        out = self.start()
        self._done = True
        usage: dict[str, Any] = {"output_tokens": self.output_tokens}
        if self._usage.input_tokens is not None:
            usage["input_tokens"] = self._usage.input_tokens
        out.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                    "usage": usage,
                },
            )
        )
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    # ------------------------------------------------------------------ internals

    def _take_usage(self, usage: dict[str, Any]) -> None:
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if _count(prompt):
            self._usage.input_tokens = prompt
        if _count(completion):
            self._usage.output_tokens = completion
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and _count(details.get("cached_tokens")):
            self._usage.cached_tokens = details["cached_tokens"]

    def _take_timings(self, timings: dict[str, Any]) -> None:
        if _count(timings.get("cache_n")):
            self._usage.cached_tokens = timings["cache_n"]
        ms = timings.get("prompt_ms")
        if isinstance(ms, int | float) and not isinstance(ms, bool) and ms >= 0:
            self._usage.prefill_ms = float(ms)

    @property
    def cached_tokens(self) -> int | None:
        """Prompt tokens the local server served from its prefix cache, when it said."""
        return self._usage.cached_tokens

    @property
    def prefill_ms(self) -> float | None:
        """Time the local server spent evaluating the prompt, when it said (llama.cpp)."""
        return self._usage.prefill_ms

    def _delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        # reasoning_content / reasoning are ignored on purpose (see module docstring), but an
        # answer that is nothing else is told apart from an empty one.
        if delta.get("reasoning_content") or delta.get("reasoning"):
            self._saw_reasoning = True
        content = delta.get("content")
        tool_calls = delta.get("tool_calls")
        if content is not None and not isinstance(content, str):
            raise TranslationError("malformed-chunk", "'content' is not a string")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise TranslationError("malformed-chunk", "'tool_calls' is not a list")
        if self._finish is not None and (content or tool_calls):
            raise TranslationError("malformed-chunk", "content after finish_reason")
        if content:
            self._text(content, out)
        if tool_calls:
            for tc in tool_calls:
                self._tool_fragment(tc, out)

    # --- text

    def _text(self, text: str, out: list[Event]) -> None:
        if self._in_think or self._open is None:
            text = self._strip_think(text)
            if not text:
                return
        self._held_text(text, out)

    def _held_text(self, text: str, out: list[Event]) -> None:
        if self._hold is not None:
            text = self._hold.feed(text)
            if not text:
                return
        self._emit_text(text, out)

    def _release_hold(self, out: list[Event]) -> None:
        """The model made a real tool call: text it held is prose, and text from now on passes."""
        if self._hold is not None:
            held = self._hold.release()
            if held:
                self._emit_text(held, out)

    def _finish_hold(self, out: list[Event]) -> None:
        """End of the answer: held text is released as text, or becomes the calls it wrote."""
        if self._hold is None:
            return
        try:
            result = self._hold.finish()
        except Unusable as exc:
            raise TranslationError(exc.cause, exc.detail) from None
        if isinstance(result, str):
            if result:
                self._emit_text(result, out)
            return
        self._emit_found(result, out)

    def _emit_found(self, found: Found, out: list[Event]) -> None:
        if found.before.strip():
            self._emit_text(found.before, out)
        for tc in found.calls:
            call = _PendingCall(index=-1 - len(self._calls), order=len(self._calls), name=tc.name)
            self._calls[call.index] = call
            self._emit_call(call, out, args=tc.arguments)
        if found.after.strip():
            self._emit_text(found.after, out)
        self.repaired = found.shape

    def _emit_text(self, text: str, out: list[Event]) -> None:
        if self._open != "text":
            if not text.strip():
                self._pending_ws += text
                return
            # The model has moved on from any tool call: emit those already complete, in order.
            self._mark_moved_on(None)
            self._emit_ready_calls(out)
            # Leading whitespace of a block is dropped; whitespace inside the block is kept.
            text = (self._pending_ws + text).lstrip()
            self._pending_ws = ""
            self._open_block({"type": "text", "text": ""}, "text", out)
        self._out_chars += len(text)
        out.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": self._index,
                    "delta": {"type": "text_delta", "text": text},
                },
            )
        )
        self._has_content = True

    def _flush_held_text(self, out: list[Event]) -> None:
        """A held "<thi"-like prefix that never became a tag is ordinary text; an open think ends."""
        held, self._raw_text = self._raw_text, ""
        if self._in_think:
            self._in_think = False
        elif held:
            self._held_text(held, out)

    def _strip_think(self, text: str) -> str:
        """Drop a ``<think>…</think>`` that starts a text segment, tags possibly split across chunks.

        Only called while no text block is open (or inside a think section), so a ``<think>`` in the
        middle of an answer (e.g. the model writing about tags) is left alone.
        """
        buf = self._raw_text + text
        self._raw_text = ""
        result = ""
        while buf:
            if self._in_think:
                end = buf.find(_THINK_CLOSE)
                if end < 0:
                    # Keep a tail that may be the start of "</think>".
                    self._raw_text = _partial_suffix(buf, _THINK_CLOSE)
                    return result
                self._in_think = False
                buf = buf[end + len(_THINK_CLOSE) :]
                continue
            stripped = buf.lstrip()
            if not stripped:
                return result + buf
            if stripped.startswith(_THINK_OPEN):
                self._in_think = True
                self._saw_reasoning = True
                # Whitespace before <think> is dropped with it.
                buf = stripped[len(_THINK_OPEN) :]
                continue
            if _THINK_OPEN.startswith(stripped):
                # Could still become "<think>": wait for more.
                self._raw_text = buf
                return result
            return result + buf
        return result

    # --- tool calls

    def _tool_fragment(self, tc: Any, out: list[Event]) -> None:
        if not isinstance(tc, dict):
            raise TranslationError("malformed-chunk", "a tool call delta is not an object")
        fn = tc.get("function") or {}
        if not isinstance(fn, dict):
            raise TranslationError("malformed-chunk", "tool call 'function' is not an object")
        tc_id = tc.get("id")
        name = fn.get("name")
        args = fn.get("arguments")
        if isinstance(args, dict):
            # Some servers (older Ollama) send the arguments already parsed.
            try:
                args = json.dumps(args, ensure_ascii=False)
            except RecursionError:
                raise TranslationError("invalid-tool-call", "tool call arguments are nested too deeply") from None
        for value, what in ((tc_id, "id"), (name, "name"), (args, "arguments")):
            if value is not None and not isinstance(value, str):
                raise TranslationError("malformed-chunk", f"tool call {what} is not a string")
        index = tc.get("index")
        if index is None:
            index = self._guess_index(tc_id)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise TranslationError("malformed-chunk", "tool call index is not a non-negative integer")

        call = self._calls.get(index)
        if call is None:
            call = _PendingCall(index=index, order=len(self._calls))
            self._calls[index] = call
        if index != self._last_call_index:
            self._mark_moved_on(index)
            self._last_call_index = index
        # Any text block (and any unterminated think section) is over once a tool call starts.
        self._flush_held_text(out)
        self._release_hold(out)
        self._close_open_text(out)

        if call.emitted:
            # After emission only repeats are acceptable: an equal snapshot, whitespace, a repeated id/name.
            if args and args.strip() and args != call.args:
                raise TranslationError("invalid-tool-call", f"arguments for call {index} continued after completion")
            if name and name != call.name:
                raise TranslationError("invalid-tool-call", f"name of call {index} changed after completion")
            return
        if tc_id and not call.id:
            call.id = tc_id
        if name:
            # Repeated or cumulative names replace; genuine fragments append.
            call.name = name if name.startswith(call.name) else call.name + name
        if args:
            # A fragment that starts with everything so far is a cumulative snapshot.
            call.args = args if call.args and args.startswith(call.args) else call.args + args
        self._emit_ready_calls(out)

    def _guess_index(self, tc_id: Any) -> int:
        if isinstance(tc_id, str) and tc_id:
            for call in self._calls.values():
                if call.id == tc_id:
                    return call.index
            return max(self._calls, default=-1) + 1
        return self._last_call_index if self._last_call_index is not None else 0

    def _mark_moved_on(self, current: int | None) -> None:
        for call in self._calls.values():
            if call.index != current:
                call.moved_on = True

    def _emit_ready_calls(self, out: list[Event]) -> None:
        # In call order, stopping at the first call not yet complete: blocks keep the model's order.
        for call in sorted(self._calls.values(), key=lambda c: c.order):
            if call.emitted:
                continue
            if not (call.moved_on and call.name and strict_object(call.args)):
                break
            self._emit_call(call, out)

    def _emit_call(self, call: _PendingCall, out: list[Event], args: dict[str, Any] | None = None) -> None:
        name = call.name.strip()
        if not name:
            raise TranslationError("invalid-tool-call", f"call {call.index} has no name")
        if name not in self._tools:
            raise TranslationError("unknown-tool", f"model called {name[:80]!r}, not one of the request's tools")
        if args is None:
            try:
                args = parse_tool_arguments(call.args)
            except ValueError as exc:
                raise TranslationError(
                    "invalid-tool-call", f"arguments of {name[:80]!r} are not a JSON object: {str(exc)[:120]}"
                ) from None
        tool_id = call.id if _TOOL_ID_RE.match(call.id) and call.id not in self._emitted_ids else new_tool_id()
        self._emitted_ids.add(tool_id)
        self._close_open_text(out)
        self._open_block({"type": "tool_use", "id": tool_id, "name": name, "input": {}}, "tool_use", out)
        payload = json.dumps(args, ensure_ascii=False, separators=(",", ":"))
        self._out_chars += len(payload) + len(name)
        out.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": self._index,
                    "delta": {"type": "input_json_delta", "partial_json": payload},
                },
            )
        )
        self._close_block(out)
        call.emitted = True
        self._tool_blocks += 1
        self._has_content = True

    # --- blocks

    def _open_block(self, block: dict[str, Any], kind: str, out: list[Event]) -> None:
        self._index += 1
        self._open = kind
        out.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )

    def _close_block(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
            self._open = None

    def _close_open_text(self, out: list[Event]) -> None:
        # Whitespace held before a block that never opened is dropped with it.
        self._pending_ws = ""
        if self._open == "text":
            self._close_block(out)

    def _on_finish(self, reason: str, out: list[Event]) -> None:
        if self._finish is not None:
            return  # a repeated finish chunk (some servers send one per choice/usage)
        self._flush_held_text(out)
        for call in sorted(self._calls.values(), key=lambda c: c.order):
            if not call.emitted:
                self._emit_call(call, out)
        self._finish_hold(out)
        self._close_block(out)
        self._pending_ws = ""
        self._finish = reason
        mapped = _FINISH_MAP.get(reason, "end_turn")
        if self._tool_blocks and mapped == "end_turn":
            mapped = "tool_use"
        self._stop_reason = mapped
        if self._index < 0:
            raise TranslationError(*empty_cause(mapped, self._saw_reasoning, reason))
        if mapped == "tool_use" and not self._tool_blocks:
            raise TranslationError("tool-finish-without-call", f"finish_reason {reason!r} without a tool call")


def empty_cause(stop_reason: str, saw_reasoning: bool, reason: str) -> tuple[str, str]:
    """Why an answer without any text or tool call is unusable: (cause, detail)."""
    if stop_reason == "max_tokens":
        return "length-before-content", f"the length limit ({reason!r}) came before any text or tool call"
    if saw_reasoning:
        return "reasoning-only", "the answer held only reasoning, no text or tool call"
    return "empty-answer", f"finish_reason {reason!r} without any text or tool call"


def _partial_suffix(buf: str, tag: str) -> str:
    """The longest suffix of ``buf`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(buf)), 0, -1):
        if tag.startswith(buf[-n:]):
            return buf[-n:]
    return ""


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        msg = err.get("message") or err.get("type") or "error"
        return str(msg)[:200]
    return str(err)[:200]


def events_to_message(events: Iterable[Event]) -> dict[str, Any]:
    """Accumulate translator events into one Anthropic message JSON (for non-streaming replies)."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in events:
        if name == "message_start":
            message = dict(data["message"])
            message["content"] = []
            message["usage"] = dict(message["usage"])
        elif name == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block = message["content"][data["index"]]
            delta = data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "content_block_stop":
            idx = data["index"]
            if idx in partial:
                message["content"][idx]["input"] = json.loads(partial.pop(idx))
        elif name == "message_delta":
            message["stop_reason"] = data["delta"]["stop_reason"]
            message["stop_sequence"] = data["delta"]["stop_sequence"]
            message["usage"].update(data["usage"])
    return message


def translate_completion(
    completion: Any,
    tool_names: Iterable[str],
    *,
    model: str,
    input_tokens: int = 0,
    message_id: str | None = None,
    text_tools: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], StreamTranslator]:
    """One OpenAI chat completion (non-streaming) → one Anthropic message JSON, and the translator
    that made it (its ``repaired``, token figures).

    It runs the completion through :class:`StreamTranslator` as a single chunk, so validation and
    cleanup are exactly those of the streaming path.  Raises :class:`TranslationError`.
    """
    if not isinstance(completion, dict):
        raise TranslationError("malformed-chunk", "completion is not an object")
    if completion.get("error") is not None:
        raise TranslationError("upstream-error", _error_text(completion["error"]))
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        raise TranslationError("malformed-chunk", "completion has no choices")
    first = choices[0]
    if not isinstance(first, dict):
        raise TranslationError("malformed-chunk", "a choice is not an object")
    msg = first.get("message")
    if not isinstance(msg, dict):
        raise TranslationError("malformed-chunk", "choice has no 'message' object")
    delta: dict[str, Any] = {"content": msg.get("content")}
    calls = msg.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise TranslationError("malformed-chunk", "'tool_calls' is not a list")
        delta["tool_calls"] = [({**tc, "index": n} if isinstance(tc, dict) else tc) for n, tc in enumerate(calls)]
    chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": delta, "finish_reason": first.get("finish_reason")}]}
    if isinstance(completion.get("usage"), dict):
        chunk["usage"] = completion["usage"]
    if isinstance(completion.get("timings"), dict):
        chunk["timings"] = completion["timings"]
    return translate_chunks(
        [chunk], tool_names, model=model, input_tokens=input_tokens, message_id=message_id, text_tools=text_tools
    )


def translate_chunks(
    chunks: Iterable[dict[str, Any]],
    tool_names: Iterable[str],
    *,
    model: str,
    input_tokens: int = 0,
    message_id: str | None = None,
    text_tools: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], StreamTranslator]:
    """A whole answer's chunks → one Anthropic message JSON (with the server's own prompt count when it
    gave one), and the translator that made it: every non-streamed answer, either dialect."""
    translator = StreamTranslator(
        tool_names,
        model=model,
        input_tokens=input_tokens,
        message_id=message_id or new_message_id(),
        text_tools=text_tools,
    )
    events: list[Event] = []
    for chunk in chunks:
        events += translator.feed(chunk)
    events += translator.finish()
    message = events_to_message(events)
    if translator.upstream_input_tokens is not None:
        message["usage"]["input_tokens"] = translator.upstream_input_tokens
    return message, translator


def completion_to_message(
    completion: Any,
    tool_names: Iterable[str],
    *,
    model: str,
    input_tokens: int = 0,
    message_id: str | None = None,
    text_tools: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`translate_completion`'s message alone."""
    message, _ = translate_completion(
        completion, tool_names, model=model, input_tokens=input_tokens, message_id=message_id, text_tools=text_tools
    )
    return message
