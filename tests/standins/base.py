"""Shared machinery for the stand-in servers: an aiohttp app on its own thread and event loop.

Why a thread: the same server must be reachable from sync tests, async tests (whose event loop
belongs to pytest) and subprocesses (LiteLLM, the Claude Code CLI).  Each server binds its own
loopback socket on an ephemeral port before the thread starts, so ``.url`` is known immediately
and there is no port race.

API (every stand-in subclasses :class:`StandinServer`)::

    with AnthropicUpstream() as srv:        # or srv.start() ... srv.stop()
        srv.url                              # "http://127.0.0.1:PORT" (kept across stop/start)
        srv.stop(); srv.start()              # down, then back on the same port
        srv.requests                         # list[RecordedRequest], a snapshot copy
        srv.wait_for_requests(2, timeout=10) # block until at least 2 were received
        srv.clear()                          # forget recorded requests (scripts are kept)

A :class:`RecordedRequest` holds ``method``, ``path`` (no query), ``query`` (dict), ``headers``
(a case-insensitive ``Headers`` mapping), ``body`` (raw bytes), ``json`` (parsed body or None)
and ``tag`` (what the stand-in took the request for, e.g. "messages", "chat", "classify").
Recording happens before the handler runs, so even requests answered with a fault are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

_RECORD_KEY = web.RequestKey("standin_record", object)


class Headers(Mapping[str, str]):
    """An immutable, case-insensitive header mapping (last value wins for repeated names)."""

    def __init__(self, items: Mapping[str, str] | list[tuple[str, str]]) -> None:
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        self._orig: dict[str, str] = {}
        self._lower: dict[str, str] = {}
        for k, v in pairs:
            self._orig[k] = v
            self._lower[k.lower()] = v

    def __getitem__(self, key: str) -> str:
        return self._lower[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lower

    def __iter__(self) -> Iterator[str]:
        return iter(self._orig)

    def __len__(self) -> int:
        return len(self._orig)

    def __repr__(self) -> str:
        return f"Headers({self._orig!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes
    json: Any
    tag: str = ""
    received_at: float = field(default_factory=time.monotonic)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    except RecursionError:
        # Deeper than json.loads can go (hostile-input tests): orjson reads 1,024 levels.
        try:
            return orjson.loads(body)
        except ValueError:
            return None


class StandinServer:
    """Base class: subclasses implement :meth:`routes` and may set tags via :meth:`tag_request`."""

    #: Seconds aiohttp waits for in-flight handlers at stop before cancelling them.
    shutdown_timeout: float = 1.0

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        # Set (on the server loop) at stop, so handlers stalling "forever" return promptly.
        self._stopping: asyncio.Event | None = None

    # ----- lifecycle -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port; still known after :meth:`stop` (handy for "connection refused" tests)."""
        if self._requested_port == 0:
            raise RuntimeError(f"{type(self).__name__} was never started")
        return self._requested_port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        if self.running:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        # Later starts (after stop()) come back on the same port.
        self._requested_port = sock.getsockname()[1]
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, name=f"standin-{type(self).__name__}", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError(f"{type(self).__name__} did not start within 15 s")
        if self._startup_error is not None:
            raise RuntimeError(f"{type(self).__name__} failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(self._request_stop)
        thread.join(15)
        self._thread = None
        self._loop = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def restart(self) -> Self:
        """Stop and start again on the same port (recorded requests and scripts are kept)."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ----- recording -------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_tagged(self, tag: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.tag == tag]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for_requests(self, count: int, timeout: float = 10.0, tag: str | None = None) -> list[RecordedRequest]:
        """Block until at least ``count`` requests (with ``tag``, if given) arrived; return them."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self._requests if tag is None or r.tag == tag]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                raise TimeoutError(
                    f"{type(self).__name__}: expected {count} request(s)"
                    f"{'' if tag is None else f' tagged {tag!r}'}, got {len(matching())} in {timeout} s"
                )
            return matching()

    # ----- for subclasses --------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def tag_request(self, method: str, path: str, body_json: Any) -> str:
        """The tag recorded with a request; subclasses override."""
        return ""

    @staticmethod
    def record_of(request: web.Request) -> RecordedRequest:
        rec = request[_RECORD_KEY]
        assert isinstance(rec, RecordedRequest)
        return rec

    async def wait_or_stop(self, seconds: float | None) -> None:
        """Sleep ``seconds`` (None: until the server stops)."""
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    @staticmethod
    def abort_connection(request: web.Request) -> None:
        """Drop the TCP connection at once, without finishing the HTTP response."""
        transport = request.transport
        if transport is not None:
            transport.abort()

    # ----- internals -------------------------------------------------------------------------------
    @web.middleware
    async def _record_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        body = await request.read()
        parsed = _parse_json(body)
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=Headers(list(request.headers.items())),
            body=body,
            json=parsed,
            tag=self.tag_request(request.method, request.path, parsed),
        )
        request[_RECORD_KEY] = rec
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()
        resp = await handler(request)
        assert isinstance(resp, web.StreamResponse)
        return resp

    def _request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        try:
            app = web.Application(middlewares=[self._record_middleware], client_max_size=256 * 1024 * 1024)
            self.routes(app)
            runner = web.AppRunner(app, shutdown_timeout=self.shutdown_timeout, access_log=None)
            await runner.setup()
            assert self._sock is not None
            site = web.SockSite(runner, self._sock)
            await site.start()
            self._runner = runner
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (bound, then released for a child process to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sse_event(event: str, data: Mapping[str, Any]) -> bytes:
    """One Server-Sent Event in Anthropic's framing: ``event:`` line, ``data:`` line, blank line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def sse_data(data: Mapping[str, Any] | str) -> bytes:
    """One OpenAI-style SSE line: ``data: JSON`` (or a literal such as ``[DONE]``) and a blank line."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()
