"""The difficulty classifier: ask the local model whether a request is SIMPLE or COMPLEX.

The local model is shown a compact view of the request (the latest genuine user text, the session's
first request, how far the session has gone, its size), never the whole 78 KB context: that keeps
the call fast and stops the classifier from *answering* the request instead of judging it.  The prompt
leans toward SIMPLE on purpose: the local model is capable, and every wrong COMPLEX costs money while
a wrong SIMPLE costs at most a retry.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp

from proxy.config import LocalConfig, RoutingConfig
from proxy.conversation import RequestFacts
from proxy.routing import COMPLEX, SIMPLE, Classification

ClassifyResult = Classification

DEFAULT_PROMPT = """\
You route coding-assistant requests between two models. The LOCAL model is strong: it writes, edits,
explains and debugs code, runs tools, and handles most everyday programming work well. The CLOUD model
is reserved for work that genuinely needs more: designing or re-architecting a non-trivial system,
subtle concurrency/security/performance reasoning across many files, large multi-step refactors,
or hard debugging where earlier attempts have already failed.

Judge the request below. Default to SIMPLE. Choose COMPLEX only when you are confident the task needs
the stronger model. Do not solve the task.

Reason briefly if you like, then end your reply with exactly one word on its own last line:
SIMPLE or COMPLEX
"""

_VERDICT_UPPER_RE = re.compile(r"\b(SIMPLE|COMPLEX)\b")
_VERDICT_ANY_RE = re.compile(r"\b(simple|complex)\b", re.IGNORECASE)
_BARE_LINE_RE = re.compile(r"^[\W_]*(?:verdict\s*[:=-]\s*)?[\W_]*(simple|complex)[\W_]*$", re.IGNORECASE)
_THINK_OPEN = "<think>"

LATEST_CHARS = 3000
FIRST_CHARS = 1200


def parse_verdict(reply: str) -> str | None:
    """The verdict in a classifier reply, or None.

    The prompt asks for the bare word on the last line, so a last line that is just the word
    (any case, markdown and punctuation aside) decides.  Otherwise the last upper-case SIMPLE or
    COMPLEX wins, so a reasoning model's conclusion beats its musing, and a trailing aside such as
    "(the edit itself is simple)" does not overturn a shouted COMPLEX.  Lower-case words count last.
    """
    bare = _BARE_LINE_RE.match(last_line(reply))
    if bare:
        return bare.group(1).upper()
    matches = _VERDICT_UPPER_RE.findall(reply)
    if matches:
        return str(matches[-1])
    loose = _VERDICT_ANY_RE.findall(reply)
    if loose:
        return str(loose[-1]).upper()
    return None


def last_line(reply: str) -> str:
    for line in reversed(reply.strip().splitlines()):
        if line.strip():
            return line.strip()[:200]
    return ""


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return f"{text[:head]}\n[... {len(text) - limit} characters omitted ...]\n{text[-(limit - head):]}"


def compact_view(facts: RequestFacts) -> str:
    parts = ["Latest user request:", _clip(facts.latest_user_text or "(no text: tool results only)", LATEST_CHARS)]
    if facts.first_user_text and facts.first_user_text != facts.latest_user_text:
        parts += ["", "The session began with:", _clip(facts.first_user_text, FIRST_CHARS)]
    parts += [
        "",
        f"Session so far: {facts.turns} user turn(s), {facts.tool_calls} tool call(s); "
        f"context about {facts.estimated_tokens} tokens.",
    ]
    return "\n".join(parts)


def view_for_prompt(text: str) -> str:
    """The view the classifier sees for a bare prompt (the `switchyard classify` harness)."""
    tokens = max(1, len(text) // 4)
    return "\n".join(
        [
            "Latest user request:",
            _clip(text, LATEST_CHARS),
            "",
            f"Session so far: 1 user turn(s), 0 tool call(s); context about {tokens} tokens.",
        ]
    )


def _reply_text(data: Any) -> str:
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return ""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # some servers answer with content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _strip_unclosed_think(reply: str) -> str:
    """A reply cut off inside <think> has no conclusion: its musing must not count as a verdict."""
    start = reply.rfind(_THINK_OPEN)
    if start >= 0 and "</think>" not in reply[start:]:
        return reply[:start]
    return reply


async def classify(
    session: aiohttp.ClientSession,
    local: LocalConfig,
    routing: RoutingConfig,
    prompt: str,
    view: str,
    api_key: str,
) -> Classification:
    body = {
        "model": local.model,
        "messages": [{"role": "system", "content": prompt}, {"role": "user", "content": view}],
        "max_tokens": routing.classify_max_tokens,
        "temperature": 0,
        "stream": False,
    }
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    started = time.monotonic()

    def elapsed() -> float:
        return (time.monotonic() - started) * 1000

    try:
        async with asyncio.timeout(routing.classify_timeout_s):
            async with session.post(f"{local.base_url.rstrip('/')}/chat/completions", json=body, headers=headers) as r:
                if r.status >= 400:
                    return Classification(None, "error", f"HTTP {r.status} from the local server", elapsed())
                data = await r.json(content_type=None)
    except TimeoutError:
        return Classification(None, "timeout", f"no answer within {routing.classify_timeout_s:g} s", elapsed())
    except aiohttp.ClientError as exc:
        return Classification(None, "error", f"{type(exc).__name__}: {exc}"[:200], elapsed())
    except ValueError:
        return Classification(None, "error", "the local server's answer is not JSON", elapsed())
    reply = _reply_text(data)
    verdict = parse_verdict(_strip_unclosed_think(reply))
    if verdict is None:
        return Classification(None, "empty", f"reply of {len(reply)} characters", elapsed(), last_line(reply))
    assert verdict in (SIMPLE, COMPLEX)
    return Classification(verdict, "ok", None, elapsed(), last_line(reply))
