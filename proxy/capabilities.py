"""What the local model server can do, read from its own endpoints.

One probe, used by the proxy (at start and on each health refresh), the installer and the ops
toolkit alike.  Each server kind answers different discovery endpoints; every figure that routing
relies on is read from the server itself, never assumed:

=============  ==========================================================================================
kind           endpoints read
=============  ==========================================================================================
``llama.cpp``  ``GET /props`` (``default_generation_settings.n_ctx`` = one slot's context, ``total_slots``,
               ``chat_template_caps.supports_tools``, ``modalities.vision``, a ``<think>`` in
               ``chat_template`` or ``chat_template_caps.supports_reasoning_effort`` = a reasoning
               model), ``GET /slots`` (per-slot ``n_ctx``, when the server exposes it)
``ollama``     ``GET /api/version``, ``GET /api/ps`` (loaded model's ``context_length``),
               ``POST /api/show`` (``capabilities``, ``parameters`` ``num_ctx``, ``model_info`` context)
``lmstudio``   ``GET /api/v0/models`` (``loaded_context_length`` / ``max_context_length``, ``type``,
               ``capabilities``)
``vllm``       ``GET /v1/models`` (``max_model_len``, ``owned_by: vllm``), ``GET /version``
``openai``     any other server answering ``GET /v1/models``: nothing more is known
=============  ==========================================================================================

The probe is pure logic over a :data:`Fetch` callable, so it is tested against recorded answers and
stand-ins, and the same code runs over aiohttp in the proxy and in the command-line tools.  A server
that answers garbage, errors or nothing leaves a figure unknown (``None``): routing then tries the
local side, as it would without a probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from proxy import jsonio

# (status, parsed JSON or None).  Status 0: no HTTP answer (refused, timed out, reset).
Reply = tuple[int, Any]
# fetch(method, path, json_body) -> Reply.  ``path`` is relative to the server root (``/props``),
# or starts with ``/v1/`` for the OpenAI-compatible API; it never raises.
Fetch = Callable[[str, str, Any], Awaitable[Reply]]

KINDS = ("llama.cpp", "ollama", "lmstudio", "vllm", "openai")
KIND_NAMES = {
    "llama.cpp": "llama.cpp",
    "ollama": "Ollama",
    "lmstudio": "LM Studio",
    "vllm": "vLLM",
    "openai": "an OpenAI-compatible server",
    "unknown": "an unknown server",
}


@dataclass(frozen=True)
class LocalCapabilities:
    """What one local server can do; ``None`` everywhere means "not known" (routing then tries)."""

    kind: str = "unknown"  # one of KINDS, or "unknown" when the server did not answer
    version: str | None = None
    # The context window one request really gets, in the server's own tokens.
    context_per_request: int | None = None
    # How many requests the server runs at once (llama.cpp -np), when it says.
    slots: int | None = None
    # Whether the model's chat template takes tool definitions (False: the server drops them).
    tools: bool | None = None
    vision: bool | None = None
    # Whether the server also serves Anthropic's POST /v1/messages.
    anthropic: bool | None = None
    # Ollama cuts a prompt longer than its context from the front instead of refusing it.
    truncates_silently: bool = False
    # The context the model was trained for, when the server says (for advice, never for routing).
    context_trained: int | None = None
    # How each figure was found, or why it is unknown: shown by the installer and doctor.
    notes: tuple[str, ...] = ()
    probed_at: float = field(default=0.0, compare=False)
    # Whether the model thinks before it answers (a reasoning block in its chat template, or the
    # server says so): the classifier then needs room to think; without, a brief reply is enough.
    reasoning: bool | None = None

    @property
    def known(self) -> bool:
        return self.kind != "unknown"

    def describe(self) -> str:
        """One line for people: "llama.cpp, 8,192 tokens per request (4 slots), ..."."""
        parts = [KIND_NAMES.get(self.kind, self.kind) + (f" {self.version}" if self.version else "")]
        if self.context_per_request is not None:
            ctx = f"{self.context_per_request:,} tokens per request"
            if self.slots and self.slots > 1:
                ctx += f" ({self.slots} slots)"
            parts.append(ctx)
        else:
            parts.append("context size unknown")
        if self.tools is not None:
            parts.append("takes tools" if self.tools else "its chat template takes no tools")
        if self.vision is not None:
            parts.append("takes images" if self.vision else "no images")
        if self.anthropic:
            parts.append("also speaks Anthropic /v1/messages")
        return ", ".join(parts)


UNKNOWN = LocalCapabilities()


def server_root(base_url: str) -> str:
    """``http://host:port/v1`` → ``http://host:port`` (the discovery endpoints live at the root)."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def as_int(value: Any) -> int | None:
    """A positive integer from a JSON value, else None (garbage never becomes a context size)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    if isinstance(value, str) and len(value) <= 12 and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None


# --- llama.cpp -----------------------------------------------------------------------------------


def llamacpp_capabilities(props: Any, slots: Any = None, models: Any = None) -> LocalCapabilities | None:
    """Capabilities from llama-server's ``/props`` (and ``/slots``, ``/v1/models`` when they answered),
    or None when ``props`` is not llama-server's.

    ``default_generation_settings.n_ctx`` is one slot's context (``n_ctx_slot()`` in
    tools/server/server-context.cpp): with ``-np 4`` that is a quarter of ``-c``, and it never exceeds
    the model's training context (measured: SmolLM2 with ``-c 32768 -np 1`` gets 8,192).  With the
    automatic slot count the slots share one pool instead, so slots × n_ctx is not the server's total.
    """
    if not isinstance(props, dict):
        return None
    dgs = props.get("default_generation_settings")
    if not isinstance(dgs, dict) or "total_slots" not in props:
        return None
    notes: list[str] = []
    per_slot = as_int(dgs.get("n_ctx"))
    slot_ctx = [as_int(s.get("n_ctx")) for s in slots if isinstance(s, dict)] if isinstance(slots, list) else []
    known_slots = [c for c in slot_ctx if c is not None]
    if known_slots:
        per_slot = min(known_slots)
        notes.append(f"per-slot context {per_slot:,} from /slots")
    elif per_slot is not None:
        notes.append(f"per-slot context {per_slot:,} from /props")
    tools: bool | None = None
    caps = props.get("chat_template_caps")
    if isinstance(caps, dict) and isinstance(caps.get("supports_tools"), bool):
        tools = bool(caps["supports_tools"])
        notes.append(f"chat_template_caps.supports_tools = {str(tools).lower()}")
    vision: bool | None = None
    modalities = props.get("modalities")
    if isinstance(modalities, dict) and isinstance(modalities.get("vision"), bool):
        vision = bool(modalities["vision"])
    trained: int | None = None
    data = models.get("data") if isinstance(models, dict) else None
    if isinstance(data, list):
        for entry in data:
            meta = entry.get("meta") if isinstance(entry, dict) else None
            if isinstance(meta, dict) and as_int(meta.get("n_ctx_train")) is not None:
                trained = as_int(meta["n_ctx_train"])
                notes.append(f"model trained for {trained:,} tokens (/v1/models meta.n_ctx_train)")
                break
    reasoning = template_reasoning(props.get("chat_template"), caps)
    if reasoning is not None:
        notes.append("the chat template " + ("has a reasoning block" if reasoning else "has no reasoning block"))
    build = props.get("build_info")
    return LocalCapabilities(
        kind="llama.cpp",
        version=build if isinstance(build, str) and build else None,
        context_per_request=per_slot,
        slots=as_int(props.get("total_slots")),
        tools=tools,
        vision=vision,
        # Every llama-server recent enough to report chat_template_caps routes POST /v1/messages.
        anthropic=True if isinstance(caps, dict) else None,
        context_trained=trained,
        notes=tuple(notes),
        reasoning=reasoning,
    )


REASONING_MARKERS = ("<think>", "</think>", "reasoning_content", "enable_thinking")


def template_reasoning(template: Any, caps: Any = None) -> bool | None:
    """Whether a chat template makes the model think first; None when there is no template to read."""
    if isinstance(caps, dict) and any(caps.get(k) is True for k in ("supports_reasoning_effort", "supports_thinking")):
        return True
    if not isinstance(template, str) or not template:
        return None
    return any(marker in template for marker in REASONING_MARKERS)


async def _probe_llamacpp(fetch: Fetch) -> LocalCapabilities | None:
    status, props = await fetch("GET", "/props", None)
    if status != 200 or llamacpp_capabilities(props) is None:
        return None
    s_status, slots = await fetch("GET", "/slots", None)
    m_status, models = await fetch("GET", "/v1/models", None)
    return llamacpp_capabilities(props, slots if s_status == 200 else None, models if m_status == 200 else None)


# --- the probe -----------------------------------------------------------------------------------

Prober = Callable[[Fetch, str], Awaitable[LocalCapabilities | None]]


async def _llamacpp(fetch: Fetch, model: str) -> LocalCapabilities | None:
    return await _probe_llamacpp(fetch)


def _probers() -> dict[str, Prober]:
    from proxy import server_kinds

    return {
        "llama.cpp": _llamacpp,
        "ollama": server_kinds.probe_ollama,
        "lmstudio": server_kinds.probe_lmstudio,
        "vllm": server_kinds.probe_vllm,
    }


def _within_one_probe(fetch: Fetch) -> Fetch:
    """One probe asks each GET once (several kinds read /v1/models), and stops asking a server that
    gave no answer at all: a stalled server costs one timeout, not one per endpoint."""
    seen: dict[str, Reply] = {}
    dead = False

    async def guarded(method: str, path: str, body: Any) -> Reply:
        nonlocal dead
        if dead:
            return 0, None
        if method == "GET" and path in seen:
            return seen[path]
        reply = await fetch(method, path, body)
        if reply[0] == 0:
            dead = True
        if method == "GET":
            seen[path] = reply
        return reply

    return guarded


async def probe(fetch: Fetch, model: str, hint: str | None = None) -> LocalCapabilities:
    """Find the server's kind and capabilities.  ``hint``: the kind found last time, tried first so a
    refresh costs that kind's requests only."""
    fetch = _within_one_probe(fetch)
    probers = _probers()
    order = list(probers)
    if hint in probers:
        order.remove(hint)
        order.insert(0, hint)
    for kind in order:
        found = await probers[kind](fetch, model)
        if found is not None:
            return replace(found, probed_at=time.time())
    status, _ = await fetch("GET", "/v1/models", None)
    if 200 <= status < 300:
        return LocalCapabilities(kind="openai", notes=("no discovery endpoint answered",), probed_at=time.time())
    return replace(UNKNOWN, notes=(f"GET /v1/models answered {status or 'nothing'}",), probed_at=time.time())


_MAX_PROBE_BODY = 4 * 1024 * 1024


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or ValueError past ``limit`` bytes (a discovery answer is never that large)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise ValueError("probe answer too large")
        chunks.append(chunk)
    return b"".join(chunks)


def aiohttp_fetch(session: aiohttp.ClientSession, base_url: str, api_key: str, timeout_s: float) -> Fetch:
    """A :data:`Fetch` over an aiohttp session: each call bounded by ``timeout_s``, never raising."""
    root = server_root(base_url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def fetch(method: str, path: str, body: Any) -> Reply:
        data = None if body is None else jsonio.dumps(body)
        send_headers = headers if data is None else {**headers, "Content-Type": "application/json"}
        try:
            async with asyncio.timeout(timeout_s):
                async with session.request(method, root + path, headers=send_headers, data=data) as resp:
                    raw = await _read_capped(resp, _MAX_PROBE_BODY)
                    try:
                        return resp.status, jsonio.loads(raw) if raw else None
                    except (ValueError, UnicodeDecodeError):
                        return resp.status, None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return 0, None

    return fetch


async def probe_url(base_url: str, model: str, api_key: str = "", timeout_s: float = 3.0) -> LocalCapabilities:
    """Probe a server by URL with a session of its own (installer, ops)."""
    async with aiohttp.ClientSession() as session:
        return await probe(aiohttp_fetch(session, base_url, api_key, timeout_s), model)


def capabilities_json(caps: LocalCapabilities) -> dict[str, Any]:
    """The capabilities as /health reports them (and ops reads them back with from_json)."""
    return {
        "kind": caps.kind,
        "version": caps.version,
        "context_per_request": caps.context_per_request,
        "slots": caps.slots,
        "tools": caps.tools,
        "vision": caps.vision,
        "anthropic": caps.anthropic,
        "truncates_silently": caps.truncates_silently,
        "context_trained": caps.context_trained,
        "reasoning": caps.reasoning,
        "notes": list(caps.notes),
        "summary": caps.describe(),
    }


def capabilities_from_json(data: Any) -> LocalCapabilities:
    """Inverse of capabilities_json, tolerant of anything (an older proxy, garbage): unknown fields stay unknown."""
    if not isinstance(data, dict):
        return UNKNOWN

    def flag(name: str) -> bool | None:
        value = data.get(name)
        return value if isinstance(value, bool) else None

    kind = data.get("kind")
    version = data.get("version")
    notes = data.get("notes")
    return LocalCapabilities(
        kind=kind if isinstance(kind, str) and kind in (*KINDS, "unknown") else "unknown",
        version=version if isinstance(version, str) else None,
        context_per_request=as_int(data.get("context_per_request")),
        slots=as_int(data.get("slots")),
        tools=flag("tools"),
        vision=flag("vision"),
        anthropic=flag("anthropic"),
        truncates_silently=data.get("truncates_silently") is True,
        context_trained=as_int(data.get("context_trained")),
        notes=tuple(n for n in notes if isinstance(n, str)) if isinstance(notes, list) else (),
        reasoning=flag("reasoning"),
    )
