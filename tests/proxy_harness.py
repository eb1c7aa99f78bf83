"""Run the real Switchyard app on loopback, in a thread, for tests.

The app is the one ``python -m proxy serve`` runs (``proxy.server.build_app``), on a real socket, so
the official SDK, LiteLLM and the Claude Code CLI can all reach it.  Running it in-process lets tests
look at its state (how many health probes it sent, what it cached).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anthropic
from aiohttp import web

from proxy.config import Config, config_from_dict
from proxy.server import State, build_app, build_state, make_runner

ROUTER_KEY = "test-router-key-0123456789"
CLOUD_KEY_ENV = "SWITCHYARD_LITELLM_KEY"


def make_config(
    tmp: Path,
    *,
    local_url: str = "http://127.0.0.1:9/v1",
    cloud_url: str = "http://127.0.0.1:9",
    **sections: dict[str, Any],
) -> Config:
    """A complete config pointing at the given servers, with per-section overrides."""
    data: dict[str, dict[str, Any]] = {
        # A short grace: stopping a test proxy with a stalled answer in flight waits for it.
        "listen": {"host": "127.0.0.1", "port": 1, "pidfile": str(tmp / "switchyard.pid"), "shutdown_grace_s": 2.0},
        "local": {
            "base_url": local_url,
            "model": "local-model",
            "max_output_tokens": 4096,
            "first_token_timeout_s": 5.0,
            "read_timeout_s": 5.0,
        },
        "cloud": {
            "base_url": cloud_url,
            "simple_model": "cloud-simple",
            "complex_model": "cloud-complex",
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.2,
            "timeout_s": 30.0,
        },
        "routing": {"classify_timeout_s": 5.0},
        "log": {"decisions": str(tmp / "decisions.jsonl")},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_dict(data)


class ProxyThread:
    """The Switchyard app on its own event loop and thread."""

    def __init__(self, cfg: Config, environ: dict[str, str] | None = None) -> None:
        env = {"SWITCHYARD_ROUTER_KEY": ROUTER_KEY} if environ is None else environ
        self.state: State = build_state(cfg, env)
        self.cfg = cfg
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.setblocking(False)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="switchyard-test")
        self._error: BaseException | None = None
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def headers(self, **extra: str) -> dict[str, str]:
        return {"x-api-key": ROUTER_KEY, "content-type": "application/json", **extra}

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            # The runner `serve` uses: Switchyard's HTTP layer (Anthropic JSON for malformed HTTP,
            # the connection cap) and handler cancellation when a client disconnects.
            runner = make_runner(build_app(self.state))
            await runner.setup()
            await web.SockSite(runner, self._sock).start()
            self.runner = runner
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def start(self) -> Self:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError("Switchyard failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def decisions(self, at_least: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The decision records so far, once there are ``at_least`` of them.

        A record is written when the request ends, which can be a moment after the client has
        read the last byte of a streamed answer.
        """
        path = Path(self.cfg.log.decisions)
        deadline = time.monotonic() + timeout
        while True:
            lines = path.read_text().splitlines() if path.exists() else []
            if len(lines) >= at_least or time.monotonic() > deadline:
                return [json.loads(line) for line in lines if line.strip()]
            time.sleep(0.01)


def user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def messages_body(
    text: str = "hello", *, model: str = "claude-sonnet-4-5", stream: bool = False, **kw: Any
) -> dict[str, Any]:
    return {"model": model, "max_tokens": 256, "stream": stream, "messages": [user_message(text)], **kw}


def sdk_final_or_error(p: ProxyThread) -> anthropic.types.Message | anthropic.APIStatusError:
    """A short streamed request through the official SDK, the strict client: the whole message, or
    the error it raised (an HTTP status or an ``error`` event).  A silent partial message is neither."""
    client = anthropic.Anthropic(base_url=p.url, api_key=ROUTER_KEY, max_retries=0, timeout=60)
    try:
        with client.messages.stream(
            model="cloud", max_tokens=100, messages=[{"role": "user", "content": "write it"}]
        ) as stream:
            for _ in stream:
                pass
            return stream.get_final_message()
    except anthropic.APIStatusError as exc:
        return exc
