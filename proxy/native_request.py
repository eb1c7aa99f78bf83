"""Claude Code's Anthropic request → the body sent to the local server's own ``POST /v1/messages``.

The body is built from an allow-list, never forwarded as-is: ``model`` (the local one), ``messages``,
``system``, ``max_tokens`` (capped by ``local.max_output_tokens``), ``stream``, ``temperature``,
``top_p``, ``top_k``, ``stop_sequences``, ``tools`` (custom tools only) and ``tool_choice``.

Measured against a real llama-server (llama.cpp vendored by llama-cpp-python 0.3.36, see
``tests/test_llama_dialects.py``): it answered 200 to every top-level field Claude Code sends
(``thinking``, ``context_management``, ``output_config``, ``metadata``, ``cache_control`` on blocks,
thinking blocks with signatures in the history, ``role: "system"`` messages mid-conversation) and
refused only an image without a vision projector (500, "image input is not supported").  The
cloud-only fields are left out all the same: they mean nothing to a local model (``thinking`` is an
Anthropic extended-thinking budget, ``context_management`` edits Anthropic's server-side context,
``output_config.effort`` and ``metadata.user_id`` are Anthropic's), Ollama, LM Studio and vLLM each
validate differently, and the OpenAI path drops them too.  In the messages: thinking blocks (their
signatures are Anthropic's, worthless to the local model) and ``cache_control`` markers are dropped;
a ``system`` message after the first turn becomes a ``<system-reminder>`` in a user message, as on
the OpenAI path, because many chat templates refuse a system message that is not first.
"""

from __future__ import annotations

from typing import Any

from proxy.openai_request import RequestTranslationError

_SAMPLING = ("temperature", "top_p", "top_k")
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
_TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})


def to_native_request(body: dict[str, Any], *, model: str, max_output_tokens: int) -> dict[str, Any]:
    """The allow-listed body (see module docstring).  Raises :class:`RequestTranslationError`."""
    messages_in = body.get("messages")
    if not isinstance(messages_in, list):
        raise RequestTranslationError("request has no 'messages' list")
    system = _texts(body.get("system"), where="system")
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(messages_in):
        if not isinstance(msg, dict):
            raise RequestTranslationError(f"messages[{i}] is not an object")
        role = msg.get("role")
        if role == "system":
            texts = _texts(msg.get("content"), where=f"messages[{i}]")
            if not messages:
                system += texts
            elif any(t.strip() for t in texts):
                note = "\n\n".join(t for t in texts if t.strip())
                if not note.lstrip().startswith("<system-reminder>"):
                    note = f"<system-reminder>\n{note}\n</system-reminder>"
                _append(messages, "user", [{"type": "text", "text": note}])
        elif role in ("user", "assistant"):
            blocks = _blocks(msg.get("content"), i, assistant=role == "assistant")
            if blocks:
                _append(messages, role, blocks)
        else:
            raise RequestTranslationError(f"messages[{i}] has unsupported role {role!r}")
    out: dict[str, Any] = {"model": model, "messages": messages}
    system_text = "\n\n".join(t for t in system if t)
    if system_text:
        out["system"] = system_text
    requested = body.get("max_tokens")
    if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0:
        out["max_tokens"] = min(requested, max_output_tokens)
    else:
        out["max_tokens"] = max_output_tokens
    out["stream"] = body.get("stream") is True
    for key in _SAMPLING:
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value
    stops = body.get("stop_sequences")
    if isinstance(stops, list):
        stop = [s for s in stops if isinstance(s, str) and s]
        if stop:
            out["stop_sequences"] = stop
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") in _TOOL_CHOICES:
            kept = {"type": choice["type"]}
            if choice["type"] == "tool" and isinstance(choice.get("name"), str):
                kept["name"] = choice["name"]
            out["tool_choice"] = kept
    return out


def _texts(value: Any, *, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise RequestTranslationError(f"{where} is neither text nor a list of blocks")
    return [b["text"] for b in value if isinstance(b, dict) and isinstance(b.get("text"), str)]


def _clean(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k not in ("cache_control", "citations")}


def _blocks(content: Any, i: int, *, assistant: bool) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise RequestTranslationError(f"messages[{i}].content is neither text nor a list of blocks")
    out: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise RequestTranslationError(f"messages[{i}] has a content block without a type")
        btype = block["type"]
        if btype in _DROPPED_BLOCKS:
            continue
        if btype == "text":
            # Anthropic refuses empty text blocks; a replayed history may hold them.
            if isinstance(block.get("text"), str) and block["text"]:
                out.append({"type": "text", "text": block["text"]})
        elif btype == "tool_result":
            result = _clean(block)
            inner = result.get("content")
            if isinstance(inner, list):
                result["content"] = [_clean(b) if isinstance(b, dict) else b for b in inner]
            out.append(result)
        elif assistant and btype == "tool_use":
            out.append({k: block.get(k) for k in ("type", "id", "name", "input")})
        else:
            out.append(_clean(block))
    return out


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Consecutive messages of one role are merged (dropped blocks and system notes leave them)."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"] = messages[-1]["content"] + blocks
    else:
        messages.append({"role": role, "content": blocks})


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        return []
    out: list[dict[str, Any]] = []
    for t in tools:
        if isinstance(t, dict) and t.get("type") in (None, "custom") and isinstance(t.get("name"), str):
            schema = t.get("input_schema")
            if isinstance(schema, dict):
                tool: dict[str, Any] = {"name": t["name"], "input_schema": schema}
                if isinstance(t.get("description"), str):
                    tool["description"] = t["description"]
                out.append(tool)
    return out
