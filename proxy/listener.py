"""The HTTP layer under the app: malformed HTTP, connection limits, and what a dropped client means.

aiohttp answers requests it cannot parse (broken chunked framing, overlong lines, HTTP/2 prefaces,
bad ``Expect``) itself, before any middleware runs: in ``text/plain``, with a full traceback in the
log for each one.  A client sending garbage in a loop wrote about 1.2 MB/s of tracebacks.  aiohttp
has no setting for either, so :class:`SwitchyardRequestHandler` subclasses its ``RequestHandler``:

* ``handle_error`` answers Anthropic error JSON (same status as aiohttp's) whose message names the
  problem without echoing the client's bytes, and logs one line, rate-limited;
* ``finish_response`` turns an ``HTTPException`` raised outside the middlewares (the router's
  ``Expect`` handler) into the same JSON;
* ``connection_made`` enforces the connection cap (below).

:class:`SwitchyardServer` makes those handlers, and :class:`SwitchyardRunner` makes that server
(aiohttp builds ``RequestHandler`` in ``Server.__call__`` and the server in
``AppRunner._make_server``: those two are the hooks; ``tests/test_fault_suite.py`` fails if a new
aiohttp moves them).  Handler cancellation is on: when a client disconnects, its request's task is
cancelled, so nothing keeps working (or paying the cloud) for nobody.

Connections are capped below the descriptor limit, which is raised to its hard limit at start:
1,100 idle connections used to exhaust a 1,024-descriptor limit, after which every new request was
closed unanswered.  Over the cap, idle keep-alive connections are closed first (oldest first; HTTP
allows closing an idle connection at any time); when every connection is busy, a new one is answered
503 Anthropic JSON on its first request (or closed when it sends nothing for a few seconds), and
far over the cap it is closed at once.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import http_exceptions, web, web_protocol

from proxy.errors import error_response
from proxy.server_log import RateLimit, log_limited, one_line

log = logging.getLogger("switchyard.http")

# Malformed requests: one line each, at most this many per window (then a count of the rest).
_PROTOCOL_LOG = RateLimit(limit=20, window_s=10.0)
# A connection over the cap that sends nothing is closed after this long.
OVER_CAPACITY_IDLE_S = 5.0
# Beyond the cap by this many, a new connection is closed at once: it would only hold a descriptor.
OVER_CAPACITY_SLACK = 32


# --- protocol errors ------------------------------------------------------------------------------

_FIXED_WORDING: dict[type[BaseException], str] = {
    http_exceptions.LineTooLong: "a request line or header is longer than the limit",
    http_exceptions.BadHttpMethod: "the request does not start with an HTTP method (HTTPS or another protocol?)",
    http_exceptions.InvalidURLError: "the request target is not a valid URL",
    http_exceptions.ContentEncodingError: "Content-Encoding not supported: send the body plain, gzip or deflate",
}


def describe_protocol_error(exc: BaseException | None, status: int) -> str:
    """One line saying what was wrong with the request, without the client's bytes.

    aiohttp's messages quote the offending input (a header line may hold a key), so only the part
    before the quotation is kept: "Invalid character in chunk size:\\n\\n  b'zz'" → "Invalid
    character in chunk size".
    """
    if exc is None:
        try:
            return HTTPStatus(status).phrase
        except ValueError:
            return "bad request"
    for kind, wording in _FIXED_WORDING.items():
        if isinstance(exc, kind):
            return wording
    text = getattr(exc, "message", None) or str(exc)
    head = str(text).split("\n\n")[0]
    head = head.split(": b'")[0].split(": bytearray(")[0].rstrip(":")
    return one_line(head, 120) or type(exc).__name__


_HTTP_EXCEPTION_WORDING = {417: "the Expect header asks for something other than 100-continue"}


def protocol_error_response(status: int, description: str) -> web.Response:
    # 415 is about what the body is, not about HTTP itself being broken.
    resp = error_response(status, description if status == 415 else f"malformed HTTP request: {description}")
    resp.force_close()
    return resp


def _peer(request: web.BaseRequest) -> str:
    try:
        return str(request.remote or "?")
    except Exception:  # no transport any more
        return "?"


class SwitchyardRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, answering in Anthropic's shape and logging one line per error."""

    __slots__ = ("over_capacity",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.over_capacity = False

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, http_exceptions.ContentEncodingError):
            # An encoding aiohttp cannot decode here (br, zstd without their modules) is refused when
            # the headers arrive: the same 415 the app gives any encoding it does not take.
            status = 415
        description = describe_protocol_error(exc, status)
        log_limited(log, _PROTOCOL_LOG, logging.INFO, "%s from %s -> %d: %s", "malformed HTTP request",
                    _peer(request), status, description)
        if request.writer.output_size > 0:
            # Part of an answer is out already: nothing well-formed can follow (aiohttp's rule too).
            raise ConnectionError("response already started; cannot send an error response")
        return protocol_error_response(status, description)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if isinstance(resp, web.HTTPException) and not resp.prepared:
            # Raised before the middlewares ran (the router's Expect handler): same JSON as the rest.
            # The log gets the status's name only: aiohttp's text quotes the client's header.
            log_limited(log, _PROTOCOL_LOG, logging.INFO, "%s %s from %s -> %d: %s", request.method,
                        request.path, _peer(request), resp.status, resp.reason)
            message = _HTTP_EXCEPTION_WORDING.get(resp.status) or one_line(resp.text or resp.reason, 120)
            converted = error_response(resp.status, message)
            for name in ("Allow", "Retry-After"):
                if name in resp.headers:
                    converted.headers[name] = resp.headers[name]
            resp = converted
        return await super().finish_response(request, resp, start_time)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # aiohttp's other error reports (an unhandled error in its own loop): one line, not a traceback.
        exc = kw.get("exc_info")
        detail = f": {type(exc).__name__}: {one_line(exc, 120)}" if isinstance(exc, BaseException) else ""
        message = (args[0] % args[1:]) if args and len(args) > 1 else (args[0] if args else "error")
        log_limited(log, _PROTOCOL_LOG, logging.WARNING, "%s%s", one_line(message, 200), detail)


# --- the server and its connections ---------------------------------------------------------------


@dataclass
class ConnectionStats:
    """The connection cap and what it did, shared with the app for /health."""

    max: int
    open: int = 0
    closed_idle: int = 0  # idle keep-alive connections closed to make room
    refused: int = 0  # connections answered 503 (or closed) because every slot was busy

    def as_json(self) -> dict[str, int]:
        return {"open": self.open, "max": self.max, "closed_idle": self.closed_idle, "refused": self.refused}


class SwitchyardServer(web.Server):
    """aiohttp's ``Server``, making :class:`SwitchyardRequestHandler` connections under a cap."""

    stats: ConnectionStats

    def __call__(self) -> web_protocol.RequestHandler:
        return SwitchyardRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_lost(self, handler: web_protocol.RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.stats.open = max(0, self.stats.open - 1)

    def connection_made(self, handler: web_protocol.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.stats.open += 1
        excess = self.stats.open - self.stats.max
        if excess <= 0:
            return
        for other in list(self._connections):  # insertion order: oldest first
            if excess <= 0:
                break
            if other is not handler and other.transport is not None and _idle(other):
                other.force_close()  # connection_lost follows at once and counts it out
                self.stats.closed_idle += 1
                excess -= 1
        if excess <= 0:
            return
        self.stats.refused += 1
        if excess > OVER_CAPACITY_SLACK:
            transport.close()
            return
        if isinstance(handler, SwitchyardRequestHandler):
            handler.over_capacity = True
        self._loop.call_later(OVER_CAPACITY_IDLE_S, _close_if_idle, handler)


def _idle(handler: web_protocol.RequestHandler) -> bool:
    """No request being handled and none queued: closing it loses nothing."""
    return not handler._request_in_progress and not handler._messages


def _close_if_idle(handler: web_protocol.RequestHandler) -> None:
    if handler.transport is not None and _idle(handler):
        handler.force_close()


@web.middleware
async def capacity_middleware(
    request: web.Request, handler: Any
) -> web.StreamResponse:
    """The first request on a connection accepted over the cap: 503, and the connection closes."""
    protocol = request.protocol
    if isinstance(protocol, SwitchyardRequestHandler) and protocol.over_capacity:
        resp = error_response(503, "Switchyard has too many open connections; retry in a moment")
        resp.headers["Retry-After"] = "1"
        resp.force_close()
        return resp
    response: web.StreamResponse = await handler(request)
    return response


class SwitchyardRunner(web.AppRunner):
    """``AppRunner`` serving through :class:`SwitchyardServer`, with handler cancellation on."""

    def __init__(self, app: web.Application, *, stats: ConnectionStats, **kwargs: Any) -> None:
        kwargs.setdefault("handler_cancellation", True)
        kwargs.setdefault("access_log", None)
        super().__init__(app, **kwargs)
        self._stats = stats

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # Server.__init__ only stores what it was given; adopting the subclass keeps all of it.
        server.__class__ = SwitchyardServer
        assert isinstance(server, SwitchyardServer)
        server.stats = self._stats
        return server


# --- descriptors ----------------------------------------------------------------------------------

# Descriptors kept free for everything but client connections: the two upstream pools (cloud 200,
# local 64), the listening socket, the log files, the event loop's own.
DESCRIPTOR_RESERVE = 200 + 64 + 64
MIN_CONNECTIONS = 16


def raise_descriptor_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit (at most 2**20); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    target = min(target, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(configured: int, descriptor_limit: int) -> int:
    """How many client connections to accept: the configured cap, kept below the descriptor limit."""
    room = descriptor_limit - DESCRIPTOR_RESERVE
    if room < MIN_CONNECTIONS:
        room = max(MIN_CONNECTIONS, descriptor_limit // 4)
    return max(1, min(configured, room))
