"""The local route: an Anthropic request answered by the local model, in the dialect ``local.api``
chose: translated to the server's OpenAI ``/chat/completions``, or sent to its own Anthropic
``/messages`` (:mod:`proxy.native_request`), whose stream is grammar-checked and re-expressed for the
same translator (:mod:`proxy.native_stream`), so both dialects share every check below.

The client's response is *held* until the local stream has produced its first valid content (a text
delta or a complete, valid tool call).  Any failure before that point is invisible to Claude Code:
the request is answered by the cloud instead, and the decision log says why.  After content has
been sent there is no taking it back, so a failure ends the stream with an Anthropic ``error``
event (never a made-up ``end_turn``) and the turn is marked so that Claude Code's retry goes to the
cloud instead of looping on the local model.

What happened is returned in a :class:`LocalOutcome` (filled as the answer goes, so it is right even
when the answer is cut short), which the server writes into the decision record, as it does with the
cloud relay's ``RelayStats``; this module never sees the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from proxy import jsonio
from proxy.config import LocalConfig
from proxy.errors import error_body
from proxy.local_client import LocalFailure, complete_chat, stream_chat, stream_messages
from proxy.native_request import to_native_request
from proxy.native_stream import NativeToChunks, native_message_chunks
from proxy.openai_request import (
    RequestTranslationError,
    request_tool_names,
    request_tool_schemas,
    to_openai_request,
)
from proxy.openai_stream import (
    Event,
    StreamTranslator,
    TranslationError,
    translate_chunks,
    translate_completion,
)
from proxy.sse import encode_event
from proxy.text_tool_calls import ToolSchemas

log = logging.getLogger("switchyard.local")

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-switchyard-route": "local"}


@dataclass
class LocalOutcome:
    """What the local answer did, for the decision record."""

    status: int = 0  # HTTP status sent (0: nothing yet)
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    prefill_ms: float | None = None
    repaired: str | None = None  # the shape of a tool call written as text, sent as tool_use
    broken: str | None = None  # why the answer broke after content was sent
    sent_whole: bool = False  # the client has the whole answer


class Fallback(Exception):
    """The local path failed before anything reached the client: answer from the cloud instead."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail


@dataclass
class LocalRequest:
    session: aiohttp.ClientSession
    cfg: LocalConfig
    api_key: str
    body: dict[str, Any]
    model: str
    input_tokens: int
    # Called when the answer broke after content was sent (marks the turn for the cloud).
    on_broken: Callable[[str], None]
    # Called with the prompt tokens the server counted, when it said (calibrates the estimate).
    on_prompt_tokens: Callable[[int], None] | None = None
    # "openai": translated to /chat/completions; "anthropic": the server's own /v1/messages
    # (config.local_dialect).
    dialect: str = "openai"

    def take_body(self) -> dict[str, Any]:
        """The Anthropic body, handed over once.  The local path translates it and lets it go: held
        for the whole answer, a parsed 78 KB body (~175 KB of objects) per request was the largest
        thing alive at concurrency 50."""
        body, self.body = self.body, {}
        return body


@dataclass(frozen=True)
class _Translated:
    oa_body: dict[str, Any]
    tool_names: frozenset[str]
    client_model: str
    # name → input_schema, for tool calls written as text (empty: the request has no tools, nothing held)
    tool_schemas: ToolSchemas


def _translate(lr: LocalRequest, *, stream: bool) -> _Translated:
    """The OpenAI request and what the answer's translation needs; the Anthropic body is let go."""
    body = lr.take_body()
    try:
        if lr.dialect == "anthropic":
            oa_body = to_native_request(body, model=lr.model, max_output_tokens=lr.cfg.max_output_tokens)
        else:
            oa_body = to_openai_request(body, model=lr.model, max_output_tokens=lr.cfg.max_output_tokens)
    except RequestTranslationError as exc:
        raise Fallback("translation-error", str(exc)[:200]) from None
    oa_body["stream"] = stream
    if not stream:
        oa_body.pop("stream_options", None)
    try:
        schemas = ToolSchemas(request_tool_schemas(body))
    except jsonio.JSONEncodeError as exc:  # a schema nested deeper than orjson writes
        raise Fallback("translation-error", f"a tool schema cannot be written as JSON: {exc}"[:200]) from None
    return _Translated(oa_body, request_tool_names(body), str(body.get("model", lr.model)), schemas)


def _encode(events: list[Event]) -> bytes:
    return b"".join(encode_event(name, data) for name, data in events)


def _failure(exc: LocalFailure | TranslationError) -> Fallback:
    return Fallback(exc.cause, exc.detail)


async def _first_content(gen: Any, translator: StreamTranslator, deadline_s: float) -> tuple[list[Event], bool]:
    """Consume chunks until the translator has valid content; returns (held events, stream ended)."""
    held: list[Event] = []
    try:
        async with asyncio.timeout(deadline_s):
            async for chunk in gen:
                held += translator.feed(chunk)
                if translator.has_content:
                    return held, False
            held += translator.finish()
    except TimeoutError:
        raise Fallback("first-token-timeout", f"no content within {deadline_s:g} s") from None
    except (LocalFailure, TranslationError) as exc:
        raise _failure(exc) from None
    if not translator.has_content:
        raise Fallback("empty-answer", "the local model ended without content")
    return held, True


async def _native_chunks(events: AsyncGenerator[tuple[str | None, Any], None]) -> AsyncGenerator[dict[str, Any], None]:
    """The server's own Anthropic stream, grammar-checked, as chunks for the shared translator."""
    conv = NativeToChunks()
    async with contextlib.aclosing(events):
        async for name, data in events:
            for chunk in conv.feed(name, data):
                yield chunk
    conv.finish()


async def stream_local(
    request: web.Request, lr: LocalRequest, outcome: LocalOutcome, started: float
) -> web.StreamResponse:
    """Stream the local answer; raises Fallback while nothing has been sent yet."""
    tr = _translate(lr, stream=True)
    translator = StreamTranslator(
        tr.tool_names, model=tr.client_model, input_tokens=lr.input_tokens, text_tools=tr.tool_schemas
    )
    # The client encodes the request and drops the dict before it streams the answer.
    if lr.dialect == "anthropic":
        gen = _native_chunks(stream_messages(lr.session, lr.cfg, tr.oa_body, lr.api_key))
    else:
        gen = stream_chat(lr.session, lr.cfg, tr.oa_body, lr.api_key)
    del tr
    async with contextlib.aclosing(gen):
        held, ended = await _first_content(gen, translator, lr.cfg.first_token_timeout_s)
        out = web.StreamResponse(status=200, headers=SSE_HEADERS)
        await out.prepare(request)
        await out.write(_encode(held))
        outcome.ttft_ms = (time.monotonic() - started) * 1000
        outcome.status = 200
        broken: str | None = None
        if not ended:
            try:
                async for chunk in gen:
                    events = translator.feed(chunk)
                    if events:
                        await out.write(_encode(events))
                await out.write(_encode(translator.finish()))
            except (LocalFailure, TranslationError) as exc:
                broken = f"{exc.cause}: {exc.detail}" if exc.detail else exc.cause
        if broken is not None:
            log.warning("local stream broke after content was sent (%s); the turn's retry goes to the cloud", broken)
            lr.on_broken(broken)
            outcome.broken = broken
            event = error_body(502, f"the local model's answer broke off ({broken}); retry to continue on the cloud")
            await out.write(encode_event("error", event))
        if translator.upstream_input_tokens is not None and lr.on_prompt_tokens is not None:
            lr.on_prompt_tokens(translator.upstream_input_tokens)
        # Known at the end: a call after the text's first part is repaired when the answer ends.
        outcome.repaired = translator.repaired
        outcome.input_tokens = translator.upstream_input_tokens or lr.input_tokens
        outcome.output_tokens = translator.output_tokens
        outcome.cached_tokens = translator.cached_tokens
        outcome.prefill_ms = translator.prefill_ms
        await out.write_eof()
        outcome.sent_whole = True
        return out


async def complete_local(lr: LocalRequest, outcome: LocalOutcome, started: float) -> web.Response:
    """A non-streaming local answer; raises Fallback on any failure (nothing is sent before it is whole)."""
    tr = _translate(lr, stream=False)
    tool_names, client_model, tool_schemas = tr.tool_names, tr.client_model, tr.tool_schemas
    payload = tr.oa_body
    del tr
    try:
        async with asyncio.timeout(lr.cfg.first_token_timeout_s + lr.cfg.read_timeout_s):
            completion = await complete_chat(lr.session, lr.cfg, payload, lr.api_key, native=lr.dialect == "anthropic")
        if lr.dialect == "anthropic":
            # The server's own Anthropic message, through the same checks as a streamed one.
            message, translator = translate_chunks(
                native_message_chunks(completion), tool_names, model=client_model, input_tokens=lr.input_tokens,
                text_tools=tool_schemas,
            )
        else:
            message, translator = translate_completion(
                completion, tool_names, model=client_model, input_tokens=lr.input_tokens, text_tools=tool_schemas
            )
    except TimeoutError:
        raise Fallback("timeout", "no complete answer in time") from None
    except (LocalFailure, TranslationError) as exc:
        raise _failure(exc) from None
    outcome.ttft_ms = (time.monotonic() - started) * 1000
    outcome.status = 200
    outcome.repaired = translator.repaired
    usage = message.get("usage") or {}
    outcome.input_tokens = usage.get("input_tokens")
    outcome.output_tokens = usage.get("output_tokens")
    return web.json_response(message, headers={"x-switchyard-route": "local"})


async def answer_local(
    request: web.Request, lr: LocalRequest, outcome: LocalOutcome, started: float, stream: bool
) -> web.StreamResponse:
    """The local answer, streamed or whole; raises Fallback while nothing has been sent yet."""
    if stream:
        return await stream_local(request, lr, outcome, started)
    return await complete_local(lr, outcome, started)
