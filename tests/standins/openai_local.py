"""A stand-in local model server speaking the OpenAI chat-completions dialect (LM Studio, Ollama,
vLLM, llama.cpp all look like this from the outside), plus a strict variant.

Endpoints: ``GET /v1/models``, ``GET /health`` (unless ``health_endpoint=False``),
``POST /v1/chat/completions`` (streaming and not), ``HEAD /``/``GET /`` (200).
Every request is recorded with tag ``"classify"`` (a classification request, see below),
``"chat"`` (any other chat completion) or ``""``.

Chat replies are scripted as lists of OpenAI chunk dicts, replayed verbatim::

    srv = OpenAILocal(models=("qwen-local",)).start()
    srv.v1_url                                    # "http://127.0.0.1:PORT/v1" (what configs want)
    srv.script(ChunkReply(chunks))                # chunks: list of dicts (sent as `data: JSON`),
                                                  # str (sent as `data: STR`) or bytes (written raw)
    srv.script(ChunkReply(chunks, done=False))    # no `data: [DONE]` at the end
    srv.script(ChunkReply(chunks, delay=0.05))    # pause before each chunk
    srv.script(ChunkReply(chunks, drop_after=2))  # abort the TCP connection after 2 chunks
    srv.script(ChunkReply(chunks, stall_after=0, stall_seconds=None))  # headers sent, then silence
    srv.script(HTTPErrorReply(500))               # HTTP 500 with an OpenAI error body
    srv.script(GarbageReply(b"\\x00\\xffnot sse"))  # 200 + garbage bytes
    srv.script(StallReply(5))                     # no response at all for 5 s (None: forever)
    srv.script(chat_chunks(text="Hi"))            # a plain list is taken as ChunkReply(list)
    srv.script(EndlessReply("SIMPLE\n"))           # that text, then more text forever, until the
                                                  # client hangs up (srv.hangups lists those requests)

A non-streaming request gets ``ChunkReply.completion`` if set, else the chunks assembled into one
``chat.completion`` object.  With the queue empty, ``default`` (a short text answer) is used, or
``responder(record)`` if set.  ``chat_chunks()`` builds typical chunk lists for text / tool calls.

Classifier mode: a request for which ``classify_predicate(body)`` is true (default: the system
messages contain both "SIMPLE" and "COMPLEX") is answered from a separate queue::

    srv.script_classifier("Reasoning...\\nSIMPLE")   # a verdict text (streamed or not as asked)
    srv.script_classifier(HTTPErrorReply(500))       # or any reply/fault above
    srv.default_verdict = "COMPLEX"                  # used when that queue is empty

Strict mode (``OpenAILocal(strict_fields=...)`` or :class:`StrictOpenAIUpstream`): a chat
request whose JSON body has any of those top-level keys (default ``reasoning``, ``thinking``,
``enable_thinking``) is answered 400 ``{"error": {"message": "Extra inputs are not permitted", ...}}``
(recorded with tag ``"rejected"``), like vLLM and other pydantic-validated servers.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .base import RecordedRequest, StandinServer, sse_data

Chunk = dict[str, Any] | str | bytes
STRICT_REJECTED_FIELDS = ("reasoning", "thinking", "enable_thinking")


@dataclass(frozen=True)
class ChunkReply:
    chunks: Sequence[Chunk]
    done: bool = True
    delay: float = 0.0
    drop_after: int | None = None
    stall_after: int | None = None
    stall_seconds: float | None = None
    completion: dict[str, Any] | None = None
    status: int = 200


@dataclass(frozen=True)
class HTTPErrorReply:
    status: int = 500
    message: str = "stand-in local server error"
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class GarbageReply:
    data: bytes = b"\x00\xff\xfe garbage that is not SSE \x80\n\n"
    status: int = 200
    content_type: str = "text/event-stream"


@dataclass(frozen=True)
class StallReply:
    seconds: float | None = None


@dataclass(frozen=True)
class EndlessReply:
    """Stream ``text`` (and ``reasoning`` first, as reasoning_content deltas), then ``filler`` every
    ``delay`` seconds, never finishing: only a client that hangs up ends it (see ``hangups``)."""

    text: str
    filler: str = " and then some more words"
    delay: float = 0.01
    reasoning: str | None = None


LocalReply = ChunkReply | HTTPErrorReply | GarbageReply | StallReply | EndlessReply


def _base_chunk(model: str, cid: str, created: int) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}


def chat_chunks(
    text: str | None = None,
    tool_calls: Sequence[tuple[str, str]] = (),
    *,
    model: str = "local-model",
    finish_reason: str | None = "auto",
    usage: tuple[int, int] | None = (20, 10),
    piece: int = 6,
    reasoning: str | None = None,
) -> list[dict[str, Any]]:
    """A typical chunk list: role chunk, optional reasoning_content, text split into ``piece``-sized
    deltas, then each tool call (name, JSON-arguments string) with its arguments fragmented, a
    finish chunk (``auto``: tool_calls if any tool call else stop; None: no finish reason at all),
    and a usage-only chunk (None: omitted)."""
    cid = "chatcmpl-standin"
    created = int(time.time())
    out: list[dict[str, Any]] = []

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**_base_chunk(model, cid, created), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out.append(chunk({"role": "assistant", "content": ""}))
    if reasoning:
        out.extend(chunk({"reasoning_content": reasoning[i : i + piece]}) for i in range(0, len(reasoning), piece))
    if text:
        out.extend(chunk({"content": text[i : i + piece]}) for i in range(0, len(text), piece))
    for n, (name, args) in enumerate(tool_calls):
        out.append(
            chunk({"tool_calls": [{"index": n, "id": f"call_{n}", "type": "function",
                                   "function": {"name": name, "arguments": ""}}]})
        )
        out.extend(
            chunk({"tool_calls": [{"index": n, "function": {"arguments": args[i : i + piece]}}]})
            for i in range(0, len(args), piece)
        )
    if finish_reason is not None:
        fr = ("tool_calls" if tool_calls else "stop") if finish_reason == "auto" else finish_reason
        out.append(chunk({}, fr))
    if usage is not None:
        out.append(
            {
                **_base_chunk(model, cid, created),
                "choices": [],
                "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
            }
        )
    return out


def assemble_completion(chunks: Sequence[Chunk], model: str) -> dict[str, Any]:
    """Fold chunk dicts into one non-streaming ``chat.completion`` (str/bytes chunks are ignored)."""
    content = ""
    reasoning = ""
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage: dict[str, Any] | None = None
    cid = "chatcmpl-standin"
    for c in chunks:
        if not isinstance(c, dict):
            continue
        cid = str(c.get("id", cid))
        if isinstance(c.get("usage"), dict):
            usage = c["usage"]
        for choice in c.get("choices") or []:
            delta = choice.get("delta") or {}
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            for tc in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    int(tc.get("index", 0)), {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                )
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                if fn.get("name"):
                    slot["function"]["name"] = fn["name"]
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        out["usage"] = usage
    return out


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def default_classify_predicate(body: dict[str, Any]) -> bool:
    """True when the system messages mention both SIMPLE and COMPLEX (the router's classifier prompt)."""
    system = "".join(
        _text_of(m.get("content"))
        for m in body.get("messages") or []
        if isinstance(m, dict) and m.get("role") in ("system", "developer")
    )
    return "SIMPLE" in system and "COMPLEX" in system


class OpenAILocal(StandinServer):
    """See the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Sequence[str] = ("local-model",),
        health_endpoint: bool = True,
        strict_fields: Sequence[str] = (),
    ) -> None:
        super().__init__(host, port)
        self.models = tuple(models)
        self.health_endpoint = health_endpoint
        self.strict_fields = tuple(strict_fields)
        self.default: LocalReply | Sequence[Chunk] = ChunkReply(
            chat_chunks(text="Hello from the stand-in local model.", model=self.models[0])
        )
        self.responder: Callable[[RecordedRequest], LocalReply | Sequence[Chunk]] | None = None
        self.classify_predicate: Callable[[dict[str, Any]], bool] = default_classify_predicate
        self.default_verdict = "SIMPLE"
        self._script: collections.deque[LocalReply | Sequence[Chunk]] = collections.deque()
        self._classifier: collections.deque[LocalReply | str] = collections.deque()
        self._script_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._hangups: list[RecordedRequest] = []

    @property
    def hangups(self) -> list[RecordedRequest]:
        """Requests whose client closed the connection in the middle of an :class:`EndlessReply`."""
        with self._lock:
            return list(self._hangups)

    def wait_for_hangups(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._hangups) >= count, timeout):
                raise TimeoutError(f"expected {count} hang-up(s), saw {len(self._hangups)} in {timeout} s")
            return list(self._hangups)

    @property
    def v1_url(self) -> str:
        return f"{self.url}/v1"

    # ----- scripting -------------------------------------------------------------------------------
    def script(self, *replies: LocalReply | Sequence[Chunk]) -> None:
        """Queue replies for the next (non-classifier) chat completions, in order."""
        with self._script_lock:
            self._script.extend(replies)

    def script_classifier(self, *replies: LocalReply | str) -> None:
        """Queue replies for the next classifier requests: a verdict text, or any reply/fault."""
        with self._script_lock:
            self._classifier.extend(replies)

    def reset_script(self) -> None:
        with self._script_lock:
            self._script.clear()
            self._classifier.clear()

    @property
    def pending(self) -> int:
        with self._script_lock:
            return len(self._script) + len(self._classifier)

    def _verdict_reply(self, text: str) -> ChunkReply:
        return ChunkReply(chat_chunks(text=text, model=self.models[0], piece=12))

    def _next_reply(self, rec: RecordedRequest) -> LocalReply:
        with self._script_lock:
            if rec.tag == "classify":
                item: LocalReply | str | Sequence[Chunk] | None = (
                    self._classifier.popleft() if self._classifier else self.default_verdict
                )
            else:
                item = self._script.popleft() if self._script else None
        if item is None:
            item = self.responder(rec) if self.responder is not None else self.default
        if isinstance(item, str):
            return self._verdict_reply(item)
        if isinstance(item, ChunkReply | HTTPErrorReply | GarbageReply | StallReply | EndlessReply):
            return item
        return ChunkReply(item)

    # ----- server ----------------------------------------------------------------------------------
    def tag_request(self, method: str, path: str, body_json: Any) -> str:
        if method != "POST" or path.rstrip("/") != "/v1/chat/completions":
            return ""
        if not isinstance(body_json, dict):
            return "chat"
        if any(k in body_json for k in self.strict_fields):
            return "rejected"
        return "classify" if self.classify_predicate(body_json) else "chat"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._root)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/chat/completions", self._chat)

    async def _root(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def _health(self, request: web.Request) -> web.StreamResponse:
        if not self.health_endpoint:
            raise web.HTTPNotFound()
        return web.json_response({"status": "ok"})

    async def _models(self, request: web.Request) -> web.StreamResponse:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "standin"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        rec = self.record_of(request)
        body = rec.json
        if not isinstance(body, dict):
            return _openai_error(400, "request body is not a JSON object")
        if rec.tag == "rejected":
            bad = next(k for k in self.strict_fields if k in body)
            return web.json_response(
                {"error": {"message": "Extra inputs are not permitted", "type": "BadRequestError",
                           "param": bad, "code": 400}},
                status=400,
            )
        reply = self._next_reply(rec)
        if isinstance(reply, HTTPErrorReply):
            payload = reply.body or {"error": {"message": reply.message, "type": "server_error", "code": reply.status}}
            return web.json_response(payload, status=reply.status)
        if isinstance(reply, StallReply):
            await self.wait_or_stop(reply.seconds)
            return _openai_error(504, "stand-in stalled")
        if isinstance(reply, GarbageReply):
            resp = web.StreamResponse(status=reply.status, headers={"Content-Type": reply.content_type})
            await resp.prepare(request)
            await resp.write(reply.data)
            await resp.write_eof()
            return resp
        model = str(body.get("model") or self.models[0])
        if isinstance(reply, EndlessReply):
            return await self._endless(request, rec, reply, model)
        if not body.get("stream"):
            if reply.stall_after is not None:
                await self.wait_or_stop(reply.stall_seconds)
            if reply.drop_after is not None:
                self.abort_connection(request)
                return web.Response(status=200)
            completion = reply.completion or assemble_completion(reply.chunks, model)
            return web.json_response(completion, status=reply.status)
        return await self._stream(request, reply)

    async def _endless(
        self, request: web.Request, rec: RecordedRequest, reply: EndlessReply, model: str
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        head = chat_chunks(text=reply.text, reasoning=reply.reasoning, model=model, finish_reason=None, usage=None)
        filler = chat_chunks(text=reply.filler, model=model, finish_reason=None, usage=None, piece=len(reply.filler))
        chunks = itertools.chain(head, itertools.cycle(filler[1:]))
        stopping = self._stopping
        try:
            for c in chunks:
                if request.transport is None or request.transport.is_closing():
                    break
                if stopping is not None and stopping.is_set():
                    return resp
                await resp.write(sse_data(c))
                await self.wait_or_stop(reply.delay)
        except (ConnectionError, RuntimeError):
            pass  # the client is gone: that is the hang-up this reply waits for
        with self._cond:
            self._hangups.append(rec)
            self._cond.notify_all()
        return resp

    async def _fault_before(self, request: web.Request, reply: ChunkReply, n: int) -> bool:
        """Apply the reply's drop or stall before chunk N (N == len(chunks): before the end).

        True when the connection was dropped and the stream must end here.
        """
        if reply.drop_after is not None and n >= reply.drop_after:
            self.abort_connection(request)
            return True
        if reply.stall_after is not None and n >= reply.stall_after:
            await self.wait_or_stop(reply.stall_seconds)
            # A bounded stall resumes the stream; an unbounded one only ends at server stop.
            if reply.stall_seconds is None:
                self.abort_connection(request)
                return True
        return False

    async def _stream(self, request: web.Request, reply: ChunkReply) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=reply.status, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        for n, c in enumerate(reply.chunks):
            if await self._fault_before(request, reply, n):
                return resp
            if reply.delay:
                await self.wait_or_stop(reply.delay)
            try:
                await resp.write(c if isinstance(c, bytes) else sse_data(c))
            except ConnectionError:
                return resp  # the client hung up (the classifier does, once it has its verdict)
        if await self._fault_before(request, reply, len(reply.chunks)):
            return resp
        if reply.done:
            await resp.write(sse_data("[DONE]"))
        await resp.write_eof()
        return resp


class StrictOpenAIUpstream(OpenAILocal):
    """An OpenAI-compatible upstream that rejects ``reasoning``, ``thinking`` and ``enable_thinking``
    with 400 "Extra inputs are not permitted" (use behind a LiteLLM ``hosted_vllm/NAME`` or
    ``openai/NAME`` entry whose ``api_base`` is ``srv.v1_url``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Sequence[str] = ("strict-model",),
        strict_fields: Sequence[str] = STRICT_REJECTED_FIELDS,
    ) -> None:
        super().__init__(host, port, models=models, strict_fields=strict_fields)


def _openai_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "code": status}},
                             status=status)


__all__ = [
    "STRICT_REJECTED_FIELDS",
    "ChunkReply",
    "EndlessReply",
    "GarbageReply",
    "HTTPErrorReply",
    "OpenAILocal",
    "StallReply",
    "StrictOpenAIUpstream",
    "assemble_completion",
    "chat_chunks",
    "default_classify_predicate",
]
