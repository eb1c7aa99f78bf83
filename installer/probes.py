"""Read-only checks against the live services (httpx, short timeouts, loopback in tests).

Every function returns data or raises :class:`ProbeError` with one line that says what failed and
what to try.  Nothing here writes anything.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx

LOCAL_SERVER_HINTS = (
    "common servers: LM Studio http://127.0.0.1:1234, Ollama http://127.0.0.1:11434, "
    "vLLM http://127.0.0.1:8000, llama.cpp http://127.0.0.1:8080"
)
_TIMEOUT = httpx.Timeout(5.0, connect=3.0)


class ProbeError(Exception):
    """A live check failed; one line."""


def _client(timeout: httpx.Timeout = _TIMEOUT) -> httpx.Client:
    # trust_env=False: an HTTP(S)_PROXY in the user's shell must not capture loopback traffic.
    return httpx.Client(timeout=timeout, trust_env=False)


def v1_base(url: str) -> str:
    """The server's OpenAI-style base (``.../v1``) from whatever the user typed."""
    u = url.strip().rstrip("/")
    for suffix in ("/chat/completions", "/models"):
        if u.endswith(suffix):
            u = u[: -len(suffix)]
    return u if u.endswith("/v1") else u + "/v1"


def _model_ids(data: Any) -> list[str]:
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ProbeError("the /v1/models answer has no 'data' list; is this an OpenAI-compatible server?")
    return [str(m["id"]) for m in items if isinstance(m, dict) and m.get("id")]


def local_models(url: str) -> list[str]:
    base = v1_base(url)
    try:
        with _client() as c:
            r = c.get(f"{base}/models")
    except httpx.HTTPError as exc:
        raise ProbeError(
            f"no local model server answers at {base}/models ({type(exc).__name__}); {LOCAL_SERVER_HINTS}"
        ) from None
    if r.status_code != 200:
        raise ProbeError(f"{base}/models answered HTTP {r.status_code}; {LOCAL_SERVER_HINTS}")
    try:
        ids = _model_ids(r.json())
    except ValueError:
        raise ProbeError(f"{base}/models did not answer JSON; {LOCAL_SERVER_HINTS}") from None
    if not ids:
        raise ProbeError(f"the server at {base} reports no loaded model; load one and retry")
    return ids


def litellm_live(url: str) -> None:
    u = url.rstrip("/")
    try:
        with _client() as c:
            r = c.get(f"{u}/health/liveliness")
    except httpx.HTTPError as exc:
        raise ProbeError(
            f"LiteLLM does not answer at {u}/health/liveliness ({type(exc).__name__}); is the proxy running "
            "(default http://127.0.0.1:4000)?"
        ) from None
    if r.status_code != 200:
        raise ProbeError(f"{u}/health/liveliness answered HTTP {r.status_code}; is this a LiteLLM proxy?")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def litellm_models(url: str, key: str) -> list[str]:
    u = url.rstrip("/")
    try:
        with _client() as c:
            r = c.get(f"{u}/v1/models", headers=_auth(key))
    except httpx.HTTPError as exc:
        raise ProbeError(f"LiteLLM at {u} did not answer /v1/models ({type(exc).__name__})") from None
    if r.status_code != 200:
        # LiteLLM answers a missing key with 500 and a wrong one with 400: do not look for 401.
        raise ProbeError(
            f"LiteLLM refused the key on /v1/models (HTTP {r.status_code}); check LITELLM_MASTER_KEY "
            "(or the variable named by litellm_key_env)"
        )
    try:
        return _model_ids(r.json())
    except ValueError:
        raise ProbeError(f"{u}/v1/models did not answer JSON") from None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class ThinkingProbe:
    ok: bool
    status: int
    detail: str


PROBE_FIELDS: dict[str, Any] = {
    "reasoning": {"effort": "low"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "enable_thinking": True,
}


def thinking_probe(url: str, key: str, model: str, fields: tuple[str, ...] = tuple(PROBE_FIELDS)) -> ThinkingProbe:
    """A 1-token ``/v1/messages`` request carrying the given fields, the way Switchyard will call LiteLLM."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "ping"}],
    }
    for f in fields:
        body[f] = PROBE_FIELDS[f]
    headers = {**_auth(key), "anthropic-version": "2023-06-01", "content-type": "application/json"}
    try:
        with _client(httpx.Timeout(120.0, connect=5.0)) as c:
            r = c.post(f"{url.rstrip('/')}/v1/messages", content=json.dumps(body), headers=headers)
    except httpx.HTTPError as exc:
        return ThinkingProbe(False, 0, f"{type(exc).__name__}: {exc}")
    detail = r.text[:300].replace("\n", " ")
    return ThinkingProbe(200 <= r.status_code < 300, r.status_code, detail)


def local_messages_probe(url: str, model: str, key: str = "") -> tuple[bool, str]:
    """A one-token ``POST {v1}/messages`` to the local server: (it answered an Anthropic message, what happened)."""
    body = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
    headers = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
    if key:
        headers |= {"authorization": f"Bearer {key}", "x-api-key": key}
    try:
        with _client(httpx.Timeout(120.0, connect=3.0)) as c:
            r = c.post(f"{v1_base(url)}/messages", content=json.dumps(body), headers=headers)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}"
    if r.status_code != 200:
        return False, f"HTTP {r.status_code}"
    try:
        data = r.json()
    except ValueError:
        return False, "200 but not JSON"
    if not (isinstance(data, dict) and data.get("type") == "message" and isinstance(data.get("content"), list)):
        return False, "200 but not an Anthropic message"
    return True, f"HTTP 200, stop_reason {data.get('stop_reason')!r}"


def wait_litellm(url: str, timeout_s: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ProbeError):
            litellm_live(url)
            return True
        time.sleep(0.5)
    return False


def router_health(port: int, key: str) -> tuple[int, Any]:
    try:
        with _client(httpx.Timeout(5.0, connect=2.0)) as c:
            r = c.get(f"http://127.0.0.1:{port}/health", headers={"x-api-key": key})
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}"
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text[:200]


def wait_router(port: int, key: str, timeout_s: float = 30.0, alive: Any = None) -> tuple[int, Any]:
    deadline = time.monotonic() + timeout_s
    last: tuple[int, Any] = (0, "no answer")
    while time.monotonic() < deadline:
        last = router_health(port, key)
        if last[0] == 200:
            return last
        if alive is not None and not alive():
            return last
        time.sleep(0.2)
    return last
