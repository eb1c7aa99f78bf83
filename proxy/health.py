"""Is the local model server up?  Checked with a short timeout, cached for a few seconds.

Concurrent requests share one in-flight check, so a burst of Claude Code requests (it fires several
at once) costs one probe, not one each.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from proxy.config import LocalConfig


class LocalHealth:
    def __init__(self, local: LocalConfig, cache_s: float, api_key: str = "") -> None:
        self._url = f"{local.base_url.rstrip('/')}/models"
        self._timeout = local.health_timeout_s
        self._cache_s = cache_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._value: bool | None = None
        self._checked_at = 0.0
        self._inflight: asyncio.Future[bool] | None = None
        self.checks = 0  # how many probes were actually sent (for tests and /health)

    @property
    def last_known(self) -> bool | None:
        return self._value

    def forget(self) -> None:
        """Drop the cached answer, e.g. after the local server refused a connection."""
        self._checked_at = 0.0

    async def is_up(self, session: aiohttp.ClientSession) -> bool:
        if self._value is not None and time.monotonic() - self._checked_at < self._cache_s:
            return self._value
        if self._inflight is not None:
            return await asyncio.shield(self._inflight)
        self._inflight = asyncio.get_running_loop().create_future()
        try:
            value = await self._probe(session)
            self._value = value
            self._checked_at = time.monotonic()
            self._inflight.set_result(value)
            return value
        except BaseException as exc:
            self._inflight.set_exception(exc)
            self._inflight.exception()  # mark retrieved: waiters get it, nobody else must
            raise
        finally:
            self._inflight = None

    async def _probe(self, session: aiohttp.ClientSession) -> bool:
        self.checks += 1
        try:
            async with asyncio.timeout(self._timeout):
                async with session.get(self._url, headers=self._headers) as r:
                    await r.read()
                    return r.status < 400
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False
