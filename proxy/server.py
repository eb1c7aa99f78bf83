"""The aiohttp server Claude Code talks to as if it were Anthropic.

I/O lives here: reading and checking requests, asking for health and classification when the pure
routing function needs them, answering through the cloud or local path, and writing one decision
record per routed request.  The decisions themselves are made in ``proxy.routing``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from proxy import __version__, jsonio, record_ids
from proxy.capabilities import capabilities_json
from proxy.classifier import classify, classify_budget, classify_dialect, compact_view
from proxy.cloud import ClientGone, CloudError, RelayStats, cloud_payload, open_cloud, relay
from proxy.config import Config, ConfigError, load_prompt, local_dialect
from proxy.conversation import RequestFacts, extract_facts, strip_subagent_tag
from proxy.decision_detail import BROKEN_DETAIL
from proxy.decision_log import DecisionLog, DecisionRecord, utc_iso
from proxy.errors import error_body, error_response
from proxy.health import LocalHealth
from proxy.host import pidfile
from proxy.listener import (
    ConnectionStats,
    SwitchyardRunner,
    capacity_middleware,
    connection_cap,
    raise_descriptor_limit,
)
from proxy.local_answer import Fallback, LocalOutcome, LocalRequest, answer_local
from proxy.routing import (
    NEED_CLASSIFICATION,
    NEED_HEALTH,
    Decision,
    Outcome,
    Signals,
    decide,
)
from proxy.server_log import RateLimit, log_limited, one_line, setup_logging
from proxy.sse import encode_event
from proxy.tokens import LocalTokenRatio, estimate_request_tokens
from proxy.turn_memory import TurnMemory
from proxy.validation import check_messages_body

log = logging.getLogger("switchyard")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class State:
    cfg: Config
    router_key: bytes
    cloud_key: str
    local_key: str
    prompt: str
    health: LocalHealth
    memory: TurnMemory
    decisions: DecisionLog
    connections: ConnectionStats
    started: float = field(default_factory=time.monotonic)
    requests: int = 0  # Messages requests that passed the input checks (each gets a decision record)
    cloud_session: aiohttp.ClientSession | None = None
    local_session: aiohttp.ClientSession | None = None
    token_ratio: LocalTokenRatio = field(default_factory=LocalTokenRatio)
    # Messages requests being answered (their handler tasks), for the drain at shutdown.
    inflight: set[asyncio.Task[Any]] = field(default_factory=set)
    # Set when the shutdown grace period is over and the answers still running are being cut.
    cutting: bool = False
    # The install's key for prompt hashes and project ids (empty: records carry neither).
    hash_key: bytes = b""


STATE: web.AppKey[State] = web.AppKey("state", State)
# The response a request's handler prepared (relay and stream_local make their own): what a
# shutdown cut writes its closing error event into.
PREPARED: web.RequestKey[web.StreamResponse] = web.RequestKey("switchyard_prepared", web.StreamResponse)


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- middlewares ---------------------------------------------------------------------------------


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as Anthropic error JSON, never aiohttp's HTML page or a dropped socket."""
    try:
        return await handler(request)
    except BadRequest as exc:
        log_limited(log, _CLIENT_ERRORS, logging.WARNING, "%s %s -> %d: %s", request.method, request.path,
                    exc.status, one_line(exc))
        return error_response(exc.status, str(exc))
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(404, f"no such endpoint: {request.method} {request.path}")
        if exc.status == 405:
            return error_response(405, f"method {request.method} is not allowed on {request.path}")
        if exc.status == 413:
            limit = request.app[STATE].cfg.listen.max_body_bytes
            return error_response(413, f"request body is larger than the {limit}-byte limit (listen.max_body_bytes)")
        return error_response(exc.status, exc.reason)
    except ConnectionError:
        raise  # the client is gone: there is nobody to answer
    except Exception as exc:
        # A bug, not the client's fault: answer in Anthropic's shape all the same, and keep the
        # traceback (rate-limited: a client able to trigger it must not be able to flood the log).
        log_limited(
            log,
            _UNEXPECTED,
            logging.ERROR,
            "%s %s -> 500: unexpected %s: %s",
            request.method,
            request.path,
            type(exc).__name__,
            one_line(exc),
            exc_info=True,
        )
        return error_response(500, f"Switchyard failed on this request ({type(exc).__name__}); see its log")


# Unexpected errors: a few tracebacks a minute is plenty to find the bug.
_UNEXPECTED = RateLimit(limit=5, window_s=60.0)
# Requests refused for what the client sent (bad input, wrong key): a client in a loop must not be
# able to fill the log, and the first lines of a burst say all there is to say.
_CLIENT_ERRORS = RateLimit(limit=50, window_s=10.0)


def _presented_key(request: web.Request) -> bytes:
    """The key the client sent, as the bytes it sent.

    aiohttp decodes header bytes as UTF-8 with surrogate escapes, so a non-UTF-8 byte arrives as a
    lone surrogate: encoding it back the same way gives the original bytes (a plain ``.encode()``
    raised UnicodeEncodeError, a 500), and a wrong key of any bytes is simply a wrong key.
    """
    key = request.headers.get("x-api-key", "")
    if not key:
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        key = value.strip() if scheme.lower() == "bearer" else ""
    return key.encode("utf-8", "surrogateescape")


def not_utf8_header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` whose value held bytes that are not UTF-8, or None."""
    for name in names:
        value = headers.get(name)
        if value is None or value.isascii():
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return name
    return None


# Headers Switchyard reads, logs or forwards upstream: each must be text.  Others are ignored.
_TEXT_HEADERS = ("content-type", "content-encoding", "anthropic-version", "anthropic-beta", "x-claude-code-session-id")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/":
        return await handler(request)
    expected = request.app[STATE].router_key
    if expected:
        presented = _presented_key(request)
        if not presented and request.path == "/health":
            # Service managers, containers and the guides users follow probe /health without a key:
            # they get liveness only (health() shows no detail without the key); a wrong key is a 401.
            return await handler(request)
        # compare_digest runs in time independent of where the strings differ.
        if not presented or not hmac.compare_digest(presented, expected):
            log_limited(log, _CLIENT_ERRORS, logging.WARNING, "%s %s -> 401: missing or wrong router key",
                        request.method, request.path)
            return error_response(
                401, "missing or invalid router key: send it in x-api-key or Authorization: Bearer"
            )
    bad = not_utf8_header(request.headers, _TEXT_HEADERS)
    if bad is not None:
        raise BadRequest(400, f"header {bad} is not valid UTF-8")
    return await handler(request)


# --- simple endpoints ----------------------------------------------------------------------------


async def root(request: web.Request) -> web.Response:
    return web.Response(text="Switchyard is running\n")


async def health(request: web.Request) -> web.Response:
    """Liveness for anyone; with the router key (or none configured) the full detail."""
    st = request.app[STATE]
    if st.router_key and not _presented_key(request):
        return web.json_response({"status": "ok", "version": __version__, "detail": "send the router key for more"})
    assert st.local_session is not None
    local_up = await st.health.is_up(st.local_session)
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "local_up": local_up,
            "local": capabilities_json(st.health.capabilities),
            # The local server's own prompt counts over the estimate (the context check uses it).
            "local_token_factor": {"value": round(st.token_ratio.value, 3), "samples": st.token_ratio.samples},
            "uptime_s": round(time.monotonic() - st.started, 3),
            "pid": os.getpid(),
            "requests": st.requests,
            "decisions": st.decisions.status(),
            "connections": st.connections.as_json(),
        }
    )


# Request bodies may be compressed with what aiohttp decodes (it does, before the handler reads the
# body, within client_max_size of *decoded* bytes, so a zip bomb gets 413).  Claude Code sends plain
# bodies; a client that compresses gets the same answer as one that does not.
ACCEPTED_ENCODINGS = frozenset({"", "identity", "gzip", "deflate"})


def body_encoding_problem(content_encoding: str) -> str | None:
    """Why a request body with this Content-Encoding cannot be read, or None."""
    if content_encoding.strip().lower() in ACCEPTED_ENCODINGS:
        return None
    return f"Content-Encoding {content_encoding!r} is not supported: send the body plain, gzip or deflate"


def payload_problem(exc: web.RequestPayloadError, content_encoding: str) -> str:
    """One line for a body aiohttp could not read (bad compression, broken chunked framing)."""
    cause = exc.__cause__ or exc.__context__
    text = str(cause or exc).lower()
    if "content-encoding" in text or "decompress" in text:
        return f"request body is not valid {content_encoding.strip().lower() or 'compressed'} data (Content-Encoding)"
    if "chunk" in text:
        return "request body has broken chunked framing (Transfer-Encoding: chunked)"
    return "request body ended before its Content-Length"


async def _read_json(request: web.Request) -> tuple[Any, bytes]:
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise BadRequest(415, f"content-type must be application/json, got {ctype or 'none'}")
    encoding = request.headers.get("content-encoding", "")
    problem = body_encoding_problem(encoding)
    if problem:
        raise BadRequest(415, problem)
    limit = request.app[STATE].cfg.listen.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(413, f"request body is larger than the {limit}-byte limit (listen.max_body_bytes)")
    try:
        async with asyncio.timeout(request.app[STATE].cfg.listen.body_read_timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise BadRequest(408, "the request body did not arrive in time") from None
    except web.RequestPayloadError as exc:
        raise BadRequest(400, payload_problem(exc, encoding)) from None
    return parse_body(raw), raw


def parse_body(raw: bytes) -> Any:
    try:
        return jsonio.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise BadRequest(
                400, f"request body is nested more than {jsonio.MAX_DEPTH} levels deep; flatten it"
            ) from None
        raise BadRequest(400, f"request body is not valid JSON: {exc}") from None


async def count_tokens(request: web.Request) -> web.Response:
    body, _ = await _read_json(request)
    problem = check_messages_body(body, require_max_tokens=False)
    if problem:
        raise BadRequest(400, problem)
    return web.json_response({"input_tokens": estimate_request_tokens(body)})


# --- routing -------------------------------------------------------------------------------------


async def _decide(st: State, facts: RequestFacts, record: DecisionRecord) -> Decision:
    session = facts.session
    signals = Signals(turn_forced_cloud=st.memory.is_forced_cloud(session, facts.turn_key))
    outcome: Outcome = decide(facts, signals, st.cfg)
    if outcome is NEED_HEALTH:
        assert st.local_session is not None
        up = await st.health.is_up(st.local_session)
        record.local_up = up
        signals = Signals(
            local_up=up,
            cached=st.memory.verdict(session, facts.turn_key),
            turn_forced_cloud=signals.turn_forced_cloud,
            capabilities=st.health.capabilities,
            local_token_factor=st.token_ratio.factor,
        )
        outcome = decide(facts, signals, st.cfg)
    if outcome is NEED_CLASSIFICATION:
        assert st.local_session is not None
        result = await classify(
            st.local_session,
            st.cfg.local,
            st.cfg.routing,
            st.prompt,
            compact_view(facts),
            st.local_key,
            dialect=classify_dialect(st.cfg.local, st.health.capabilities),
            max_tokens=classify_budget(st.cfg.routing, st.health.capabilities),
        )
        record.classify_ms = result.elapsed_ms
        st.memory.remember(session, facts.turn_key, result)
        outcome = decide(
            facts,
            Signals(
                local_up=True,
                classification=result,
                capabilities=st.health.capabilities,
                local_token_factor=st.token_ratio.factor,
            ),
            st.cfg,
        )
    assert isinstance(outcome, Decision)
    return outcome


# --- answering -----------------------------------------------------------------------------------


def _transport_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def answer_cloud(
    request: web.Request, st: State, payload: bytes, model: str, record: DecisionRecord, started: float
) -> web.StreamResponse:
    assert st.cloud_session is not None
    record.route = "cloud"
    record.model = model
    try:
        answer = await open_cloud(
            st.cloud_session,
            st.cfg.cloud,
            st.cloud_key,
            payload,
            request.headers,
            stream=record.stream,
            client_gone=lambda: _transport_gone(request),
        )
    except CloudError as exc:
        record.status = exc.status
        record.detail = f"cloud failed after {exc.attempts} attempt(s): {exc.body['error']['message']}"[:300]
        return web.json_response(exc.body, status=exc.status, headers=exc.headers)
    except ClientGone as exc:
        record.status = 499
        record.detail = str(exc)
        return web.Response(status=499)
    stats = RelayStats(attempts=answer.attempts)
    try:
        return await relay(request, answer, stats, started, {"x-switchyard-route": "cloud"})
    finally:
        # Also when the relay is cut short (client gone, shutdown: messages() completes the record).
        record.status = stats.status
        record.sent_whole = stats.sent_whole
        record.ttft_ms = stats.ttft_ms
        record.input_tokens = stats.input_tokens
        record.output_tokens = stats.output_tokens
        if stats.truncated or stats.note:
            record.detail = stats.truncated or stats.note


def _cloud_bytes(body: dict[str, Any], model: str) -> bytes:
    """The cloud request (the parsed body, re-serialised with the routed model); a 400 when it is too
    deep for that: orjson writes 254 levels, json.dumps recurses to about 1,000, orjson parsed 1,024.
    """
    try:
        return cloud_payload(body, model)
    except RecursionError:
        raise BadRequest(400, "request body is nested too deeply to be re-encoded for the cloud; flatten it") from None


def _local_request(st: State, body: dict[str, Any], decision: Decision, facts: RequestFacts) -> LocalRequest:
    assert st.local_session is not None
    session, turn = facts.session, facts.turn_key

    def on_broken(cause: str) -> None:
        st.memory.force_cloud(session, turn, cause)

    def on_prompt_tokens(counted: int) -> None:
        # A template that dropped the tools says nothing about how the server counts them.
        if facts.tool_count == 0 or st.health.capabilities.tools is not False:
            st.token_ratio.observe(facts.estimated_tokens, counted)

    return LocalRequest(
        session=st.local_session,
        cfg=st.cfg.local,
        api_key=st.local_key,
        body=body,
        model=decision.model,
        input_tokens=facts.estimated_tokens,
        on_broken=on_broken,
        on_prompt_tokens=on_prompt_tokens,
        dialect=local_dialect(st.cfg.local, st.health.capabilities.anthropic),
    )


def _reparsed_body(raw: bytes, modified: bool) -> dict[str, Any]:
    """The request body again, for a fallback that must re-encode it (see _answer_local)."""
    body = jsonio.loads(raw)
    assert isinstance(body, dict)
    if modified:
        strip_subagent_tag(body)
    return body


async def _answer_local(
    request: web.Request,
    st: State,
    lr: LocalRequest,
    raw: bytes,
    modified: bool,
    facts: RequestFacts,
    record: DecisionRecord,
    started: float,
) -> web.StreamResponse:
    async def to_cloud() -> web.StreamResponse:
        # The request was judged simple (or background): the cloud's simple tier answers it.
        if record.fallback == "connect-error":
            st.health.forget()  # the next request re-checks instead of trusting a stale "up"
        model = st.cfg.cloud.simple_model
        # The parsed body was let go once translated (memory, see messages): parse the client's
        # bytes again, which costs 0.2 ms on fallbacks only.
        body = _reparsed_body(raw, modified)
        return await answer_cloud(request, st, _cloud_bytes(body, model), model, record, started)

    record.route = "local"
    record.model = lr.model
    outcome = LocalOutcome()
    try:
        try:
            return await answer_local(request, lr, outcome, started, facts.stream)
        finally:
            # Also when the answer is cut short (client gone, shutdown: messages() completes the record).
            _record_local(record, outcome)
    except Fallback as fb:
        log.info("local path failed before any output (%s); answering from the cloud", fb)
        record.fallback = fb.cause
        record.detail = fb.detail[:300] or None
        record.ttft_ms = None
        record.status = 0
        return await to_cloud()


def _record_local(record: DecisionRecord, outcome: LocalOutcome) -> None:
    record.status = outcome.status
    record.ttft_ms = outcome.ttft_ms
    record.sent_whole = outcome.sent_whole
    record.repaired = outcome.repaired
    record.input_tokens = outcome.input_tokens
    record.output_tokens = outcome.output_tokens
    record.cached_tokens = outcome.cached_tokens
    record.prefill_ms = outcome.prefill_ms
    if outcome.broken is not None:
        record.detail = f"{BROKEN_DETAIL}: {outcome.broken}"[:300]


async def messages(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    started = time.monotonic()
    body, raw = await _read_json(request)
    problem = check_messages_body(body)
    if problem:
        raise BadRequest(400, problem)
    assert isinstance(body, dict)
    st.requests += 1
    facts = extract_facts(body, request.headers, len(raw))
    modified = facts.explicit is not None and facts.explicit.source == "subagent-tag" and strip_subagent_tag(body)
    record = DecisionRecord(
        ts=utc_iso(time.time()),
        id=f"req_{uuid.uuid4().hex[:24]}",
        session=facts.session,
        stream=facts.stream,
    )
    _identify(st, body, facts, record)
    task = asyncio.current_task()
    assert task is not None
    st.inflight.add(task)
    try:
        decision = await _decide(st, facts, record)
        record.reason = decision.reason
        record.verdict = decision.verdict
        if decision.detail and not record.detail:
            record.detail = decision.detail
        if decision.route == "local":
            lr = _local_request(st, body, decision, facts)
            # The parsed body (a 78 KB Claude Code body is ~175 KB of objects) is handed to the local
            # path, which lets it go once translated instead of holding it for the whole answer:
            # at concurrency 50 that is the largest thing alive.
            del body
            return await _answer_local(request, st, lr, raw, modified, facts, record, started)
        payload = _cloud_bytes(body, decision.model)
        return await answer_cloud(request, st, payload, decision.model, record, started)
    except BadRequest as exc:
        record.status = exc.status
        record.detail = str(exc)[:300]
        raise
    except asyncio.CancelledError:
        if st.cutting and request.transport is not None:
            # Our own cut at the end of the shutdown grace period: the client is still there.
            task.uncancel()
            return await _end_for_shutdown(request, st, record)
        # aiohttp cancels the handler when its client disconnects (handler_cancellation): whatever
        # was under way (a held local answer, a cloud call, its retries) stops here, unbilled.
        # A client that leaves after the whole answer (the relay still draining upstream) got it all.
        if not record.sent_whole:
            _client_gone(record)
        raise
    except ConnectionError:
        # A write to a client that has just gone (before aiohttp noticed and cancelled us).
        if not record.sent_whole:
            _client_gone(record)
        raise
    finally:
        st.inflight.discard(task)
        record.total_ms = (time.monotonic() - started) * 1000
        if not record.status:
            record.status = 499  # no answer was completed (client gone or cancelled)
        st.decisions.write(record)


def _identify(st: State, body: dict[str, Any], facts: RequestFacts, record: DecisionRecord) -> None:
    """The turn's keyed prompt hash and the project, so `switchyard stats` can find repeats and split by project."""
    record.turn = facts.turns
    if not st.hash_key:
        return
    record.prompt_hash = record_ids.prompt_hash(st.hash_key, facts.latest_user_text)
    cwd = record_ids.working_directory(body.get("system"))
    record.project = record_ids.project_id(st.hash_key, cwd)
    if st.cfg.log.project_names:
        record.project_name = record_ids.project_name(cwd)


def _client_gone(record: DecisionRecord) -> None:
    # 499 (nginx's "client closed request") even when headers were sent: the answer never completed.
    sent = f" after {record.status} was sent" if record.status else ""
    record.status = 499
    record.detail = _join_detail(record.detail, f"the client went away before the answer was complete{sent}")


def _join_detail(first: str | None, second: str) -> str:
    return (f"{first}; {second}" if first else second)[:300]


SHUTDOWN_MESSAGE = "Switchyard is shutting down; retry the request"


async def _end_for_shutdown(request: web.Request, st: State, record: DecisionRecord) -> web.StreamResponse:
    """Finish a request cut at shutdown: a 503 if nothing was sent, else a closing error event."""
    grace = st.cfg.listen.shutdown_grace_s
    prepared: web.StreamResponse | None = request.get(PREPARED)
    record.status = 503
    if prepared is None:
        record.detail = _join_detail(record.detail, f"not answered within the {grace:g} s shutdown grace period")
        resp = error_response(503, SHUTDOWN_MESSAGE)
        resp.headers["Retry-After"] = "1"
        resp.force_close()
        return resp
    if prepared.content_type == "text/event-stream":
        # The blank line first: a frame the upstream had only half sent is ended (an SSE parser drops
        # an event without data, and a complete one is unaffected), so the error event is one of its own.
        event = b"\n\n" + encode_event("error", error_body(503, f"{SHUTDOWN_MESSAGE}: the answer was cut off"))
        with contextlib.suppress(RuntimeError, ConnectionError):  # already ended, or the client left
            await prepared.write(event)
            await prepared.write_eof()
        what = "stream ended with an error event"
    else:
        prepared.force_close()
        what = "body cut short"
    record.detail = _join_detail(
        record.detail, f"cut at shutdown after the {grace:g} s grace period ({prepared.status} had been sent; {what})"
    )
    return prepared


async def _remember_prepared(request: web.Request, response: web.StreamResponse) -> None:
    request[PREPARED] = response


async def _drain(app: web.Application) -> None:
    """At shutdown (listening stopped, idle connections closed): let answers finish, then cut them.

    Answers still running ``margin`` seconds before ``listen.shutdown_grace_s`` is over are
    cancelled; each then ends with a well-formed Anthropic error (a 503, or an ``error`` event on a
    stream) and a decision record that says so, all within the grace period.
    """
    st = app[STATE]
    grace = st.cfg.listen.shutdown_grace_s
    margin = cut_margin_s(grace)
    if not st.inflight:
        return
    log.info("shutting down: %d answer(s) in flight get up to %g s to finish", len(st.inflight), grace)
    await asyncio.wait(set(st.inflight), timeout=grace - margin)
    if not st.inflight:
        return
    st.cutting = True
    log.warning("shutting down: cutting %d answer(s) still running after %g s", len(st.inflight), grace - margin)
    for task in list(st.inflight):
        task.cancel()
    await asyncio.wait(set(st.inflight), timeout=margin)


def cut_margin_s(grace: float) -> float:
    """Time kept at the end of the grace period to end cut answers properly."""
    return min(2.0, grace / 4)


# --- app -----------------------------------------------------------------------------------------


def build_state(cfg: Config, environ: dict[str, str] | None = None) -> State:
    env = environ if environ is not None else dict(os.environ)
    return State(
        cfg=cfg,
        router_key=cfg.router_key(env).encode(),
        cloud_key=cfg.cloud_key(env),
        local_key=cfg.local_key(env),
        prompt=load_prompt(cfg),
        health=LocalHealth(cfg.local, cfg.routing.health_cache_s, cfg.local_key(env)),
        memory=TurnMemory(cfg.routing.verdict_cache_size),
        decisions=DecisionLog(cfg.log.decisions, cfg.log.max_bytes, cfg.log.backups),
        connections=ConnectionStats(max=cfg.listen.max_connections),
        hash_key=cfg.hash_key(env).encode(),
    )


async def _sessions(app: web.Application) -> Any:
    st = app[STATE]
    st.decisions.open()
    st.cloud_session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=60), auto_decompress=False
    )
    # No kept-alive connections to the local server: llama-server 0.3.36 closes the connection just
    # after a streamed answer without saying so, and a request written on it within those few ms
    # failed ("Can not write request body", "Server disconnected"; measured, back-to-back requests).
    # A new loopback connection per request costs well under a millisecond next to a model's answer.
    st.local_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, force_close=True))
    # What the local server can take, known before the first request (bounded: a dead server
    # costs at most a few health timeouts here, and leaves the capabilities unknown).
    await st.health.refresh_capabilities(st.local_session)
    yield
    await st.health.close()
    await st.cloud_session.close()
    await st.local_session.close()
    st.decisions.close()


def build_app(state: State) -> web.Application:
    app = web.Application(
        middlewares=[capacity_middleware, errors_middleware, auth_middleware],
        client_max_size=state.cfg.listen.max_body_bytes,
    )
    app[STATE] = state
    app.cleanup_ctx.append(_sessions)
    app.on_response_prepare.append(_remember_prepared)
    app.on_shutdown.append(_drain)
    app.router.add_route("HEAD", "/", root)
    app.router.add_get("/", root, allow_head=False)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fail(message: str) -> int:
    print(f"switchyard: {message}", file=sys.stderr)
    return 2


def _use_fast_loop() -> None:
    """uvloop roughly halves the per-request cost of the event loop; plain asyncio works too."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def make_runner(app: web.Application) -> SwitchyardRunner:
    """The runner ``serve`` and the tests use: Switchyard's HTTP layer, limits and timeouts."""
    st = app[STATE]
    listen = st.cfg.listen
    return SwitchyardRunner(
        app,
        stats=st.connections,
        # The drain (on_shutdown) has already ended every answer within the grace period; this
        # only bounds aiohttp's own wait for whatever is left.
        shutdown_timeout=cut_margin_s(listen.shutdown_grace_s),
        keepalive_timeout=listen.idle_timeout_s,
    )


async def run_until_signalled(app: web.Application) -> None:
    listen = app[STATE].cfg.listen
    runner = make_runner(app)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too: a closed terminal (or a stray `kill -HUP`) ended the process at once, cutting
    # streams mid-event and leaving the pidfile; now it is the same graceful stop as SIGTERM.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, listen.host, listen.port, backlog=512)
        await site.start()
        log.info(
            "Switchyard %s listening on http://%s:%d (up to %d connections)",
            __version__,
            listen.host,
            listen.port,
            app[STATE].connections.max,
        )
        await stop.wait()
        log.info("Switchyard stopping: %d answer(s) in flight", len(app[STATE].inflight))
    finally:
        await runner.cleanup()


def serve(cfg: Config) -> int:
    """Run in the foreground until SIGTERM, SIGINT or SIGHUP; in-flight answers get the grace period to finish."""
    level = os.environ.get("SWITCHYARD_LOG_LEVEL", "INFO")
    try:
        setup_logging(level, cfg.log.server, cfg.log.server_max_bytes, cfg.log.server_backups)
    except OSError as exc:
        return _fail(f"cannot write the server log {cfg.log.server}: {exc.strerror or exc}")
    listen = cfg.listen
    try:
        state = build_state(cfg)
    except ConfigError as exc:
        return _fail(str(exc))
    if not state.router_key:
        if not is_loopback(listen.host):
            return _fail(
                f"refusing to listen on {listen.host} without a router key: "
                f"set {listen.key_env} (the installer writes it to the env file)"
            )
        log.warning("%s is not set: accepting requests without a key on loopback", listen.key_env)
    if not state.hash_key and cfg.log.decisions:
        log.warning(
            "%s is not set: decision records carry no prompt hash or project, so `switchyard stats` "
            "cannot see repeated messages; re-run the installer (it adds one to the env file)",
            cfg.log.hash_key_env,
        )
    if listen.pidfile:
        other = pidfile.live_pid(listen.pidfile)
        if other is not None:
            return _fail(f"already running as PID {other} (pidfile {listen.pidfile}); stop it first")
        pidfile.write_pidfile(listen.pidfile)
    descriptors = raise_descriptor_limit()
    cap = connection_cap(listen.max_connections, descriptors)
    if cap < listen.max_connections:
        log.warning(
            "the descriptor limit (%d) leaves room for %d client connections, not listen.max_connections=%d",
            descriptors,
            cap,
            listen.max_connections,
        )
    state.connections.max = cap
    app = build_app(state)
    _use_fast_loop()
    try:
        asyncio.run(run_until_signalled(app))
    except OSError as exc:
        return _fail(f"cannot listen on {listen.host}:{listen.port}: {exc.strerror or exc}")
    finally:
        if listen.pidfile:
            pidfile.remove_if_owned(listen.pidfile)
    log.info("Switchyard stopped")
    return 0
