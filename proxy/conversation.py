"""Facts about one Anthropic Messages request, extracted once, used by routing and the classifier.

Everything here is pure: a request body (already validated) and its headers in, a frozen
``RequestFacts`` out.  The body is walked once; nothing here allocates a copy of the transcript.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from proxy import jsonio
from proxy.openai_request import request_tool_names, server_tool_names
from proxy.tokens import estimate_request_tokens

PLAN_MODE_NOTICE = "Plan mode is active."
# Claude Code says this when the user leaves plan mode; a later notice re-enters it.
PLAN_MODE_EXITS = ("exited plan mode", "Exited Plan Mode")

SUBAGENT_TAG_RE = re.compile(r"<CCR-SUBAGENT-MODEL>\s*([^<,]+?)\s*,\s*([^<]+?)\s*</CCR-SUBAGENT-MODEL>\s*")
SYSTEM_REMINDER_RE = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
_SESSION_IN_USER_ID_RE = re.compile(r"session_([0-9a-fA-F-]{8,})")

LOCAL_PROVIDERS = frozenset({"local"})


@dataclass(frozen=True)
class ExplicitChoice:
    route: str  # "local" | "cloud"
    model: str | None  # None: the configured model for that side
    source: str  # "explicit" (the model field) | "subagent-tag"


@dataclass(frozen=True)
class RequestFacts:
    model: str
    explicit: ExplicitChoice | None
    has_messages: bool
    plan_mode: bool
    estimated_tokens: int
    background: bool
    server_tools: tuple[str, ...]
    session: str | None
    # Identifies the user turn this request belongs to: stable across tool-result continuations,
    # new for each genuine user message.
    turn_key: str
    latest_user_text: str
    first_user_text: str
    turns: int
    tool_calls: int
    body_bytes: int
    stream: bool
    # What the local side must be able to take (checked against the server's capabilities).
    tool_count: int = 0
    has_images: bool = False
    max_tokens: int | None = None


def parse_explicit_model(model: str) -> ExplicitChoice | None:
    """`local`, `local,NAME`, `cloud`, `cloud,NAME` (what Claude Code's /model sends for custom names)."""
    head, _, rest = model.partition(",")
    head = head.strip().lower()
    if head not in ("local", "cloud"):
        return None
    name = rest.strip() or None
    return ExplicitChoice(route=head, model=name, source="explicit")


def system_texts(system: Any) -> Iterator[str]:
    """The text of a request's ``system`` (a string or a list of text blocks), piece by piece."""
    if isinstance(system, str):
        yield system
    elif isinstance(system, list):
        for block in system:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                yield block["text"]


def find_subagent_tag(body: Mapping[str, Any]) -> ExplicitChoice | None:
    for text in system_texts(body.get("system")):
        m = SUBAGENT_TAG_RE.search(text)
        if m:
            provider, model = m.group(1).strip(), m.group(2).strip()
            route = "local" if provider.lower() in LOCAL_PROVIDERS else "cloud"
            return ExplicitChoice(route=route, model=model or None, source="subagent-tag")
    return None


def strip_subagent_tag(body: dict[str, Any]) -> bool:
    """Remove every subagent tag from the system prompt, in place.  Returns whether one was found."""
    system = body.get("system")
    found = False
    if isinstance(system, str):
        new, n = SUBAGENT_TAG_RE.subn("", system)
        if n:
            body["system"] = new
            found = True
    elif isinstance(system, list):
        for block in system:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                new, n = SUBAGENT_TAG_RE.subn("", block["text"])
                if n:
                    block["text"] = new
                    found = True
    return found


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def _block_texts(content: Any) -> Iterator[str]:
    for block in _content_blocks(content):
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            yield block["text"]


def _has_image(content: Any) -> bool:
    for block in _content_blocks(content):
        kind = block.get("type")
        if kind == "image":
            return True
        if kind == "tool_result" and isinstance(block.get("content"), list) and _has_image(block["content"]):
            return True
    return False


def genuine_user_text(content: Any) -> str:
    """The user's own words in a message: text blocks minus system reminders; '' for pure tool results."""
    parts = []
    for text in _block_texts(content):
        cleaned = SYSTEM_REMINDER_RE.sub("", text).strip()
        if cleaned:
            parts.append(cleaned)
    return "\n".join(parts)


def is_genuine_user_message(message: Mapping[str, Any]) -> bool:
    """A user message that starts a turn: it carries no tool results and has text of its own."""
    if message.get("role") != "user":
        return False
    blocks = _content_blocks(message.get("content"))
    if any(b.get("type") == "tool_result" for b in blocks):
        return False
    return bool(genuine_user_text(message.get("content")))


def session_id(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    sid = headers.get("x-claude-code-session-id") or headers.get("X-Claude-Code-Session-Id")
    if sid:
        return sid.strip()[:200] or None
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user_id, str) or not user_id:
        return None
    try:
        # orjson: a user_id nested too deeply is a ValueError, where json.loads raised RecursionError.
        parsed = jsonio.loads(user_id)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("session_id"), str):
        return str(parsed["session_id"])[:200]
    m = _SESSION_IN_USER_ID_RE.search(user_id)
    return m.group(1) if m else None


def _plan_mode(messages: list[Any]) -> bool:
    """Plan mode is on when its notice appears and no exit notice follows it."""
    active = False
    for message in messages:
        if not isinstance(message, dict):
            continue
        for text in _block_texts(message.get("content")):
            notice = text.rfind(PLAN_MODE_NOTICE)
            exit_at = max(text.rfind(marker) for marker in PLAN_MODE_EXITS)
            if notice >= 0 or exit_at >= 0:
                active = notice > exit_at
    return active


def extract_facts(body: Mapping[str, Any], headers: Mapping[str, str], body_bytes: int) -> RequestFacts:
    model = str(body.get("model", ""))
    messages = body.get("messages") or []
    explicit = parse_explicit_model(model) or find_subagent_tag(body)

    latest_idx = -1
    latest_text = ""
    first_text = ""
    turns = 0
    tool_calls = 0
    has_images = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if not has_images and role == "user":
            has_images = _has_image(message.get("content"))
        if role == "assistant":
            tool_calls += sum(1 for b in _content_blocks(message.get("content")) if b.get("type") == "tool_use")
        elif is_genuine_user_message(message):
            turns += 1
            latest_idx = i
            latest_text = genuine_user_text(message.get("content"))
            if not first_text:
                first_text = latest_text

    session = session_id(headers, body)
    max_tokens = body.get("max_tokens")
    digest = hashlib.blake2b(latest_text.encode("utf-8", "replace"), digest_size=12).hexdigest()
    turn_key = f"{latest_idx}:{digest}"

    return RequestFacts(
        model=model,
        explicit=explicit,
        has_messages=bool(messages),
        plan_mode=_plan_mode(messages),
        estimated_tokens=estimate_request_tokens(body),
        background="haiku" in model.lower(),
        server_tools=tuple(server_tool_names(body)),
        session=session,
        turn_key=turn_key,
        latest_user_text=latest_text,
        first_user_text=first_text,
        turns=turns,
        tool_calls=tool_calls,
        body_bytes=body_bytes,
        stream=bool(body.get("stream")),
        tool_count=len(request_tool_names(body)),
        has_images=has_images,
        max_tokens=max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None,
    )
