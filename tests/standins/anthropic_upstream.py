"""A stand-in Anthropic Messages API server (what LiteLLM's ``anthropic/NAME`` entries forward to).

Endpoints: ``POST /v1/messages`` (streaming and not; any query string ignored),
``POST /v1/messages/count_tokens`` (a rough estimate), ``HEAD /`` and ``GET /`` (200).
Every request is recorded (tag ``"messages"``, ``"count_tokens"`` or ``""``).

Scripting: replies are taken from a FIFO queue; when it is empty the ``default`` reply is used
(by default a short text), or the ``responder`` callable if one is set::

    up = AnthropicUpstream().start()
    up.script(text_reply("Hello"))                      # next request: a text answer
    up.script(tool_use_reply("Write", {"file_path": "/tmp/x", "content": "hi"}), text_reply("Done."))
    up.script(*[error_reply(429, retry_after=0)] * 2)   # first two requests: 429, then the default
    up.fail_next(2, status=529)                          # same thing, shorter
    up.script(text_reply("partial answer", drop_after_events=4))  # TCP drop mid-stream
    up.responder = lambda rec: text_reply(f"you sent {len(rec.body)} bytes")

Faults at any byte (offsets count body bytes; see :class:`Fault`)::

    up.script(text_reply("hi", fault=Fault(cut_at=300)))           # close the connection after 300 bytes
    up.script(text_reply("hi", fault=Fault(stall_at=120)))         # stop sending at byte 120 (until the client leaves)
    up.script(text_reply("hi", stream=False, fault=Fault(length=True, cut_at=40)))  # half a Content-Length
    up.script(RawReply(b"".join(frames), fault=Fault(garble=((17, b"X"),))))         # exact bytes, garbled
    up.disconnects                                                  # requests whose client left mid-reply

A :class:`Reply` streams as exactly valid Anthropic SSE (message_start, one ping, each block's
start/delta*/stop with indices 0, 1, 2…, message_delta with stop_reason and usage, message_stop)
or, for non-streaming requests, as the equivalent JSON message.  The reply's ``model`` defaults to
the request's ``model``.  ``stop_reason`` defaults to ``tool_use`` when a tool_use block is present,
else ``end_turn``.  :class:`ErrorReply` answers a real HTTP status with Anthropic error JSON
(and ``retry-after`` when given).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .base import RecordedRequest, StandinServer, sse_event

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class TextBlock:
    text: str


@dataclass(frozen=True)
class ToolUseBlock:
    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: f"toolu_{uuid.uuid4().hex[:24]}")


@dataclass(frozen=True)
class ThinkingBlock:
    thinking: str
    signature: str = "c3RhbmQtaW4tc2lnbmF0dXJl"  # opaque to clients; base64 of "stand-in-signature"


Block = TextBlock | ToolUseBlock | ThinkingBlock


@dataclass(frozen=True)
class Fault:
    """How the stand-in mangles a body on the wire.  Offsets count body bytes (not HTTP framing).

    - ``garble``: overwrite bytes at these offsets first (``((offset, b"replacement"), ...)``).
    - ``stall_at``: once this many bytes are sent, send nothing for ``stall_s`` seconds (None: until
      the client leaves or the server stops), then go on.
    - ``cut_at``: once this many bytes are sent, close the connection (after flushing what was written).
    - ``length``: send a Content-Length header (the true length) instead of chunked framing;
      ``content_length``: send this Content-Length instead, a lie.  A connection whose body did not
      match its Content-Length is closed at the end.
    - ``chunk_size``: write the body in pieces of this many bytes (0: in one piece).
    """

    cut_at: int | None = None
    stall_at: int | None = None
    stall_s: float | None = None
    garble: tuple[tuple[int, bytes], ...] = ()
    length: bool = False
    content_length: int | None = None
    chunk_size: int = 0

    def apply_garble(self, body: bytes) -> bytes:
        data = bytearray(body)
        for offset, replacement in self.garble:
            data[offset : offset + len(replacement)] = replacement
        return bytes(data)

    def pieces(self, size: int) -> list[tuple[int, int]]:
        """(start, end) of each write, split at the stall point and every ``chunk_size`` bytes."""
        end = size if self.cut_at is None else min(self.cut_at, size)
        marks = {0, end}
        if self.stall_at is not None and self.stall_at < end:
            marks.add(self.stall_at)
        if self.chunk_size > 0:
            marks.update(range(0, end, self.chunk_size))
        points = sorted(marks)
        return list(itertools.pairwise(points))


@dataclass(frozen=True)
class RawReply:
    """Exact body bytes (a recorded stream, a stream that breaks the grammar…), sent through ``fault``."""

    body: bytes
    content_type: str = "text/event-stream; charset=utf-8"
    status: int = 200
    fault: Fault = field(default_factory=Fault)
    extra_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Reply:
    """A successful answer.  ``drop_after_events``: abort the TCP connection after that many SSE
    events (streaming only); ``chunk_chars``: text/JSON is split into deltas of this size."""

    content: tuple[Block, ...]
    stop_reason: str | None = None
    model: str | None = None
    input_tokens: int = 25
    output_tokens: int = 12
    drop_after_events: int | None = None
    chunk_chars: int = 8
    # Seconds to pause between SSE events (streaming only).
    event_delay: float = 0.0
    extra_headers: tuple[tuple[str, str], ...] = ()
    # Send the body through this fault (the body's bytes are computed first, then cut/stalled/garbled).
    fault: Fault | None = None

    def effective_stop_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUseBlock) for b in self.content) else "end_turn"


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error with an Anthropic error body."""

    status: int
    message: str = "stand-in error"
    error_type: str | None = None
    retry_after: float | None = None
    # More response headers (e.g. anthropic-ratelimit-*).
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict[str, Any]:
        etype = self.error_type or ERROR_TYPES.get(self.status, "api_error")
        return {"type": "error", "error": {"type": etype, "message": self.message}}


@dataclass(frozen=True)
class StallReply:
    """Accept the request and send nothing for ``seconds`` (None: until the client leaves or the
    server stops); then answer with ``then`` (None: a 504)."""

    seconds: float | None = None
    then: Reply | ErrorReply | RawReply | None = None


AnyReply = Reply | ErrorReply | StallReply | RawReply


def text_reply(text: str, **kw: Any) -> Reply:
    return Reply(content=(TextBlock(text),), **kw)


def tool_use_reply(
    name: str, input: dict[str, Any], *, text_before: str | None = None, tool_id: str | None = None, **kw: Any
) -> Reply:
    blocks: list[Block] = []
    if text_before:
        blocks.append(TextBlock(text_before))
    blocks.append(ToolUseBlock(name, input) if tool_id is None else ToolUseBlock(name, input, tool_id))
    return Reply(content=tuple(blocks), **kw)


def error_reply(
    status: int,
    *,
    retry_after: float | None = None,
    message: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> ErrorReply:
    default_msg = {429: "Rate limited (stand-in)", 529: "Overloaded (stand-in)", 500: "Internal error (stand-in)"}
    message = message or default_msg.get(status, f"HTTP {status} (stand-in)")
    return ErrorReply(status, message, retry_after=retry_after, headers=headers)


def _chunks(s: str, n: int) -> Iterator[str]:
    n = max(1, n)
    for i in range(0, len(s), n):
        yield s[i : i + n]


def _msg_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def message_json(reply: Reply, model: str) -> dict[str, Any]:
    """The non-streaming JSON message equivalent to ``reply``."""
    content: list[dict[str, Any]] = []
    for b in reply.content:
        if isinstance(b, TextBlock):
            content.append({"type": "text", "text": b.text})
        elif isinstance(b, ToolUseBlock):
            content.append({"type": "tool_use", "id": b.id, "name": b.name, "input": b.input})
        else:
            content.append({"type": "thinking", "thinking": b.thinking, "signature": b.signature})
    return {
        "id": _msg_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reply.effective_stop_reason(),
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def stream_events(reply: Reply, model: str) -> list[bytes]:
    """The exact SSE events for ``reply`` (each item one ``event:/data:`` frame)."""
    ev: list[bytes] = [
        sse_event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": _msg_id(),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1},
                },
            },
        ),
        sse_event("ping", {"type": "ping"}),
    ]
    for index, b in enumerate(reply.content):
        if isinstance(b, TextBlock):
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(b.text, reply.chunk_chars)]
        elif isinstance(b, ToolUseBlock):
            start = {"type": "tool_use", "id": b.id, "name": b.name, "input": {}}
            args = json.dumps(b.input)
            # Real Anthropic streams open tool input with an empty partial_json fragment.
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": c} for c in _chunks(args, reply.chunk_chars)]
        else:
            start = {"type": "thinking", "thinking": ""}
            deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(b.thinking, reply.chunk_chars)]
            deltas.append({"type": "signature_delta", "signature": b.signature})
        ev.append(
            sse_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
        )
        ev.extend(
            sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        )
        ev.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    ev.append(
        sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.effective_stop_reason(), "stop_sequence": None},
                "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
            },
        )
    )
    ev.append(sse_event("message_stop", {"type": "message_stop"}))
    return ev


def estimate_tokens(body: Any) -> int:
    """Crude count for /count_tokens: about four characters per token."""
    return max(1, len(json.dumps(body)) // 4)


class AnthropicUpstream(StandinServer):
    """See the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, default: AnyReply | None = None) -> None:
        super().__init__(host, port)
        self.default: AnyReply = default or text_reply("Hello from the stand-in Anthropic upstream.")
        #: Optional callable deciding the reply when the script queue is empty.
        self.responder: Callable[[RecordedRequest], AnyReply] | None = None
        self._script: collections.deque[AnyReply] = collections.deque()
        self._script_lock = threading.Lock()
        self._counter = itertools.count()
        self._disconnects: list[RecordedRequest] = []

    # ----- scripting -------------------------------------------------------------------------------
    def script(self, *replies: AnyReply) -> None:
        """Queue replies for the next ``/v1/messages`` requests, in order."""
        with self._script_lock:
            self._script.extend(replies)

    def fail_next(self, n: int, status: int = 429, retry_after: float | None = None) -> None:
        """Queue ``n`` error replies (e.g. 429 with retry-after, 529 overloaded, 500)."""
        self.script(*[error_reply(status, retry_after=retry_after) for _ in range(n)])

    def reset_script(self) -> None:
        with self._script_lock:
            self._script.clear()
            self._disconnects.clear()

    @property
    def disconnects(self) -> list[RecordedRequest]:
        """Requests whose client closed the connection while the stand-in was stalling on them."""
        with self._cond:
            return list(self._disconnects)

    def wait_for_disconnects(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._disconnects) >= count, timeout):
                seen = len(self._disconnects)
                raise TimeoutError(f"expected {count} client disconnect(s), saw {seen} in {timeout} s")
            return list(self._disconnects)

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._script_lock:
            return len(self._script)

    def _next_reply(self, rec: RecordedRequest) -> AnyReply:
        with self._script_lock:
            if self._script:
                return self._script.popleft()
        if self.responder is not None:
            return self.responder(rec)
        return self.default

    # ----- server ----------------------------------------------------------------------------------
    def tag_request(self, method: str, path: str, body_json: Any) -> str:
        if method == "POST" and path.rstrip("/") == "/v1/messages":
            return "messages"
        if method == "POST" and path.rstrip("/") == "/v1/messages/count_tokens":
            return "count_tokens"
        return ""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._root)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)

    async def _root(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, text="ok")

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        rec = self.record_of(request)
        return web.json_response({"input_tokens": estimate_tokens(rec.json)})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        rec = self.record_of(request)
        body = rec.json if isinstance(rec.json, dict) else None
        if body is None:
            return web.json_response(ErrorReply(400, "body is not a JSON object").body(), status=400)
        return await self._answer(request, body, self._next_reply(rec))

    async def _answer(self, request: web.Request, body: dict[str, Any], reply: AnyReply) -> web.StreamResponse:
        if isinstance(reply, ErrorReply):
            headers = {"retry-after": f"{reply.retry_after:g}"} if reply.retry_after is not None else {}
            return web.json_response(reply.body(), status=reply.status, headers={**headers, **dict(reply.headers)})
        if isinstance(reply, StallReply):
            if not await self._stall(request, reply.seconds):
                return web.Response(status=204)  # the client is gone; nothing will be read
            if reply.then is not None:
                return await self._answer(request, body, reply.then)
            return web.json_response(ErrorReply(504, "stand-in stalled").body(), status=504)
        if isinstance(reply, RawReply):
            headers = {"Content-Type": reply.content_type, **dict(reply.extra_headers)}
            return await self._send_faulty(request, reply.status, headers, reply.body, reply.fault)
        model = reply.model or str(body.get("model", "claude-standin"))
        request_id = f"req_standin_{next(self._counter)}"
        if reply.fault is not None:
            stream = bool(body.get("stream"))
            data = b"".join(stream_events(reply, model)) if stream else json.dumps(message_json(reply, model)).encode()
            ctype = "text/event-stream; charset=utf-8" if stream else "application/json"
            headers = {"Content-Type": ctype, "request-id": request_id, **dict(reply.extra_headers)}
            return await self._send_faulty(request, 200, headers, data, reply.fault)
        if not body.get("stream"):
            return web.json_response(
                message_json(reply, model), headers={"request-id": request_id, **dict(reply.extra_headers)}
            )
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": request_id,
                **dict(reply.extra_headers),
            },
        )
        await resp.prepare(request)
        for n, frame in enumerate(stream_events(reply, model)):
            if reply.drop_after_events is not None and n >= reply.drop_after_events:
                self.abort_connection(request)
                return resp
            await resp.write(frame)
            if reply.event_delay:
                await self.wait_or_stop(reply.event_delay)
        await resp.write_eof()
        return resp

    # ----- faults ----------------------------------------------------------------------------------
    async def _stall(self, request: web.Request, seconds: float | None) -> bool:
        """Send nothing for ``seconds`` (None: until the server stops); False if the client left."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while deadline is None or loop.time() < deadline:
            if request.transport is None or request.transport.is_closing():
                with self._cond:
                    self._disconnects.append(self.record_of(request))
                    self._cond.notify_all()
                return False
            step = 0.02 if deadline is None else min(0.02, max(0.0, deadline - loop.time()))
            await self.wait_or_stop(step)
            if self._stopping is not None and self._stopping.is_set():
                return True
        return True

    async def _send_faulty(
        self, request: web.Request, status: int, headers: dict[str, str], body: bytes, fault: Fault
    ) -> web.StreamResponse:
        data = fault.apply_garble(body)
        resp = web.StreamResponse(status=status, headers=headers)
        if fault.content_length is not None:
            resp.content_length = fault.content_length
        elif fault.length:
            resp.content_length = len(data)
        else:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = 0
        for start, end in fault.pieces(len(data)):
            if start == fault.stall_at and not await self._stall(request, fault.stall_s):
                return resp
            await resp.write(data[start:end])
            sent = end
        stall_at_end = fault.stall_at is not None and fault.stall_at >= sent and fault.cut_at is None
        if stall_at_end and not await self._stall(request, fault.stall_s):
            return resp
        declared = resp.content_length
        if fault.cut_at is not None or (declared is not None and declared != sent):
            await self._close_after_flush(request)
            return resp
        await resp.write_eof()
        return resp

    @staticmethod
    async def _close_after_flush(request: web.Request) -> None:
        """Close the connection once what was written has left (abort() would drop the tail)."""
        transport = request.transport
        if transport is None:
            return
        for _ in range(200):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        transport.close()
