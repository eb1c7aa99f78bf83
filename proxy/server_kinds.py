"""Capability probes for Ollama, LM Studio and vLLM (llama.cpp's lives in :mod:`proxy.capabilities`).

Each ``probe_KIND(fetch, model)`` returns None when the server is not of that kind, else what it found
for the configured ``model``.  The parsing lives in pure functions (``ollama_capabilities``,
``lmstudio_capabilities``, ``vllm_capabilities``) that take the servers' JSON as recorded, so tests feed
them answers directly; a value of the wrong type, a negative number or an absurd string leaves that
figure unknown (``None``) and never raises.

The shapes read, and where they are defined:

Ollama (``github.com/ollama/ollama``)
    ``GET /api/version`` → ``{"version": "0.14.2"}`` (server/routes.go, route ``/api/version``).
    ``GET /api/ps`` → ``{"models": [{"name", "model", "size", "digest", "details", "expires_at",
    "size_vram", "context_length"}]}`` (api/types.go ``ProcessResponse`` / ``ProcessModelResponse``;
    ``context_length`` since 0.10.0, ollama/ollama#11331).  It is the runner's ``NumCtx``: the
    context one request gets (llm/llama_server.go ``ContextLength``).  Names are the shortest display
    form, e.g. ``"qwen3:latest"``.
    ``POST /api/show {"model": NAME}`` → ``{"parameters": "num_ctx    65536\\n...", "model_info":
    {"general.architecture": "qwen3", "qwen3.context_length": 40960, ...}, "capabilities":
    ["completion", "tools", "vision", "thinking", ...]}`` (api/types.go ``ShowResponse``,
    types/model/capability.go, server/routes.go ``GetModelInfo``: one ``"%-30s %#v"`` line per
    option); 404 ``{"error": "model 'x' not found"}`` for an unknown model (docs/api.md).
    Default context: 4,096 tokens unless ``num_ctx`` or ``OLLAMA_CONTEXT_LENGTH`` say otherwise; since
    0.15.5 the default is tiered by VRAM (4k / 32k / 256k, docs/context-length.mdx, server/routes.go
    ``defaultNumCtx``).  An over-long chat is cut from the front (server/prompt.go ``chatPrompt``).
    Anthropic ``POST /v1/messages`` since 0.14.0 (ollama/ollama#13600, docs/api/anthropic-compatibility.mdx).

LM Studio (``lmstudio.ai/docs``, source ``github.com/lmstudio-ai/docs``)
    ``GET /api/v1/models`` (0.4.0+, 1_developer/2_rest/list.md, https://lmstudio.ai/docs/developer/rest/list)
    → ``{"models": [{"type": "llm"|"embedding", "key", "loaded_instances": [{"id", "config":
    {"context_length", "parallel", ...}}], "max_context_length", "capabilities": {"vision",
    "trained_for_tool_use"}, "variants", ...}]}``.
    ``GET /api/v0/models`` (0.3.6+, 1_developer/2_rest/endpoints.mdx,
    https://lmstudio.ai/docs/developer/rest/endpoints) → ``{"object": "list", "data": [{"id", "type":
    "llm"|"vlm"|"embeddings", "state": "loaded"|"not-loaded", "max_context_length", ...}]}``; loaded
    models also carry ``loaded_context_length`` (not in the docs; seen in real answers quoted in
    zed-industries/zed#25606 and co-l/openfox#49) and, since 0.3.16, a ``capabilities`` list such as
    ``["tool_use"]`` (1_developer/api-changelog.md).  Every model takes tools: without native support
    LM Studio uses its own default tool format (1_developer/3_openai-compat/tools.mdx).
    Anthropic ``POST /v1/messages`` since 0.4.1 (api-changelog.md); no endpoint reports the version.

vLLM (``github.com/vllm-project/vllm``)
    ``GET /v1/models`` → ``{"object": "list", "data": [{"id", "object": "model", "owned_by": "vllm",
    "root", "parent", "max_model_len", "permission"}]}`` (vllm/entrypoints/openai/protocol.py
    ``ModelCard``; LoRA adapters are listed with ``parent`` and no ``max_model_len``).
    ``GET /version`` → ``{"version": "0.12.0"}`` (vllm/entrypoints/openai/api_server.py).  A prompt
    longer than ``max_model_len`` is refused with HTTP 400, never cut.  ``POST /v1/messages`` is routed
    by ``vllm serve`` itself since vllm-project/vllm#27882 (vllm/entrypoints/anthropic/api_router.py);
    0.12.0 is the first release that is documented with it (taken as the threshold; 0.11.1 may already
    have it).  Tool calls need ``--enable-auto-tool-choice`` and ``--tool-call-parser``, which no
    endpoint reports.
"""

from __future__ import annotations

import re
from typing import Any

from proxy.capabilities import Fetch, LocalCapabilities, as_int

# Larger "context sizes" are garbage (the longest trained contexts are ~10M tokens).
MAX_CONTEXT = 1 << 27
# Longer ids / versions are garbage; they never reach the notes.
_MAX_NAME = 512
_MAX_VERSION = 64
# At most this many list entries are looked at (a server listing more is answering garbage).
_MAX_ENTRIES = 10_000
# Ollama's parameters text is read up to this length.
_MAX_PARAMETERS = 64 * 1024

OLLAMA_DEFAULT_CONTEXT = 4096
OLLAMA_ANTHROPIC_SINCE = (0, 14, 0)
OLLAMA_VRAM_DEFAULT_SINCE = (0, 15, 5)
VLLM_ANTHROPIC_SINCE = (0, 12, 0)

_VERSION_RE = re.compile(r"v?(\d{1,6})\.(\d{1,6})(?:\.(\d{1,6}))?")


# --- small helpers -------------------------------------------------------------------------------


def _context(value: Any) -> int | None:
    """A context size from JSON: a positive integer up to :data:`MAX_CONTEXT`, else None."""
    if isinstance(value, str) and len(value) > 12:
        return None  # also keeps as_int away from int() on a megabyte of digits
    n = as_int(value)
    return n if n is not None and n <= MAX_CONTEXT else None


def _name(value: Any) -> str | None:
    """A model id / name from JSON: a non-empty string of sane length, else None."""
    return value if isinstance(value, str) and 0 < len(value) <= _MAX_NAME else None


def _version(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    v = value.strip()
    return v if 0 < len(v) <= _MAX_VERSION and v.isprintable() else None


def version_tuple(version: str | None) -> tuple[int, int, int] | None:
    """``"0.14.0-rc1"`` / ``"v0.12.0+cu128"`` / ``"0.11.1.dev5+g123"`` → ``(0, 14, 0)``; None when unparseable."""
    if version is None:
        return None
    m = _VERSION_RE.match(version)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The dict entries of a JSON list (anything else: none)."""
    if not isinstance(value, list):
        return []
    return [e for e in value[:_MAX_ENTRIES] if isinstance(e, dict)]


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _strings(value: Any) -> list[str] | None:
    """A JSON list of strings (non-strings dropped), or None when it is not a list."""
    if not isinstance(value, list):
        return None
    return [s for s in value[:_MAX_ENTRIES] if isinstance(s, str) and len(s) <= _MAX_NAME]


# --- Ollama --------------------------------------------------------------------------------------


def ollama_name(name: str) -> str:
    """Ollama's full form of a model name: ``"qwen3"`` → ``"qwen3:latest"`` (a tag is kept as is;
    a registry port such as ``host:5000/m`` is not taken for a tag)."""
    name = name.strip()
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def ollama_version(version_json: Any) -> str | None:
    """The version from ``GET /api/version``, or None when the answer is not Ollama's."""
    return _version(version_json.get("version")) if isinstance(version_json, dict) else None


def _ollama_ps_models(ps_json: Any) -> list[dict[str, Any]] | None:
    """The entries of ``GET /api/ps``, or None when the answer is not Ollama's."""
    if not isinstance(ps_json, dict) or not isinstance(ps_json.get("models"), list):
        return None
    return _dicts(ps_json["models"])


def ollama_num_ctx(parameters: Any) -> int | None:
    """``num_ctx`` from ``/api/show``'s ``parameters`` text (``"num_ctx    65536"`` lines), if set."""
    if not isinstance(parameters, str):
        return None
    for line in parameters[:_MAX_PARAMETERS].splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "num_ctx":
            value = parts[1]
            if value.endswith(".0"):  # a float option printed by %#v
                value = value[:-2]
            return _context(value)
    return None


def _ollama_trained(model_info: Any) -> int | None:
    if not isinstance(model_info, dict):
        return None
    arch = _name(model_info.get("general.architecture"))
    if arch is not None:
        return _context(model_info.get(f"{arch}.context_length"))
    found = [k for k in list(model_info)[:_MAX_ENTRIES] if isinstance(k, str) and k.endswith(".context_length")]
    return _context(model_info[found[0]]) if len(found) == 1 else None


def ollama_capabilities(version_json: Any, ps_json: Any, show_json: Any, model: str) -> LocalCapabilities | None:
    """Capabilities from Ollama's ``/api/version``, ``/api/ps`` and ``/api/show`` answers (None for an
    answer that did not come), or None when the first two are not Ollama's.

    The context one request gets: the loaded model's ``context_length`` (``/api/ps``); else the
    model's ``num_ctx`` parameter (``/api/show``), which Ollama uses when it loads it; else Ollama's
    default of 4,096 tokens.
    """
    version = ollama_version(version_json)
    running = _ollama_ps_models(ps_json)
    if version is None or running is None:
        return None
    vt = version_tuple(version)
    notes = [f"Ollama {version} (GET /api/version)"]
    anthropic: bool | None = None
    if vt is not None:
        anthropic = vt >= OLLAMA_ANTHROPIC_SINCE
        if not anthropic:
            notes.append("Anthropic /v1/messages needs Ollama 0.14.0 or later")
    target = ollama_name(model)
    label = _short(model)

    loaded = next(
        (
            m for m in running
            if any((n := _name(m.get(k))) is not None and ollama_name(n) == target for k in ("name", "model"))
        ),
        None,
    )
    loaded_ctx = _context(loaded.get("context_length")) if loaded is not None else None

    show = show_json if isinstance(show_json, dict) else None
    num_ctx = ollama_num_ctx(show.get("parameters")) if show is not None else None
    trained = _ollama_trained(show.get("model_info")) if show is not None else None
    caps = _strings(show.get("capabilities")) if show is not None else None

    per_request: int | None
    if loaded_ctx is not None:
        per_request = loaded_ctx
        notes.append(f"{label} is loaded with a {loaded_ctx:,}-token context (GET /api/ps context_length)")
    else:
        if loaded is not None:
            notes.append(
                f"{label} is loaded, but /api/ps reports no context_length (Ollama 0.10.0 or later does)"
            )
        if num_ctx is not None:
            per_request = num_ctx
            notes.append(f"num_ctx {num_ctx:,} from the model's parameters (POST /api/show)")
        elif show is None and loaded is None:
            per_request = None
            notes.append(f"Ollama has no model {label} (POST /api/show did not answer it)")
        else:
            per_request = OLLAMA_DEFAULT_CONTEXT
            default = f"Ollama's default context of {OLLAMA_DEFAULT_CONTEXT:,} tokens assumed"
            if vt is not None and vt >= OLLAMA_VRAM_DEFAULT_SINCE:
                default += " (since 0.15.5 Ollama picks 32k or 256k on GPUs with 24 / 48 GiB of VRAM)"
            notes.append(
                default + "; raise it with OLLAMA_CONTEXT_LENGTH or a num_ctx parameter"
                " (the exact figure shows in /api/ps once the model is loaded)"
            )
    if trained is not None:
        notes.append(f"trained for {trained:,} tokens (model_info)")

    tools: bool | None = None
    vision: bool | None = None
    reasoning: bool | None = None
    if caps is not None:
        tools, vision, reasoning = "tools" in caps, "vision" in caps, "thinking" in caps
        notes.append("capabilities (POST /api/show): " + (", ".join(_short(c, 24) for c in caps[:12]) or "none"))
    notes.append("Ollama cuts an over-long prompt from the front instead of refusing it")
    return LocalCapabilities(
        kind="ollama",
        version=version,
        context_per_request=per_request,
        tools=tools,
        vision=vision,
        anthropic=anthropic,
        truncates_silently=True,
        context_trained=trained,
        notes=tuple(notes),
        reasoning=reasoning,
    )


async def probe_ollama(fetch: Fetch, model: str) -> LocalCapabilities | None:
    """``GET /api/version``, ``GET /api/ps``, ``POST /api/show``: at most 3 requests."""
    status, version = await fetch("GET", "/api/version", None)
    if status != 200 or ollama_version(version) is None:
        return None
    p_status, ps = await fetch("GET", "/api/ps", None)
    if p_status != 200 or _ollama_ps_models(ps) is None:
        return None
    s_status, show = await fetch("POST", "/api/show", {"model": model})
    return ollama_capabilities(version, ps, show if s_status == 200 else None, model)


# --- LM Studio -----------------------------------------------------------------------------------


def _is_lmstudio_v1(models_json: Any) -> bool:
    return isinstance(models_json, dict) and any(
        _name(e.get("key")) is not None and isinstance(e.get("loaded_instances"), list)
        for e in _dicts(models_json.get("models"))
    )


def _is_lmstudio_v0(models_json: Any) -> bool:
    return isinstance(models_json, dict) and any(
        _name(e.get("id")) is not None
        and e.get("state") in ("loaded", "not-loaded")
        and ("max_context_length" in e or "type" in e)
        for e in _dicts(models_json.get("data"))
    )


def _lmstudio_not_loaded(label: str) -> str:
    return (
        f"{label} is not loaded: LM Studio loads it on the first request with its saved load"
        " settings, so its context is known only once it is loaded"
    )


def _lmstudio_trained(entry: dict[str, Any], notes: list[str]) -> int | None:
    trained = _context(entry.get("max_context_length"))
    if trained is not None:
        notes.append(f"max_context_length {trained:,} (the model's maximum, not what it is loaded with)")
    return trained


def _lmstudio_v1(models_json: Any, model: str) -> LocalCapabilities:
    src = "GET /api/v1/models"
    notes = [
        f"LM Studio 0.4 or later ({src}); it does not report its version, and Anthropic /v1/messages"
        " needs 0.4.1"
    ]
    label = _short(model)
    entries = _dicts(models_json.get("models"))
    entry: dict[str, Any] | None = None
    instance_ids: list[str] = []
    for e in entries:
        instances = _dicts(e.get("loaded_instances"))
        ids = [i for i in (_name(x.get("id")) for x in instances) if i is not None]
        if e.get("key") == model or model in (_strings(e.get("variants")) or []) or model in ids:
            entry, instance_ids = e, ids
            break
    if entry is None:
        notes.append(f"no model {label} among LM Studio's {len(entries)} models")
        return LocalCapabilities(kind="lmstudio", notes=tuple(notes))
    instances = _dicts(entry.get("loaded_instances"))
    if model in instance_ids and entry.get("key") != model:
        instances = [x for x in instances if x.get("id") == model]
    configs = [x.get("config") for x in instances]
    ctxs = [c for c in (_context(cfg.get("context_length")) for cfg in configs if isinstance(cfg, dict)) if c]
    per_request: int | None = None
    if ctxs:
        per_request = min(ctxs)
        notes.append(
            f"{label} is loaded with a {per_request:,}-token context ({src} loaded_instances[].config.context_length)"
            + (f"; the smallest of {len(instances)} loaded instances" if len(instances) > 1 else "")
        )
        parallel = [p for p in (_context(cfg.get("parallel")) for cfg in configs if isinstance(cfg, dict)) if p]
        if parallel and max(parallel) > 1:
            notes.append(f"serves up to {max(parallel)} predictions at once (config.parallel)")
    elif instances:
        notes.append(f"{label} is loaded, but {src} reports no context_length for it")
    else:
        notes.append(_lmstudio_not_loaded(label))
    trained = _lmstudio_trained(entry, notes)
    tools: bool | None = None
    vision: bool | None = None
    caps = entry.get("capabilities")
    if isinstance(caps, dict):
        vision = _bool(caps.get("vision"))
        native = _bool(caps.get("trained_for_tool_use"))
        if native:
            tools = True
            notes.append("native tool use (capabilities.trained_for_tool_use)")
        elif native is False:
            notes.append("no native tool use: LM Studio falls back to its default tool-call format")
    if entry.get("type") == "embedding":
        notes.append(f"{label} is an embedding model: it cannot chat")
    return LocalCapabilities(
        kind="lmstudio", context_per_request=per_request, tools=tools, vision=vision,
        context_trained=trained, notes=tuple(notes),
    )


def _lmstudio_v0(models_json: Any, model: str) -> LocalCapabilities:
    src = "GET /api/v0/models"
    notes = [f"LM Studio ({src}); it does not report its version (Anthropic /v1/messages needs 0.4.1)"]
    label = _short(model)
    entries = _dicts(models_json.get("data"))
    entry = next((e for e in entries if e.get("id") == model), None)
    if entry is None:
        notes.append(f"no model {label} among LM Studio's {len(entries)} models")
        return LocalCapabilities(kind="lmstudio", notes=tuple(notes))
    per_request: int | None = None
    state = entry.get("state")
    if state == "loaded":
        per_request = _context(entry.get("loaded_context_length"))
        if per_request is not None:
            notes.append(f"{label} is loaded with a {per_request:,}-token context (loaded_context_length)")
        else:
            notes.append(f"{label} is loaded, but this LM Studio reports no loaded_context_length")
    elif state == "not-loaded":
        notes.append(_lmstudio_not_loaded(label))
    trained = _lmstudio_trained(entry, notes)
    kind = entry.get("type")
    vision = {"vlm": True, "llm": False, "embeddings": False}.get(kind) if isinstance(kind, str) else None
    if kind == "embeddings":
        notes.append(f"{label} is an embedding model: it cannot chat")
    tools: bool | None = None
    caps = _strings(entry.get("capabilities"))
    if caps is not None:
        if "tool_use" in caps:
            tools = True
            notes.append("native tool use (capabilities: tool_use)")
        else:
            notes.append("no native tool use: LM Studio falls back to its default tool-call format")
    return LocalCapabilities(
        kind="lmstudio", context_per_request=per_request, tools=tools, vision=vision,
        context_trained=trained, notes=tuple(notes),
    )


def lmstudio_capabilities(v1_json: Any, v0_json: Any, model: str) -> LocalCapabilities | None:
    """Capabilities from LM Studio's ``GET /api/v1/models`` (0.4+) or, failing that, ``GET /api/v0/models``
    answer (None for one that did not come), or None when neither is LM Studio's."""
    if _is_lmstudio_v1(v1_json):
        return _lmstudio_v1(v1_json, model)
    if _is_lmstudio_v0(v0_json):
        return _lmstudio_v0(v0_json, model)
    return None


async def probe_lmstudio(fetch: Fetch, model: str) -> LocalCapabilities | None:
    """``GET /api/v1/models``, then ``GET /api/v0/models`` only if that is not LM Studio 0.4's: at most 2 requests."""
    status, v1 = await fetch("GET", "/api/v1/models", None)
    if status == 200 and _is_lmstudio_v1(v1):
        return lmstudio_capabilities(v1, None, model)
    status, v0 = await fetch("GET", "/api/v0/models", None)
    return lmstudio_capabilities(None, v0, model) if status == 200 else None


# --- vLLM ----------------------------------------------------------------------------------------


def _vllm_cards(models_json: Any) -> list[dict[str, Any]] | None:
    """The model cards of a ``/v1/models`` answer, or None when none is owned by vLLM."""
    if not isinstance(models_json, dict):
        return None
    cards = _dicts(models_json.get("data"))
    return cards if any(c.get("owned_by") == "vllm" for c in cards) else None


def vllm_capabilities(models_json: Any, version_json: Any, model: str) -> LocalCapabilities | None:
    """Capabilities from vLLM's ``GET /v1/models`` and ``GET /version`` answers (None for one that did
    not come), or None when the model list is not vLLM's (no card ``owned_by: "vllm"``)."""
    cards = _vllm_cards(models_json)
    if cards is None:
        return None
    version = _version(version_json.get("version")) if isinstance(version_json, dict) else None
    vt = version_tuple(version)
    notes = [f"vLLM {version} (GET /version)" if version else "vLLM (GET /v1/models owned_by); /version did not answer"]
    anthropic: bool | None = None
    if vt is not None:
        anthropic = vt >= VLLM_ANTHROPIC_SINCE
        if not anthropic:
            notes.append("Anthropic /v1/messages is taken as needing vLLM 0.12.0 or later")
    label = _short(model)
    by_id = {i: c for c in cards if (i := _name(c.get("id"))) is not None}
    card = by_id.get(model)
    per_request: int | None = None
    if card is None:
        notes.append(f"no model {label} among vLLM's {len(by_id)} served models")
    else:
        per_request = _context(card.get("max_model_len"))
        if per_request is not None:
            notes.append(f"max_model_len {per_request:,} (GET /v1/models); longer prompts are refused, not cut")
        else:
            parent = _name(card.get("parent"))
            base = by_id.get(parent) if parent is not None else None
            per_request = _context(base.get("max_model_len")) if base is not None else None
            if per_request is not None and parent is not None:
                notes.append(f"max_model_len {per_request:,} of {_short(parent)}, the base of adapter {label}")
            else:
                notes.append(f"GET /v1/models gives no max_model_len for {label}")
    notes.append(
        "tools unknown: vLLM takes tool_choice \"auto\" only when started with --enable-auto-tool-choice"
        " and a --tool-call-parser, which it does not report"
    )
    return LocalCapabilities(
        kind="vllm", version=version, context_per_request=per_request, anthropic=anthropic, notes=tuple(notes)
    )


async def probe_vllm(fetch: Fetch, model: str) -> LocalCapabilities | None:
    """``GET /v1/models``, then ``GET /version``: at most 2 requests."""
    status, models = await fetch("GET", "/v1/models", None)
    if status != 200 or _vllm_cards(models) is None:
        return None
    v_status, version = await fetch("GET", "/version", None)
    return vllm_capabilities(models, version if v_status == 200 else None, model)
