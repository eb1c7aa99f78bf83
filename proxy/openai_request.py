"""Anthropic Messages request body → OpenAI chat-completions request body (the local path).

The outgoing body is built from an allow-list: only ``model``, ``messages``, ``max_tokens``, ``stream``,
``stream_options``, ``stop``, ``temperature``, ``top_p``, ``tools`` and ``tool_choice`` are ever sent.
Strict servers (vLLM, llama.cpp) reject unknown fields, and Claude Code's body carries many
(``thinking``, ``context_management``, ``output_config``, ``metadata``...) that mean nothing locally.

Message mapping, and why:

* ``system`` (string or text blocks) becomes the one leading system message, together with any
  ``role: "system"`` message that comes before the first user or assistant message.
* A ``role: "system"`` message later in the conversation (Claude Code sends agent and skill lists,
  mode notices) stays where it stands, as user text wrapped in ``<system-reminder>`` (Claude Code's
  own wrapping for such notes): Qwen-style chat templates raise on a system message that is not
  first, and moving it to the front would change the start of the rendered prompt, so the local
  server's prefix cache would re-evaluate the whole conversation (~19,000 tokens, minutes on a CPU).
* ``tool_result`` blocks become ``role: "tool"`` messages placed right after the assistant message
  that called them, in the order of its ``tool_calls``; text and images that sat beside the results in
  the same user message follow as one user message (templates expect tool messages to follow the call).
* Images inside a tool result cannot ride in a tool message (servers accept text only there), so the
  tool message gets a short placeholder and the image is attached to the user message that follows.
* ``thinking``/``redacted_thinking`` blocks, ``cache_control`` and any other unknown block are dropped.
* After dropping, consecutive user (or assistant) messages are merged, since many templates demand
  strict user/assistant alternation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

_TEXT_JOIN = "\n\n"


class RequestTranslationError(ValueError):
    """The Anthropic body has a shape this translator cannot map (the caller should use the cloud)."""


def server_tool_names(body: Mapping[str, Any]) -> list[str]:
    """Names of tools in the request that a local model cannot serve.

    That is every tool that is not a plain custom tool (``name`` + ``input_schema``, ``type`` absent or
    ``"custom"``): Anthropic server tools (``web_search_20250305``, ``code_execution_...``,
    ``web_fetch_...``) and Anthropic-defined client tools without a schema (``bash_...``,
    ``text_editor_...``, ``computer_...``).  A non-empty result means: route to the cloud.
    """
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    out: list[str] = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        if _is_custom_tool(tool):
            continue
        name = tool.get("name") or tool.get("type") or "?"
        out.append(str(name))
    return out


def request_tool_names(body: Mapping[str, Any]) -> frozenset[str]:
    """Names of the request's custom tools: the only names a local tool call may use."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return frozenset()
    return frozenset(
        t["name"] for t in tools if isinstance(t, dict) and _is_custom_tool(t) and isinstance(t.get("name"), str)
    )


def request_tool_schemas(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request's custom tools, name → ``input_schema`` (what a tool call written as text must fit)."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return {}
    return {
        t["name"]: t["input_schema"]
        for t in tools
        if isinstance(t, dict) and _is_custom_tool(t) and isinstance(t.get("name"), str)
    }


def _is_custom_tool(tool: dict[str, Any]) -> bool:
    return tool.get("type") in (None, "custom") and isinstance(tool.get("input_schema"), dict)


def to_openai_request(body: dict[str, Any], *, model: str, max_output_tokens: int) -> dict[str, Any]:
    """Translate an Anthropic Messages request into an OpenAI chat-completions request.

    ``model`` is the local model name (``LocalConfig.model``); ``max_output_tokens`` caps
    ``max_tokens`` (``LocalConfig.max_output_tokens``).  Streaming follows ``body["stream"]`` and, when
    on, asks for a usage chunk.  Raises :class:`RequestTranslationError` on a body whose shape is wrong.
    """
    messages_in = body.get("messages")
    if not isinstance(messages_in, list):
        raise RequestTranslationError("request has no 'messages' list")

    system_parts: list[str] = []
    system_parts.extend(_text_of(body.get("system"), where="system"))
    converted: list[dict[str, Any]] = []
    for i, msg in enumerate(messages_in):
        if not isinstance(msg, dict):
            raise RequestTranslationError(f"messages[{i}] is not an object")
        role = msg.get("role")
        content = msg.get("content")
        if role == "system":
            texts = _text_of(content, where=f"messages[{i}]")
            if converted:
                note = _TEXT_JOIN.join(t for t in texts if t)
                if note:
                    converted.append({"role": "user", "content": _as_reminder(note)})
            else:
                system_parts.extend(texts)
        elif role == "user":
            converted.extend(_user_messages(content, i, _last_tool_call_ids(converted)))
        elif role == "assistant":
            am = _assistant_message(content, i)
            if am is not None:
                converted.append(am)
        else:
            raise RequestTranslationError(f"messages[{i}] has unsupported role {role!r}")

    out_messages: list[dict[str, Any]] = []
    system_text = _TEXT_JOIN.join(p for p in system_parts if p)
    if system_text:
        out_messages.append({"role": "system", "content": system_text})
    out_messages.extend(_merge_consecutive(converted))

    out: dict[str, Any] = {"model": model, "messages": out_messages}

    requested = body.get("max_tokens")
    if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0:
        out["max_tokens"] = min(requested, max_output_tokens)
    else:
        out["max_tokens"] = max_output_tokens

    stream = body.get("stream") is True
    out["stream"] = stream
    if stream:
        out["stream_options"] = {"include_usage": True}

    stops = body.get("stop_sequences")
    if isinstance(stops, list):
        stop = [s for s in stops if isinstance(s, str) and s]
        if stop:
            out["stop"] = stop
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = value

    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            out["tool_choice"] = choice
    return out


def _as_reminder(text: str) -> str:
    if text.lstrip().startswith("<system-reminder>"):
        return text
    return f"<system-reminder>\n{text}\n</system-reminder>"


def _text_of(content: Any, *, where: str) -> list[str]:
    """Text pieces of a system prompt or system message (string or list of text blocks)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
    raise RequestTranslationError(f"{where} content must be a string or a list of blocks")


def _image_part(block: dict[str, Any]) -> dict[str, Any] | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type") or "image/png"
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{source['data']}"}}
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    return None


def _document_text(block: dict[str, Any]) -> str | None:
    # Plain-text documents can be inlined; PDFs and other binaries cannot reach a chat model.
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
        title = block.get("title")
        return f"{title}\n{source['data']}" if isinstance(title, str) and title else source["data"]
    return None


def _last_tool_call_ids(converted: list[dict[str, Any]]) -> list[str]:
    for msg in reversed(converted):
        if msg["role"] == "assistant":
            return [c["id"] for c in msg.get("tool_calls", [])]
        if msg["role"] == "user":
            return []
    return []


def _user_messages(content: Any, i: int, call_order: list[str]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise RequestTranslationError(f"messages[{i}] content must be a string or a list of blocks")
    tool_msgs: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            img = _image_part(block)
            if img is not None:
                parts.append(img)
        elif kind == "document":
            text = _document_text(block)
            if text is not None:
                parts.append({"type": "text", "text": text})
        elif kind == "tool_result":
            text, images = _tool_result(block)
            tool_msgs.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text})
            parts.extend(images)
        # Anything else (thinking, server tool results...) means nothing to a local model.
    if call_order and len(tool_msgs) > 1:
        # Results in the order of the calls: some templates pair them positionally.
        rank = {cid: n for n, cid in enumerate(call_order)}
        tool_msgs.sort(key=lambda m: rank.get(m["tool_call_id"], len(rank)))
    out = list(tool_msgs)
    if parts:
        out.append({"role": "user", "content": _compact_parts(parts)})
    elif not tool_msgs:
        # Keep the turn (alternation matters), even if everything in it was dropped.
        out.append({"role": "user", "content": ""})
    return out


def _tool_result(block: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for sub in content:
            if not isinstance(sub, dict):
                continue
            if sub.get("type") == "text" and isinstance(sub.get("text"), str):
                texts.append(sub["text"])
            elif sub.get("type") == "image":
                img = _image_part(sub)
                if img is not None:
                    images.append(img)
                    texts.append("[image attached in the next user message]")
            elif sub.get("type") == "document":
                doc = _document_text(sub)
                if doc is not None:
                    texts.append(doc)
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return text, images


def _compact_parts(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    # Text-only content as a plain string: some local chat templates only handle string content.
    if all(p["type"] == "text" for p in parts):
        return _TEXT_JOIN.join(p["text"] for p in parts)
    return parts


def _assistant_message(content: Any, i: int) -> dict[str, Any] | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content} if content else None
    if not isinstance(content, list):
        raise RequestTranslationError(f"messages[{i}] content must be a string or a list of blocks")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            if block["text"]:
                texts.append(block["text"])
        elif kind == "tool_use":
            args = block.get("input")
            try:
                arguments = json.dumps(args if isinstance(args, dict) else {}, ensure_ascii=False)
            except RecursionError:
                raise RequestTranslationError(f"messages[{i}] has a tool_use input nested too deeply") from None
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": arguments,
                    },
                }
            )
        # thinking / redacted_thinking carry no meaning for a local model and are dropped.
    if not texts and not calls:
        return None
    msg: dict[str, Any] = {"role": "assistant", "content": _TEXT_JOIN.join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _merge_consecutive(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        prev = out[-1] if out else None
        if prev is not None and prev["role"] == msg["role"] == "user":
            prev["content"] = _join_content(prev["content"], msg["content"])
        elif prev is not None and prev["role"] == msg["role"] == "assistant" and "tool_calls" not in prev:
            prev["content"] = _join_text(prev["content"], msg["content"])
            if "tool_calls" in msg:
                prev["tool_calls"] = msg["tool_calls"]
        else:
            out.append(msg)
    return out


def _join_text(a: str | None, b: str | None) -> str | None:
    if not a:
        return b
    if not b:
        return a
    return a + _TEXT_JOIN + b


def _join_content(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        return _join_text(a, b) or ""
    la = [{"type": "text", "text": a}] if isinstance(a, str) else list(a)
    lb = [{"type": "text", "text": b}] if isinstance(b, str) else list(b)
    return [p for p in la + lb if not (p["type"] == "text" and not p["text"])]


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        return []
    out: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, dict) or not _is_custom_tool(tool) or not isinstance(tool.get("name"), str):
            continue
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    return None
