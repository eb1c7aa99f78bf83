"""Is the local model server up, and what can it take?  Checked with a short timeout, cached.

Concurrent requests share one in-flight check, so a burst of Claude Code requests (it fires several
at once) costs one probe, not one each.  The capability probe (proxy.capabilities) runs once at
start and again in the background after each health probe that found the server up: the request
path never waits for it, and it runs no more often than the health cache allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp

from proxy.capabilities import UNKNOWN, LocalCapabilities, aiohttp_fetch, probe
from proxy.config import LocalConfig

log = logging.getLogger("switchyard.health")

# A capability probe makes a handful of requests; bound the whole of it, whatever each one does.
_PROBE_BUDGET_REQUESTS = 4


class LocalHealth:
    def __init__(self, local: LocalConfig, cache_s: float, api_key: str = "") -> None:
        self._local = local
        self._url = f"{local.base_url.rstrip('/')}/models"
        self._timeout = local.health_timeout_s
        self._cache_s = cache_s
        self._api_key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._value: bool | None = None
        self._checked_at = 0.0
        self._inflight: asyncio.Task[bool] | None = None
        self._cap_task: asyncio.Task[LocalCapabilities] | None = None
        self._cap_probed_at = -float("inf")
        self.capabilities: LocalCapabilities = UNKNOWN
        self.checks = 0  # how many probes were actually sent (for tests and /health)
        self.capability_probes = 0

    @property
    def last_known(self) -> bool | None:
        return self._value

    def forget(self) -> None:
        """Drop the cached answer, e.g. after the local server refused a connection."""
        self._checked_at = 0.0

    async def is_up(self, session: aiohttp.ClientSession) -> bool:
        if self._value is not None and time.monotonic() - self._checked_at < self._cache_s:
            return self._value
        if self._inflight is None:
            # The probe runs as its own task, not in the request that happened to start it: when
            # that request's client disconnects and its handler is cancelled, the requests
            # waiting on the same probe must still get their answer, not its CancelledError.
            task = asyncio.get_running_loop().create_task(self._probe_and_remember(session))
            task.add_done_callback(self._probe_done)
            self._inflight = task
        return await asyncio.shield(self._inflight)

    async def _probe_and_remember(self, session: aiohttp.ClientSession) -> bool:
        value = await self._probe(session)
        self._value = value
        self._checked_at = time.monotonic()
        if value:
            self._refresh_in_background(session)
        return value

    def _probe_done(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved: the waiters got it

    async def _probe(self, session: aiohttp.ClientSession) -> bool:
        self.checks += 1
        try:
            async with asyncio.timeout(self._timeout):
                async with session.get(self._url, headers=self._headers) as r:
                    await r.read()
                    return r.status < 400
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    async def refresh_capabilities(self, session: aiohttp.ClientSession) -> LocalCapabilities:
        """Probe what the server can take; on any failure the last known capabilities stay."""
        self.capability_probes += 1
        self._cap_probed_at = time.monotonic()
        hint = self.capabilities.kind if self.capabilities.known else None
        fetch = aiohttp_fetch(session, self._local.base_url, self._api_key, self._timeout)
        try:
            async with asyncio.timeout(self._timeout * _PROBE_BUDGET_REQUESTS + 1):
                found = await probe(fetch, self._local.model, hint)
        except TimeoutError:
            log.info("local capability probe took too long; keeping what was known")
            return self.capabilities
        except Exception:  # a probe must never take the proxy down
            log.exception("local capability probe failed; keeping what was known")
            return self.capabilities
        if found.known or not self.capabilities.known:
            if found != self.capabilities:
                log.info("local server: %s", found.describe())
            self.capabilities = found
        return self.capabilities

    def _refresh_in_background(self, session: aiohttp.ClientSession) -> None:
        if self._cap_task is not None and not self._cap_task.done():
            return
        if time.monotonic() - self._cap_probed_at < self._cache_s:
            return  # the start-up probe, or one moments ago, is fresh enough
        self._cap_task = asyncio.get_running_loop().create_task(self.refresh_capabilities(session))

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._inflight
        if self._cap_task is not None and not self._cap_task.done():
            self._cap_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._cap_task
