"""The installer's read-only checks against the live services, on the host layer's one HTTP client.

Every function returns data or raises :class:`ProbeError` with one line that says what failed and
what to try.  Nothing here writes anything.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy.host import http_probe
from proxy.host.http_probe import HttpResult, bearer, v1_base

LOCAL_SERVER_HINTS = (
    "common servers: LM Studio http://127.0.0.1:1234, Ollama http://127.0.0.1:11434, "
    "vLLM http://127.0.0.1:8000, llama.cpp http://127.0.0.1:8080"
)
_TIMEOUT = 5.0

__all__ = ["ProbeError", "litellm_live", "litellm_models", "local_models", "port_free", "v1_base"]


class ProbeError(Exception):
    """A live check failed; one line."""


def _ids(r: HttpResult, where: str) -> list[str]:
    ids = http_probe.model_ids(r.json())
    if ids is None:
        raise ProbeError(f"{where} did not answer an OpenAI-style model list (JSON with a 'data' list); "
                         "is this an OpenAI-compatible server?")
    return ids


def local_models(url: str) -> list[str]:
    base = v1_base(url)
    r = http_probe.request(f"{base}/models", timeout=_TIMEOUT)
    if r.status is None:
        raise ProbeError(f"no local model server answers at {base}/models ({r.error}); {LOCAL_SERVER_HINTS}")
    if r.status != 200:
        raise ProbeError(f"{base}/models answered HTTP {r.status}; {LOCAL_SERVER_HINTS}")
    ids = _ids(r, f"{base}/models")
    if not ids:
        raise ProbeError(f"the server at {base} reports no loaded model; load one and retry")
    return ids


def litellm_live(url: str) -> None:
    u = url.rstrip("/")
    r = http_probe.request(f"{u}/health/liveliness", timeout=_TIMEOUT)
    if r.status is None:
        raise ProbeError(f"LiteLLM does not answer at {u}/health/liveliness ({r.error}); is the proxy running "
                         "(default http://127.0.0.1:4000)?")
    if r.status != 200:
        raise ProbeError(f"{u}/health/liveliness answered HTTP {r.status}; is this a LiteLLM proxy?")


def litellm_models(url: str, key: str) -> list[str]:
    u = url.rstrip("/")
    r = http_probe.request(f"{u}/v1/models", bearer(key), timeout=_TIMEOUT)
    if r.status is None:
        raise ProbeError(f"LiteLLM at {u} did not answer /v1/models ({r.error})")
    if r.status != 200:
        # LiteLLM answers a missing key with 500 and a wrong one with 400: do not look for 401.
        raise ProbeError(
            f"LiteLLM refused the key on /v1/models (HTTP {r.status}); check LITELLM_MASTER_KEY "
            "(or the variable named by litellm_key_env)"
        )
    return _ids(r, f"{u}/v1/models")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class FieldsVerdict:
    """What two requests to LiteLLM say: does the backend work at all, and does it take the fields?"""

    plain: HttpResult
    with_fields: HttpResult | None  # None: not sent, the plain request already failed
    # When the fields are blamed: those that fail even alone (empty: only their combination fails).
    through: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.plain.ok and self.with_fields is not None and self.with_fields.ok

    @property
    def fields_blamed(self) -> bool:
        """Only a plain request that passes and a request with the fields that fails blame the fields."""
        return self.plain.ok and self.with_fields is not None and not self.with_fields.ok


def fields_verdict(url: str, key: str, model: str) -> FieldsVerdict:
    """A plain 1-token request first; only when it passes, the same carrying the thinking fields."""
    plain = http_probe.messages_probe(url, key, model, fields=())
    if not plain.ok:
        return FieldsVerdict(plain, None)
    with_fields = http_probe.messages_probe(url, key, model)
    if with_fields.ok:
        return FieldsVerdict(plain, with_fields)
    through = tuple(f for f in http_probe.PROBE_FIELDS if not http_probe.messages_probe(url, key, model, (f,)).ok)
    return FieldsVerdict(plain, with_fields, through)


def local_messages_probe(url: str, model: str, key: str = "") -> tuple[bool, str]:
    """A one-token ``POST {v1}/messages`` to the local server: (it answered an Anthropic message, what happened)."""
    body = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
    headers = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
    if key:
        headers |= {**bearer(key), "x-api-key": key}
    # A cold local model may load on this request: allow it the time a first answer takes.
    r = http_probe.request(f"{v1_base(url)}/messages", headers, 120.0, "POST", json.dumps(body).encode())
    if r.status is None:
        return False, r.describe()
    if r.status != 200:
        return False, f"HTTP {r.status}"
    data = r.json()
    if data is None:
        return False, "200 but not JSON"
    if not (isinstance(data, dict) and data.get("type") == "message" and isinstance(data.get("content"), list)):
        return False, "200 but not an Anthropic message"
    return True, f"HTTP 200, stop_reason {data.get('stop_reason')!r}"


def wait_litellm(url: str, timeout_s: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            litellm_live(url)
            return True
        except ProbeError:
            time.sleep(0.5)
    return False


def router_health(port: int, key: str) -> HttpResult:
    return http_probe.request(f"http://127.0.0.1:{port}/health", http_probe.router_headers(key), timeout=5.0)


def wait_router(port: int, key: str, timeout_s: float = 30.0,
                alive: Callable[[], bool] | None = None) -> HttpResult:
    return http_probe.wait_ok(f"http://127.0.0.1:{port}/health", http_probe.router_headers(key), timeout_s, alive,
                              interval=0.2)
