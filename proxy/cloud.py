"""The cloud path: forward an Anthropic request to LiteLLM's /v1/messages and relay the answer.

What is forwarded is what the router decided: the parsed body with the model set, re-serialised
(a body with two ``model`` keys cannot smuggle a second model past the router, see
:func:`cloud_payload`).

A streamed answer is relayed frame by frame: each read is cut into whole SSE frames, each frame is
parsed once and checked against the Anthropic stream grammar (:mod:`proxy.stream_grammar`), and
only checked frames are passed on, as the upstream framed them.  Until the first frame goes to the
client (held until ``message_start`` has been checked), connection errors, 429, 5xx, 529 and a
malformed start are retried with exponential backoff that honours retry-after, within
``cloud.first_byte_timeout_s``.  Afterwards a stream that breaks — cut, stalled past
``cloud.timeout_s``, or off the grammar — ends on a frame boundary with a well-formed ``error``
event, never silently truncated and never with the bad event passed on.

A non-streaming answer is read whole, then checked: a body cut short or that is not a message
becomes a 502 with an Anthropic error body, never a 200 with truncated JSON.

A client that disconnects stops the work: the handler is cancelled (CancelledError propagates
through every await here, and each upstream response is closed on the way out), and no new attempt
starts once the client's connection is closing.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from proxy.config import CloudConfig
from proxy.errors import error_body, is_anthropic_error
from proxy.sse import FrameSplitter, encode_event, parse_frame
from proxy.stream_grammar import StreamGrammar

log = logging.getLogger("switchyard.cloud")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
# A retry-after longer than this is not worth holding Claude Code for: give up at once instead.
MAX_RETRY_AFTER_S = 60.0
# After message_stop, how long to wait for the rest of the upstream body (normally already there)
# so that its pooled connection can be reused.
DRAIN_S = 2.0
# An `error` event or error body on a 200: the HTTP status its type stands for.
_STATUS_FOR_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# Events whose data the relay reads beyond the grammar check (usage, an upstream error).
_NOTED_EVENTS = frozenset({"message_start", "message_delta", "error"})
# Upstream headers a client needs to pace itself: passed on with every cloud answer.
_PASSED_HEADERS = frozenset({"retry-after", "retry-after-ms"})
_PASSED_PREFIXES = ("anthropic-ratelimit-", "x-ratelimit-")


class CloudError(Exception):
    """The cloud could not answer; carries the status, Anthropic error body and headers for the client."""

    def __init__(
        self, status: int, body: dict[str, Any], attempts: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body
        self.attempts = attempts
        self.headers: dict[str, str] = dict(headers or {})


class ClientGone(Exception):
    """The client disconnected before the next attempt: no more upstream calls for it."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"client disconnected after {attempts} cloud attempt(s); no further attempt made")
        self.attempts = attempts


@dataclass
class RelayStats:
    status: int = 0
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    attempts: int = 0
    # Why the answer the client got is incomplete (None: it is complete).
    truncated: str | None = None
    # Anything else worth a line in the decision record (e.g. junk after message_stop, dropped).
    note: str | None = None
    # The client has the whole answer (its end was written); what follows is upstream housekeeping.
    sent_whole: bool = False


def cloud_payload(body: dict[str, Any], model: str) -> bytes:
    """The bytes to send upstream: the parsed body with ``model`` set, re-serialised.

    Forwarding the client's own bytes with the model spliced in lets a body with two ``model`` keys
    through: the router reads the last one, a splice rewrites the first, LiteLLM reads the last.
    Re-serialising sends exactly what was parsed and routed, so no duplicate key of any name can
    disagree with the router.  On the captured 78 KB Claude Code body it costs 0.03–0.11 ms more
    than the splice (bench/bench_proxy.py), a few per cent of what Switchyard adds to a request.
    """
    out = {**body, "model": model}
    try:
        return orjson.dumps(out)
    except TypeError:
        # orjson writes at most 254 levels (JSONEncodeError is a TypeError) but parses 1,024; the
        # stdlib encoder recurses once per level, so give it room for what the parser took.
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 4 * 1024 + 200))
        try:
            return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()
        finally:
            sys.setrecursionlimit(limit)


def upstream_headers(client_headers: Mapping[str, str], key: str) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        # Relay bytes as they are: a compressed answer would need decoding and re-encoding.
        "accept-encoding": "identity",
        "anthropic-version": client_headers.get("anthropic-version", "2023-06-01"),
    }
    beta = client_headers.get("anthropic-beta")
    if beta:
        headers["anthropic-beta"] = beta
    if key:
        headers["x-api-key"] = key
        headers["authorization"] = f"Bearer {key}"
    return headers


def passed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """retry-after and the rate-limit headers of an upstream answer, to pass on to the client."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        low = name.lower()
        if low in _PASSED_HEADERS or low.startswith(_PASSED_PREFIXES):
            out[low] = value
    return out


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_s(attempt: int, cfg: CloudConfig, headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait before the next attempt, or None when the upstream asks for too long a wait."""
    if headers is not None:
        ra = retry_after_s(headers)
        if ra is not None:
            return ra if ra <= MAX_RETRY_AFTER_S else None
    return float(min(cfg.backoff_max_s, cfg.backoff_base_s * (2 ** (attempt - 1))))


def _error_from_upstream(status: int, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if is_anthropic_error(data):
        assert isinstance(data, dict)
        return data
    message = ""
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            message = err["message"]
        elif isinstance(err, str):
            message = err
        elif isinstance(data.get("detail"), str):
            message = data["detail"]
    if not message:
        message = raw[:300].decode("utf-8", "replace").strip() or f"HTTP {status}"
    return error_body(status, f"cloud model (LiteLLM) answered {status}: {message}")


def status_for_error(data: dict[str, Any]) -> int:
    """The HTTP status an Anthropic error object stands for (500 when its type is unknown)."""
    return _STATUS_FOR_ERROR_TYPE.get(str(data["error"].get("type")), 500)


# ----- a streamed answer, frame by frame ------------------------------------------------------------
class CloudStream:
    """A cloud SSE answer as it arrives: what may be passed on, and why it has to stop.

    :meth:`feed` takes each read and returns the bytes of the frames it completed that keep the
    grammar, in the upstream's own framing.  At the first frame that does not, it returns the good
    frames before it, sets :attr:`violation` and passes nothing more.  Frames after ``message_stop``
    are dropped (the message is complete; an error event now would make clients discard it).
    """

    __slots__ = (
        "_splitter",
        "dropped_after_end",
        "grammar",
        "input_tokens",
        "output_tokens",
        "upstream_error",
        "violation",
    )

    def __init__(self) -> None:
        self._splitter = FrameSplitter()
        self.grammar = StreamGrammar()
        self.violation: str | None = None
        self.upstream_error: dict[str, Any] | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.dropped_after_end = 0  # bytes of frames after the end, not passed on

    @property
    def done(self) -> bool:
        """Nothing more will be passed on: the stream ended or broke the grammar."""
        return self.violation is not None or self.grammar.ended

    def feed(self, chunk: bytes) -> bytes:
        return self._pass(self._splitter.feed(chunk))

    def _pass(self, frames: list[bytes]) -> bytes:
        # The hot loop of the relay: one pass per frame, locals instead of attribute lookups.
        if self.violation is not None:
            return b""
        grammar = self.grammar
        check = grammar.feed
        good: list[bytes] = []
        for frame in frames:
            if grammar.ended:
                self.dropped_after_end += len(frame)
                continue
            event, data = parse_frame(frame)
            if data is None:
                if event is None:  # a comment (keep-alive): passed on as it is
                    good.append(frame)
                    continue
                problem: str | None = f"'event: {event}' has no data"
            else:
                try:
                    obj = orjson.loads(data)
                except orjson.JSONDecodeError:
                    problem = f"the data of {'an' if event is None else repr(event)} event is not JSON"
                else:
                    problem = check(event, obj)
                    if problem is None:
                        if obj["type"] in _NOTED_EVENTS:
                            self._note(obj)
                        good.append(frame)
                        continue
            self.violation = problem
            break
        if not good:
            return b""
        return b"\n\n".join(good) + b"\n\n"

    def end(self) -> bytes:
        """End of upstream: the frames only the end completes (a stream ending in a lone \\r)."""
        return self._pass(self._splitter.end())

    def incomplete(self) -> str | None:
        """At end of upstream: why the stream is incomplete (None: it ended properly)."""
        if self.grammar.ended:
            return None
        return f"{self.grammar.finish()}{self.unfinished()}"

    def unfinished(self) -> str:
        """Words for the decision record about a trailing partial event, which is never passed on."""
        pending = len(self._splitter.pending.strip())
        return f" ({pending} bytes of an unfinished event dropped)" if pending else ""

    def _note(self, obj: dict[str, Any]) -> None:
        etype = obj["type"]
        if etype == "message_start":
            self._usage(obj["message"].get("usage"))
        elif etype == "message_delta":
            self._usage(obj.get("usage"))
        elif etype == "error" and is_anthropic_error(obj):
            self.upstream_error = obj

    def _usage(self, usage: Any) -> None:
        # message_delta's usage is cumulative: later counts replace earlier ones.
        inp, outp = usage_of(usage)
        self.input_tokens = self.input_tokens if inp is None else inp
        self.output_tokens = self.output_tokens if outp is None else outp


def usage_of(usage: Any) -> tuple[int | None, int | None]:
    """(input_tokens, output_tokens) of an Anthropic usage object, None where absent."""
    if not isinstance(usage, dict):
        return None, None
    inp, outp = usage.get("input_tokens"), usage.get("output_tokens")
    return (inp if type(inp) is int else None), (outp if type(outp) is int else None)


@dataclass
class CloudAnswer:
    """An upstream answer that may go to the client: its first checked bytes are in hand."""

    resp: aiohttp.ClientResponse
    # Streaming: the checked frames up to message_start; otherwise the whole checked body.
    head: bytes
    stream: CloudStream | None
    attempts: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    # Non-streaming: the usage of the message (a stream's is counted as it goes).
    input_tokens: int | None = None
    output_tokens: int | None = None


class _Retryable(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def _from_error_object(data: dict[str, Any], where: str) -> Exception:
    status = status_for_error(data)
    message = f"the cloud model sent an error {where}: {data['error']['message']}"[:500]
    body = error_body(status, message, str(data["error"].get("type") or "api_error"))
    return _Retryable(status, body) if status in RETRY_STATUSES else CloudError(status, body, 1)


async def _stream_head(resp: aiohttp.ClientResponse) -> tuple[bytes, CloudStream]:
    """Read until message_start has been checked.  Nothing has reached the client yet, so every
    failure here is retryable."""
    cs = CloudStream()
    head = b""
    while True:
        try:
            chunk = await resp.content.readany()
        except (aiohttp.ClientError, TimeoutError) as exc:
            msg = f"the cloud model's answer broke before it started: {type(exc).__name__}"
            raise _Retryable(502, error_body(502, msg)) from None
        if not chunk:
            cs.end()  # nothing of it can be sent before message_start anyway
            problem = cs.incomplete() or "the stream ended at once"
            raise _Retryable(502, error_body(502, f"the cloud model's stream broke before it started: {problem}"))
        head += cs.feed(chunk)
        if cs.violation is not None:
            msg = f"the cloud model's stream broke the Anthropic grammar at its start: {cs.violation}"
            raise _Retryable(502, error_body(502, msg))
        if cs.upstream_error is not None:
            raise _from_error_object(cs.upstream_error, "instead of an answer")
        if cs.grammar.started:
            return head, cs


async def _whole_body(resp: aiohttp.ClientResponse) -> tuple[bytes, dict[str, Any]]:
    """A non-streaming answer, read and checked.  Not retried when cut: by the time it is sent the
    model has done (and billed) the work, and Claude Code retries a 5xx on its own."""
    expected = resp.content_length
    of = f" of {expected}" if expected is not None else ""
    try:
        raw = await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        framing = "chunked" if expected is None else f"Content-Length {expected}"
        msg = f"the cloud model's answer was cut short ({type(exc).__name__}, {framing})"
        raise CloudError(502, error_body(502, msg), 1) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        msg = f"the cloud model's answer is not valid JSON ({len(raw)}{of} bytes); it was cut short or garbled"
        raise CloudError(502, error_body(502, msg), 1) from None
    if is_anthropic_error(data):
        raise _from_error_object(data, "with status 200")
    if not isinstance(data, dict) or data.get("type") != "message":
        raise CloudError(502, error_body(502, "the cloud model's answer is JSON but not a message"), 1)
    return raw, data


async def _attempt(
    session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict[str, str], timeout: aiohttp.ClientTimeout
) -> CloudAnswer:
    """One attempt: an answer whose first bytes are read and checked (so a retry is still possible)."""
    try:
        resp = await session.post(url, data=payload, headers=headers, timeout=timeout)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        msg = f"cannot reach the cloud model at {url}: {type(exc).__name__}"
        raise _Retryable(502, error_body(502, msg)) from None
    ok = False
    try:
        if resp.status >= 400:
            try:
                raw = await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                raw = b""
            body = _error_from_upstream(resp.status, raw)
            if resp.status in RETRY_STATUSES:
                raise _Retryable(resp.status, body, resp.headers)
            raise CloudError(resp.status, body, 1, passed_headers(resp.headers))
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            head, cs = await _stream_head(resp)
            ok = True
            return CloudAnswer(resp, head, cs, headers=passed_headers(resp.headers))
        raw, message = await _whole_body(resp)
        ok = True
        answer = CloudAnswer(resp, raw, None, headers=passed_headers(resp.headers))
        answer.input_tokens, answer.output_tokens = usage_of(message.get("usage"))
        return answer
    finally:
        # On any way out but success (errors, cancellation) the connection goes: a half-read body
        # cannot be reused.  An error answer read whole goes back to the pool.
        if not ok:
            if resp.content.is_eof():
                resp.release()
            else:
                resp.close()


def _budget(cfg: CloudConfig, stream: bool) -> tuple[float, str]:
    """How long the client may wait before its answer starts, and what to say when that runs out.
    A non-streaming answer starts when it is complete, so it gets the long-answer allowance."""
    if stream:
        t = cfg.first_byte_timeout_s
        return t, f"the cloud model did not start answering within {t:g} s (cloud.first_byte_timeout_s)"
    return cfg.timeout_s, f"the cloud model did not answer within {cfg.timeout_s:g} s (cloud.timeout_s)"


async def open_cloud(
    session: aiohttp.ClientSession,
    cfg: CloudConfig,
    key: str,
    payload: bytes,
    client_headers: Mapping[str, str],
    *,
    stream: bool,
    client_gone: Callable[[], bool] = lambda: False,
) -> CloudAnswer:
    """POST to LiteLLM with retries, within the first-byte budget.

    Returns an answer that may go to the client, or raises CloudError (the status and body to
    answer with) or ClientGone (the client left between attempts).  Cancellation propagates.
    """
    url = f"{cfg.base_url.rstrip('/')}/v1/messages"
    headers = upstream_headers(client_headers, key)
    # sock_read bounds each read once the answer flows; the budget below bounds the start.
    timeout = aiohttp.ClientTimeout(total=None, connect=cfg.connect_timeout_s, sock_read=cfg.timeout_s)
    budget, too_late = _budget(cfg, stream)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    attempt = 0
    try:
        async with asyncio.timeout_at(deadline):
            while True:
                if client_gone():
                    raise ClientGone(attempt)
                attempt += 1
                try:
                    answer = await _attempt(session, url, payload, headers, timeout)
                except _Retryable as exc:
                    wait = backoff_s(attempt, cfg, exc.headers) if attempt < cfg.max_attempts else None
                    if wait is None or loop.time() + wait >= deadline:
                        # Out of attempts, or the wait would outlast the budget: say so now, with the
                        # upstream's own retry-after for the client to honour.
                        raise CloudError(exc.status, exc.body, attempt, passed_headers(exc.headers or {})) from None
                    log.info("cloud attempt %d failed (%s); retrying in %.2f s", attempt, exc.status, wait)
                    await asyncio.sleep(wait)
                    continue
                except CloudError as exc:
                    exc.attempts = attempt
                    raise
                answer.attempts = attempt
                return answer
    except TimeoutError:
        raise CloudError(504, error_body(504, too_late), attempt) from None


# ----- relaying -------------------------------------------------------------------------------------
async def _pump(resp: aiohttp.ClientResponse, cs: CloudStream, out: web.StreamResponse) -> str | None:
    """Pass checked frames on until the stream ends; returns why it broke (None: it ended properly)."""
    while not cs.done:
        try:
            chunk = await resp.content.readany()
        except aiohttp.ServerTimeoutError:
            return f"cloud stream stalled: no data for cloud.timeout_s{cs.unfinished()}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"cloud stream broke: {type(exc).__name__}{cs.unfinished()}"
        if not chunk:
            last = cs.end()
            if last:
                await out.write(last)
            if cs.done:
                break
            return f"cloud stream ended early: {cs.incomplete()}"
        good = cs.feed(chunk)
        if good:
            await out.write(good)
    if cs.violation is not None:
        return f"cloud stream broke the Anthropic grammar: {cs.violation}"
    return None


async def _drain(resp: aiohttp.ClientResponse, cs: CloudStream) -> bool:
    """After message_stop: read the rest of the upstream body so its connection can be reused.
    Returns False when it did not end in time (the connection is then closed)."""
    try:
        async with asyncio.timeout(DRAIN_S):
            while chunk := await resp.content.readany():
                cs.feed(chunk)
    except (aiohttp.ClientError, TimeoutError):
        return False
    return True


async def relay(
    request: web.Request,
    answer: CloudAnswer,
    stats: RelayStats,
    started: float,
    extra_headers: Mapping[str, str],
) -> web.StreamResponse:
    """Send the cloud's answer on: a checked body whole, or a stream frame by frame."""
    resp = answer.resp
    stats.status = resp.status
    content_type = resp.headers.get("content-type", "application/json")
    headers = {"content-type": content_type, **answer.headers, **extra_headers}
    cs = answer.stream
    if cs is None:
        resp.release()
        stats.input_tokens, stats.output_tokens = answer.input_tokens, answer.output_tokens
        stats.ttft_ms = (time.monotonic() - started) * 1000
        return web.Response(status=resp.status, body=answer.head, headers=headers)
    reusable = False
    try:
        out = web.StreamResponse(status=resp.status, headers=headers)
        await out.prepare(request)
        await out.write(answer.head)
        stats.ttft_ms = (time.monotonic() - started) * 1000
        broken = await _pump(resp, cs, out)
        stats.input_tokens, stats.output_tokens = cs.input_tokens, cs.output_tokens
        if broken is not None:
            stats.truncated = broken
            await out.write(encode_event("error", error_body(502, f"{broken}; the answer is incomplete")))
        elif cs.upstream_error is not None:
            message = cs.upstream_error["error"]["message"]
            stats.note = f"the cloud model ended the stream with an error event: {message}"
        await out.write_eof()
        stats.sent_whole = True
        # The client has everything; what is left upstream is read only to keep the connection.
        reusable = broken is None and await _drain(resp, cs)
        if cs.dropped_after_end:
            stats.note = f"the cloud model sent {cs.dropped_after_end} bytes of events after message_stop (dropped)"
        return out
    finally:
        if reusable:
            resp.release()
        else:
            resp.close()

