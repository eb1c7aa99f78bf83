"""The aiohttp server Claude Code talks to as if it were Anthropic.

I/O lives here: reading and checking requests, asking for health and classification when the pure
routing function needs them, answering through the cloud or local path, and writing one decision
record per routed request.  The decisions themselves are made in ``proxy.routing``.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from proxy import __version__, jsonio, pidfile
from proxy.capabilities import capabilities_json
from proxy.classifier import classify, compact_view
from proxy.cloud import ClientGone, CloudError, RelayStats, cloud_payload, open_cloud, relay
from proxy.config import Config, ConfigError, load_prompt
from proxy.conversation import RequestFacts, extract_facts, strip_subagent_tag
from proxy.decision_log import DecisionLog, DecisionRecord, utc_iso
from proxy.errors import error_response
from proxy.health import LocalHealth
from proxy.local_path import LocalRequest, answer_local_or_fallback
from proxy.routing import (
    NEED_CLASSIFICATION,
    NEED_HEALTH,
    Decision,
    Outcome,
    Signals,
    decide,
)
from proxy.tokens import estimate_request_tokens
from proxy.validation import check_messages_body
from proxy.verdict_cache import TurnMemory

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
    started: float = field(default_factory=time.monotonic)
    requests: int = 0  # Messages requests that passed the input checks (each gets a decision record)
    cloud_session: aiohttp.ClientSession | None = None
    local_session: aiohttp.ClientSession | None = None


STATE: web.AppKey[State] = web.AppKey("state", State)


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
        log.warning("%s %s -> %d: %s", request.method, request.path, exc.status, exc)
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


def _presented_key(request: web.Request) -> str:
    key = request.headers.get("x-api-key", "")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/":
        return await handler(request)
    expected = request.app[STATE].router_key
    if expected:
        presented = _presented_key(request).encode()
        # compare_digest runs in time independent of where the strings differ.
        if not presented or not hmac.compare_digest(presented, expected):
            log.warning("%s %s -> 401: missing or wrong router key", request.method, request.path)
            return error_response(
                401, "missing or invalid router key: send it in x-api-key or Authorization: Bearer"
            )
    return await handler(request)


# --- simple endpoints ----------------------------------------------------------------------------


async def root(request: web.Request) -> web.Response:
    return web.Response(text="Switchyard is running\n")


async def health(request: web.Request) -> web.Response:
    st = request.app[STATE]
    assert st.local_session is not None
    local_up = await st.health.is_up(st.local_session)
    dlog = st.decisions
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "local_up": local_up,
            "local": capabilities_json(st.health.capabilities),
            "uptime_s": round(time.monotonic() - st.started, 3),
            "pid": os.getpid(),
            "requests": st.requests,
            "decisions": {
                "path": str(dlog.path) if dlog.path else None,
                "written": dlog.written,
                "failed": dlog.failed,
                "last_error": dlog.last_error,
            },
        }
    )


async def _read_json(request: web.Request) -> tuple[Any, bytes]:
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise BadRequest(415, f"content-type must be application/json, got {ctype or 'none'}")
    limit = request.app[STATE].cfg.listen.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(413, f"request body is larger than the {limit}-byte limit (listen.max_body_bytes)")
    try:
        async with asyncio.timeout(request.app[STATE].cfg.listen.body_read_timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise BadRequest(408, "the request body did not arrive in time") from None
    try:
        return jsonio.loads(raw), raw
    except (ValueError, UnicodeDecodeError) as exc:
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
        )
        outcome = decide(facts, signals, st.cfg)
    if outcome is NEED_CLASSIFICATION:
        assert st.local_session is not None
        result = await classify(
            st.local_session, st.cfg.local, st.cfg.routing, st.prompt, compact_view(facts), st.local_key
        )
        record.classify_ms = result.elapsed_ms
        st.memory.remember(session, facts.turn_key, result)
        outcome = decide(
            facts, Signals(local_up=True, classification=result, capabilities=st.health.capabilities), st.cfg
        )
    assert isinstance(outcome, Decision)
    return outcome


# --- answering -----------------------------------------------------------------------------------


def _client_gone(request: web.Request) -> bool:
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
            client_gone=lambda: _client_gone(request),
        )
    except CloudError as exc:
        record.status = exc.status
        record.detail = f"cloud failed after {exc.attempts} attempt(s): {exc.body['error']['message']}"[:300]
        return web.json_response(exc.body, status=exc.status, headers=exc.headers)
    except ClientGone as exc:
        record.status = 499
        record.detail = str(exc)
        return web.Response(status=499)
    except asyncio.CancelledError:
        record.status = 499
        record.detail = "client disconnected while waiting for the cloud model"
        raise
    stats = RelayStats(attempts=answer.attempts)
    try:
        out = await relay(request, answer, stats, started, {"x-switchyard-route": "cloud"})
    except asyncio.CancelledError:
        record.status = 499
        record.detail = "client disconnected during the cloud answer"
        raise
    finally:
        record.ttft_ms = stats.ttft_ms
        record.input_tokens = stats.input_tokens
        record.output_tokens = stats.output_tokens
    record.status = stats.status
    if stats.truncated or stats.note:
        record.detail = stats.truncated or stats.note
    return out


async def _answer_local(
    request: web.Request,
    st: State,
    body: dict[str, Any],
    raw: bytes,
    modified: bool,
    decision: Decision,
    facts: RequestFacts,
    record: DecisionRecord,
    started: float,
) -> web.StreamResponse:
    assert st.local_session is not None
    session, turn = facts.session, facts.turn_key

    def on_broken(cause: str) -> None:
        st.memory.force_cloud(session, turn, cause)

    async def to_cloud() -> web.StreamResponse:
        # The request was judged simple (or background): the cloud's simple tier answers it.
        if record.fallback == "connect-error":
            st.health.forget()  # the next request re-checks instead of trusting a stale "up"
        model = st.cfg.cloud.simple_model
        return await answer_cloud(request, st, cloud_payload(body, model), model, record, started)

    lr = LocalRequest(
        session=st.local_session,
        cfg=st.cfg.local,
        api_key=st.local_key,
        body=body,
        model=decision.model,
        input_tokens=facts.estimated_tokens,
        on_broken=on_broken,
    )
    return await answer_local_or_fallback(request, lr, record, started, facts.stream, to_cloud)


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
    try:
        decision = await _decide(st, facts, record)
        record.reason = decision.reason
        record.verdict = decision.verdict
        if decision.detail and not record.detail:
            record.detail = decision.detail
        if decision.route == "local":
            return await _answer_local(request, st, body, raw, modified, decision, facts, record, started)
        payload = cloud_payload(body, decision.model)
        return await answer_cloud(request, st, payload, decision.model, record, started)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        # The client went away mid-answer; nothing left to send.
        record.detail = (record.detail or "") + " client disconnected"
        raise
    finally:
        record.total_ms = (time.monotonic() - started) * 1000
        if not record.status:
            record.status = 499  # no answer was completed (client gone or cancelled)
        st.decisions.write(record)


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
    )


async def _sessions(app: web.Application) -> Any:
    st = app[STATE]
    st.decisions.open()
    st.cloud_session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=60), auto_decompress=False
    )
    st.local_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=60))
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
        middlewares=[errors_middleware, auth_middleware],
        client_max_size=state.cfg.listen.max_body_bytes,
    )
    app[STATE] = state
    app.cleanup_ctx.append(_sessions)
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


def serve(cfg: Config) -> int:
    """Run in the foreground until SIGTERM/SIGINT; in-flight answers get the grace period to finish."""
    logging.basicConfig(
        level=os.environ.get("SWITCHYARD_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
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
    if listen.pidfile:
        other = pidfile.live_pid(listen.pidfile)
        if other is not None:
            return _fail(f"already running as PID {other} (pidfile {listen.pidfile}); stop it first")
        pidfile.write_pidfile(listen.pidfile)
    app = build_app(state)
    _use_fast_loop()
    try:
        log.info("Switchyard %s listening on http://%s:%d", __version__, listen.host, listen.port)
        web.run_app(
            app,
            host=listen.host,
            port=listen.port,
            shutdown_timeout=listen.shutdown_grace_s,
            print=None,
            access_log=None,
            handle_signals=True,
        )
    except OSError as exc:
        return _fail(f"cannot listen on {listen.host}:{listen.port}: {exc.strerror or exc}")
    finally:
        if listen.pidfile:
            pidfile.remove_if_owned(listen.pidfile)
    log.info("Switchyard stopped")
    return 0
