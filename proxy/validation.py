"""Shape checks for incoming Messages requests: one message naming the first bad field, or None.

These are deliberately about *shape* only (types and presence): the upstream models judge content.
"""

from __future__ import annotations

from typing import Any

ROLES = frozenset({"user", "assistant", "system"})


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_content(where: str, content: Any) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}.content must be a string or a list of content blocks"
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"{where}.content.{j} must be an object with a string 'type'"
    return None


def check_messages_body(body: Any, *, require_max_tokens: bool = True) -> str | None:
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        return "model: a non-empty string is required"
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "messages: a list is required"
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            return f"{where} must be an object"
        if message.get("role") not in ROLES:
            return f"{where}.role must be one of user, assistant, system"
        if "content" not in message:
            return f"{where}.content is required"
        problem = _check_content(where, message["content"])
        if problem:
            return problem
    if require_max_tokens or "max_tokens" in body:
        mt = body.get("max_tokens")
        if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
            return "max_tokens: a positive integer is required"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: must be true or false"
    system = body.get("system")
    if system is not None:
        if isinstance(system, list):
            for j, block in enumerate(system):
                if not isinstance(block, dict) or not isinstance(block.get("text", ""), str):
                    return f"system.{j} must be a text block"
        elif not isinstance(system, str):
            return "system: must be a string or a list of text blocks"
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: must be a list"
        for j, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                return f"tools.{j} must be an object with a string 'name'"
    for key in ("temperature", "top_p", "top_k"):
        if key in body and body[key] is not None and not _is_number(body[key]):
            return f"{key}: must be a number"
    if "metadata" in body and body["metadata"] is not None and not isinstance(body["metadata"], dict):
        return "metadata: must be an object"
    if "stop_sequences" in body and not (
        isinstance(body["stop_sequences"], list) and all(isinstance(s, str) for s in body["stop_sequences"])
    ):
        return "stop_sequences: must be a list of strings"
    return None
