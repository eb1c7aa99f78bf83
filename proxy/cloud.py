"""The cloud path: forward an Anthropic request to LiteLLM's /v1/messages and relay the answer.

What is forwarded is what the router decided: the parsed body with the model set, re-serialised
(a body with two ``model`` keys cannot smuggle a second model past the router, see
:func:`cloud_payload`).  The answer is relayed byte for byte (no re-encoding: the cloud's stream
is already what Claude Code expects, and parsing it would only add latency).  Until the first
byte has been sent to the client, connection errors, 429, 5xx and 529 are retried with exponential
backoff that honours retry-after; afterwards a broken stream is ended with an Anthropic `error`
event, never silently truncated.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from proxy.config import CloudConfig
from proxy.errors import error_body, is_anthropic_error

log = logging.getLogger("switchyard.cloud")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
# A retry-after longer than this is not worth holding Claude Code for: give up at once instead.
MAX_RETRY_AFTER_S = 60.0
_INPUT_TOKENS_RE = re.compile(rb'"input_tokens"\s*:\s*(\d+)')
_OUTPUT_TOKENS_RE = re.compile(rb'"output_tokens"\s*:\s*(\d+)')
_TAIL = 96


class CloudError(Exception):
    """The cloud could not answer; carries the status and Anthropic error body for the client."""

    def __init__(self, status: int, body: dict[str, Any], attempts: int) -> None:
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body
        self.attempts = attempts


@dataclass
class RelayStats:
    status: int = 0
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    attempts: int = 0
    truncated: str | None = None


def cloud_payload(body: dict[str, Any], model: str) -> bytes:
    """The bytes to send upstream: the parsed body with ``model`` set, re-serialised.

    Forwarding the client's own bytes with the model spliced in lets a body with two ``model`` keys
    through: the router reads the last one, a splice rewrites the first, LiteLLM reads the last.
    Re-serialising sends exactly what was parsed and routed, so no duplicate key of any name can
    disagree with the router.  On the captured 78 KB Claude Code body it costs 0.06 ms against
    0.02 ms for the splice (bench/bench_proxy.py), about 3 % of what Switchyard adds to a request.
    """
    out = {**body, "model": model}
    try:
        return orjson.dumps(out)
    except TypeError:  # pragma: no cover - orjson.loads output always round-trips; kept for safety
        return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()


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


class _Retryable(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None) -> None:
        self.status = status
        self.body = body
        self.headers = headers


async def _attempt(
    session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict[str, str], timeout: aiohttp.ClientTimeout
) -> tuple[aiohttp.ClientResponse, bytes]:
    """One attempt: the response with its first body bytes already read (so a retry is still possible)."""
    try:
        resp = await session.post(url, data=payload, headers=headers, timeout=timeout)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        msg = f"cannot reach the cloud model at {url}: {type(exc).__name__}"
        raise _Retryable(502, error_body(502, msg), None) from None
    if resp.status >= 400:
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            raw = b""
        resp.release()
        body = _error_from_upstream(resp.status, raw)
        if resp.status in RETRY_STATUSES:
            raise _Retryable(resp.status, body, resp.headers)
        raise CloudError(resp.status, body, 1)
    try:
        first = await resp.content.readany()
    except (aiohttp.ClientError, TimeoutError) as exc:
        resp.release()
        msg = f"the cloud model's answer broke before it started: {type(exc).__name__}"
        raise _Retryable(502, error_body(502, msg), None) from None
    if not first:
        resp.release()
        raise _Retryable(502, error_body(502, "the cloud model sent an empty answer"), None)
    return resp, first


async def open_cloud(
    session: aiohttp.ClientSession,
    cfg: CloudConfig,
    key: str,
    payload: bytes,
    client_headers: Mapping[str, str],
) -> tuple[aiohttp.ClientResponse, bytes, int]:
    """POST to LiteLLM with retries.  Returns (response, first bytes, attempts) or raises CloudError."""
    url = f"{cfg.base_url.rstrip('/')}/v1/messages"
    headers = upstream_headers(client_headers, key)
    timeout = aiohttp.ClientTimeout(total=None, connect=cfg.connect_timeout_s, sock_read=cfg.timeout_s)
    attempt = 0
    while True:
        attempt += 1
        try:
            resp, first = await _attempt(session, url, payload, headers, timeout)
            return resp, first, attempt
        except _Retryable as exc:
            wait = backoff_s(attempt, cfg, exc.headers) if attempt < cfg.max_attempts else None
            if wait is None:
                raise CloudError(exc.status, exc.body, attempt) from None
            log.info("cloud attempt %d failed (%s); retrying in %.2f s", attempt, exc.status, wait)
            await asyncio.sleep(wait)
        except CloudError as exc:
            exc.attempts = attempt
            raise


def _last_int(pattern: re.Pattern[bytes], window: bytes) -> int | None:
    last = None
    for last in pattern.finditer(window):  # noqa: B007 - we want the final match
        pass
    return int(last.group(1)) if last is not None else None


def _scan_usage(window: bytes, stats: RelayStats) -> None:
    """Pick token counts out of the relayed bytes without parsing the stream."""
    found = _last_int(_INPUT_TOKENS_RE, window)
    if found is not None:
        stats.input_tokens = found
    found = _last_int(_OUTPUT_TOKENS_RE, window)
    if found is not None:
        stats.output_tokens = found


STREAM_END_MARKERS = (b"message_stop", b"event: error")


async def relay(
    request: web.Request,
    resp: aiohttp.ClientResponse,
    first: bytes,
    stats: RelayStats,
    started: float,
    extra_headers: Mapping[str, str],
) -> web.StreamResponse:
    """Relay the cloud's answer to the client byte for byte."""
    stats.status = resp.status
    content_type = resp.headers.get("content-type", "application/json")
    streaming = content_type.startswith("text/event-stream")
    out = web.StreamResponse(status=resp.status, headers={"content-type": content_type, **extra_headers})
    if not streaming and resp.content_length is not None:
        out.content_length = resp.content_length
    await out.prepare(request)
    await out.write(first)
    stats.ttft_ms = (time.monotonic() - started) * 1000
    tail = first[-_TAIL:]
    _scan_usage(first, stats)
    ended = any(marker in first for marker in STREAM_END_MARKERS)
    broken: str | None = None
    try:
        async for chunk in resp.content.iter_any():
            await out.write(chunk)
            window = tail + chunk
            _scan_usage(window, stats)
            if not ended and any(marker in window for marker in STREAM_END_MARKERS):
                ended = True
            tail = window[-_TAIL:]
    except (aiohttp.ClientError, TimeoutError) as exc:
        broken = f"cloud stream broke: {type(exc).__name__}"
    finally:
        resp.release()
    if streaming and not ended:
        broken = broken or "cloud stream ended before message_stop"
    if broken:
        stats.truncated = broken
        if streaming:
            event = error_body(502, f"{broken}; the answer is incomplete")
            await out.write(b"event: error\ndata: " + json.dumps(event).encode() + b"\n\n")
    await out.write_eof()
    return out
