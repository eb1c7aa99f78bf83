"""The one HTTP client for probes (installer, ops): short, synchronous, never through an environment proxy.

The standard library's urllib, so the host layer needs nothing installed.  Every call returns an
:class:`HttpResult` (never raises for an expected failure); callers judge it.  The thinking fields
the installer patches LiteLLM for and doctor checks live here once, as does reading a model list.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpResult:
    status: int | None  # None: no HTTP answer at all
    body: bytes = b""
    error: str = ""  # why there was no answer (connection refused, timeout, ...)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def message(self, limit: int = 200) -> str:
        """The error message of an OpenAI/Anthropic/LiteLLM-style error body, else the body, on one line."""
        data = self.json()
        msg: object = None
        if isinstance(data, dict):
            err = data.get("error")
            msg = err.get("message") if isinstance(err, dict) else err
        text = str(msg) if msg else (self.body.decode("utf-8", "replace") or self.error)
        return " ".join(text.split())[:limit]

    def describe(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else (self.error or "no answer")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# Probes only ever go to the configured services; no environment proxy must intercept them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def request(
    url: str,
    headers: dict[str, str] | None = None,
    timeout: float = 3.0,
    method: str = "GET",
    body: bytes | None = None,
) -> HttpResult:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)  # noqa: S310
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.read(1 << 20))
    except urllib.error.HTTPError as exc:
        try:
            data = exc.read(1 << 20)
        except OSError:
            data = b""
        return HttpResult(exc.code, data)
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = getattr(reason, "strerror", None) or str(reason)
        return HttpResult(None, error=str(text))
    except TimeoutError:
        return HttpResult(None, error=f"no answer within {timeout:g} s")
    except OSError as exc:
        return HttpResult(None, error=exc.strerror or str(exc))


def router_headers(key: str) -> dict[str, str]:
    """How Switchyard's own endpoints take the router key."""
    return {"x-api-key": key} if key else {}


def bearer(key: str) -> dict[str, str]:
    """How LiteLLM and OpenAI-compatible servers take a key."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def wait_ok(url: str, headers: dict[str, str], timeout: float, alive: Callable[[], bool] | None = None,
            interval: float = 0.1) -> HttpResult:
    """Poll ``url`` until it answers 2xx, ``timeout`` passes, or ``alive`` says the server died; the last answer."""
    deadline = time.monotonic() + timeout
    last = HttpResult(None, error="no answer yet")
    while True:
        last = request(url, headers, timeout=min(2.0, max(0.2, deadline - time.monotonic())))
        if last.ok or time.monotonic() >= deadline or (alive is not None and not alive()):
            return last
        time.sleep(interval)


def v1_base(url: str) -> str:
    """The server's OpenAI-style base (``.../v1``) from whatever the user typed."""
    u = url.strip().rstrip("/")
    for suffix in ("/chat/completions", "/models"):
        if u.endswith(suffix):
            u = u[: -len(suffix)]
    return u if u.endswith("/v1") else u + "/v1"


def model_ids(data: Any) -> list[str] | None:
    """The ids of an OpenAI-style ``/v1/models`` answer, or None when it is not one."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return [str(m["id"]) for m in items if isinstance(m, dict) and m.get("id")]


# The thinking-related fields clients and routers put on a request; an OpenAI-compatible backend
# behind LiteLLM rejects them unless that model's ``additional_drop_params`` drops them.
PROBE_FIELDS: dict[str, object] = {
    "reasoning": {"effort": "low"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "enable_thinking": True,
}


def messages_probe(base_url: str, key: str, model: str, fields: tuple[str, ...] = tuple(PROBE_FIELDS),
                   timeout: float = 120.0) -> HttpResult:
    """A 1-token ``/v1/messages`` request to LiteLLM carrying ``fields`` (none: a plain request)."""
    body: dict[str, object] = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
    body.update({f: PROBE_FIELDS[f] for f in fields})
    headers = {**bearer(key), "anthropic-version": "2023-06-01", "content-type": "application/json"}
    return request(f"{base_url.rstrip('/')}/v1/messages", headers, timeout, "POST", json.dumps(body).encode())
