"""Async client for the local OpenAI-compatible server (LM Studio, Ollama, vLLM, llama.cpp).

Every way the local server can fail becomes one typed :class:`LocalFailure` with a short machine
``cause`` (for the decision log and the fallback decision) and a short, secret-free ``detail``:

=====================  =========================================================================
``connect-error``      connection refused, DNS, connect timeout, reset before a response
``http-<status>``      a non-2xx answer (detail: the server's error message, trimmed)
``first-token-timeout`` no first chunk within ``first_token_timeout_s`` of sending the request
``stall``              silence longer than ``read_timeout_s`` once chunks are flowing
``malformed-stream``   bytes that are not SSE/UTF-8/JSON objects, or a non-stream reply to a stream
``malformed-response`` (non-streaming) a body that is not a JSON object
``upstream-error``     the server reported an error inside a 200 stream (``{"error": …}`` chunk)
``dropped``            the connection ended in the middle of the stream or of an event
=====================  =========================================================================

Ollama and llama.cpp may end a stream without ``data: [DONE]``: a clean EOF simply ends iteration,
and it is the translator's job to notice a missing finish_reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

import aiohttp

from proxy import jsonio
from proxy.config import LocalConfig
from proxy.sse import SSEDecodeError, SSEDecoder, SSEEvent

_DETAIL_MAX = 200


class LocalFailure(Exception):
    """The local server failed; ``cause`` is a short machine string, ``detail`` a short human one."""

    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause
        self.detail = detail


def _headers(api_key: str, *, stream: bool, native: bool = False) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if native:
        # What Anthropic clients send; servers that check either (vLLM --api-key, LM Studio) find it.
        headers["anthropic-version"] = "2023-06-01"
        if api_key:
            headers["x-api-key"] = api_key
    return headers


def _encode(payload: dict[str, Any]) -> bytes:
    """The request as JSON bytes; a LocalFailure (so the cloud answers) when orjson cannot write it.

    orjson writes at most 254 levels of nesting: a tool schema nested deeper than about 250 levels
    parses (orjson reads 1,024) but cannot be sent to the local server.
    """
    try:
        return jsonio.dumps(payload)
    except jsonio.JSONEncodeError as exc:
        raise LocalFailure("translation-error", f"request cannot be written as JSON: {exc}") from None


def _scrub(text: str, api_key: str) -> str:
    if api_key and api_key in text:
        text = text.replace(api_key, "***")
    text = " ".join(text.split())
    return text[:_DETAIL_MAX]


def _error_message(raw: bytes) -> str:
    """The human part of an error body: OpenAI ``{"error": {"message"}}``, FastAPI ``detail``, or text."""
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message") or err.get("type") or err
        if err is not None:
            return err if isinstance(err, str) else json.dumps(err)
    return text


async def _raise_for_status(resp: aiohttp.ClientResponse, api_key: str) -> None:
    if 200 <= resp.status < 300:
        return
    try:
        raw = await asyncio.wait_for(resp.content.read(4096), timeout=2.0)
    except (TimeoutError, aiohttp.ClientError):
        raw = b""
    detail = _scrub(_error_message(raw), api_key) or (resp.reason or "")
    raise LocalFailure(f"http-{resp.status}", detail)


def _connect_failure(exc: BaseException) -> LocalFailure:
    # aiohttp's message names host and port but never headers: safe to keep, trimmed.
    return LocalFailure("connect-error", f"{type(exc).__name__}: {exc}"[:_DETAIL_MAX])


def _chunk_of(ev: SSEEvent) -> dict[str, Any] | None:
    """Parse one event into a chunk; None for the ``[DONE]`` sentinel."""
    data = ev.data.strip()
    if data == "[DONE]":
        return None
    try:
        chunk = jsonio.loads(data)
    except ValueError:
        raise LocalFailure("malformed-stream", f"event data is not JSON: {data[:60]!r}") from None
    if not isinstance(chunk, dict):
        raise LocalFailure("malformed-stream", f"event data is a JSON {type(chunk).__name__}, not an object")
    if ev.event == "error" or chunk.get("error") is not None:
        err = chunk.get("error", chunk)
        msg = err.get("message") if isinstance(err, dict) else err
        raise LocalFailure("upstream-error", str(msg)[:_DETAIL_MAX])
    return chunk


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read what follows ``[DONE]`` (the chunked-encoding terminator, normally in the same packet).

    A response released before its body ends closes the connection instead of returning it to the
    pool, and every next request would pay a new TCP connect.
    """
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(1.0):
            while await resp.content.readany():
                pass


async def stream_chat(
    session: aiohttp.ClientSession, cfg: LocalConfig, body: dict[str, Any], api_key: str
) -> AsyncGenerator[dict[str, Any], None]:
    """POST ``body`` (``stream`` forced on) to ``{cfg.base_url}/chat/completions``; yield parsed chunks.

    Iteration ends at ``data: [DONE]`` or a clean EOF.  Raises :class:`LocalFailure`.  The timeouts
    come from ``cfg``: ``connect_timeout_s`` for the TCP connect, ``first_token_timeout_s`` from the
    request until the first chunk (covers waiting for headers: servers that process the prompt before
    answering), then ``read_timeout_s`` for any silence between reads.
    """
    data = _encode({**body, "stream": True})
    del body  # only the bytes are needed from here on: the dict would live as long as the stream
    events = _sse_events(session, cfg, "/chat/completions", data, _headers(api_key, stream=True), api_key, _is_done)
    del data
    async with contextlib.aclosing(events):
        async for ev in events:
            chunk = _chunk_of(ev)
            if chunk is None:
                return
            yield chunk


async def stream_messages(
    session: aiohttp.ClientSession, cfg: LocalConfig, body: dict[str, Any], api_key: str
) -> AsyncGenerator[tuple[str | None, Any], None]:
    """POST ``body`` (``stream`` forced on) to the server's own ``{cfg.base_url}/messages``; yield
    ``(event name, parsed data)``.  Ends after ``message_stop``/``error`` or at a clean EOF (the
    caller's grammar check tells a truncation).  Same failures and timeouts as :func:`stream_chat`."""
    data = _encode({**body, "stream": True})
    del body
    headers = _headers(api_key, stream=True, native=True)
    events = _sse_events(session, cfg, "/messages", data, headers, api_key, _is_message_end)
    del data
    async with contextlib.aclosing(events):
        async for ev in events:
            try:
                parsed = jsonio.loads(ev.data)
            except ValueError:
                raise LocalFailure("malformed-stream", f"event data is not JSON: {ev.data[:60]!r}") from None
            yield ev.event, parsed


def _is_done(ev: SSEEvent) -> bool:
    return ev.data.strip() == "[DONE]"


def _is_message_end(ev: SSEEvent) -> bool:
    return ev.event in ("message_stop", "error")


async def _sse_events(
    session: aiohttp.ClientSession,
    cfg: LocalConfig,
    path: str,
    data: bytes,
    headers: dict[str, str],
    api_key: str,
    last: Callable[[SSEEvent], bool],
) -> AsyncGenerator[SSEEvent, None]:
    """The request's SSE events; after one for which ``last`` is true the rest of the body is read
    (so the connection goes back to the pool) and iteration ends."""
    url = cfg.base_url.rstrip("/") + path
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cfg.first_token_timeout_s
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=cfg.connect_timeout_s)
    decoder = SSEDecoder()
    got_chunk = False
    try:
        async with asyncio.timeout_at(deadline):
            resp = await session.post(url, data=data, headers=headers, timeout=timeout)
        del data
    except aiohttp.ClientConnectionError as exc:  # before TimeoutError: a connect timeout is both
        raise _connect_failure(exc) from None
    except TimeoutError:
        raise LocalFailure("first-token-timeout", f"no response within {cfg.first_token_timeout_s:g}s") from None
    except aiohttp.ClientError as exc:
        raise LocalFailure("connect-error", type(exc).__name__) from None
    try:
        await _raise_for_status(resp, api_key)
        ctype = resp.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            # The server ignored stream=true (or reports an error with 200): never guess.
            raw = await resp.content.read(4096)
            raise LocalFailure(
                "malformed-stream", "expected an event stream, got JSON: " + _scrub(_error_message(raw), api_key)
            )
        while True:
            try:
                if got_chunk:
                    async with asyncio.timeout(cfg.read_timeout_s):
                        data = await resp.content.readany()
                else:
                    async with asyncio.timeout_at(deadline):
                        data = await resp.content.readany()
            except TimeoutError:
                if got_chunk:
                    raise LocalFailure("stall", f"no data for {cfg.read_timeout_s:g}s mid-stream") from None
                raise LocalFailure(
                    "first-token-timeout", f"no first chunk within {cfg.first_token_timeout_s:g}s"
                ) from None
            except aiohttp.ClientPayloadError as exc:
                raise LocalFailure("dropped", f"connection ended mid-stream ({type(exc).__name__})") from None
            except aiohttp.ClientError as exc:
                raise LocalFailure("dropped", f"{type(exc).__name__}") from None
            if not data:
                break
            try:
                events = decoder.feed(data)
            except SSEDecodeError as exc:
                raise LocalFailure("malformed-stream", str(exc)) from None
            for ev in events:
                got_chunk = True
                if last(ev):
                    await _drain(resp)
                    yield ev
                    return
                yield ev
        # Clean EOF: a final event may lack its blank line; a half-written one means a drop.
        try:
            tail = decoder.flush()
        except SSEDecodeError as exc:
            raise LocalFailure("malformed-stream", str(exc)) from None
        for ev in tail:
            if not ev.data.strip() or not _whole_json(ev.data):
                raise LocalFailure("dropped", "stream ended in the middle of an event")
            yield ev
            if last(ev):
                return
    finally:
        # Returns the connection to the pool when the body was read to the end, closes it otherwise.
        resp.release()


def _whole_json(data: str) -> bool:
    """A final event without its blank line counts only when its data is whole ([DONE] or JSON)."""
    if data.strip() == "[DONE]":
        return True
    try:
        jsonio.loads(data)
    except ValueError:
        return False
    return True


async def complete_chat(
    session: aiohttp.ClientSession,
    cfg: LocalConfig,
    body: dict[str, Any],
    api_key: str,
    *,
    native: bool = False,
) -> dict[str, Any]:
    """Non-streaming: POST ``body`` (``stream`` forced off, no ``stream_options``); return the JSON.

    ``native``: to the server's own Anthropic ``/messages`` instead of ``/chat/completions``.  The
    whole answer must arrive within ``first_token_timeout_s`` (``first-token-timeout``).
    """
    url = cfg.base_url.rstrip("/") + ("/messages" if native else "/chat/completions")
    payload = {k: v for k, v in body.items() if k != "stream_options"}
    payload["stream"] = False
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=cfg.connect_timeout_s)
    try:
        async with (
            asyncio.timeout(cfg.first_token_timeout_s),
            session.post(
                url, data=_encode(payload), headers=_headers(api_key, stream=False, native=native), timeout=timeout
            ) as resp,
        ):
            await _raise_for_status(resp, api_key)
            try:
                raw = await resp.read()
            except aiohttp.ClientPayloadError as exc:
                raise LocalFailure("dropped", f"connection ended mid-body ({type(exc).__name__})") from None
    except aiohttp.ClientConnectionError as exc:
        raise _connect_failure(exc) from None
    except TimeoutError:
        raise LocalFailure("first-token-timeout", f"no answer within {cfg.first_token_timeout_s:g}s") from None
    except aiohttp.ClientError as exc:
        raise LocalFailure("connect-error", type(exc).__name__) from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise LocalFailure("malformed-response", "body is not JSON (or nested too deeply)") from None
    if not isinstance(data, dict):
        raise LocalFailure("malformed-response", f"body is a JSON {type(data).__name__}, not an object")
    if data.get("error") is not None:
        err = data["error"]
        msg = err.get("message") if isinstance(err, dict) else err
        raise LocalFailure("upstream-error", _scrub(str(msg), api_key))
    return data

