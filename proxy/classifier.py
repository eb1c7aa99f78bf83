"""The difficulty classifier: ask the local model whether a request is SIMPLE or COMPLEX.

The local model is shown a compact view of the request (the latest genuine user text, the session's
first request, how far the session has gone, its size), never the whole 78 KB context: that keeps
the call fast and stops the classifier from *answering* the request instead of judging it.  The prompt
leans toward SIMPLE on purpose: the local model is capable, and every wrong COMPLEX costs money while
a wrong SIMPLE costs at most a retry.

The reply is streamed and the call hangs up as soon as the verdict is settled (a bare verdict line
after any reasoning block): measured with SmolLM2 on llama-server, a model left to finish rambled on
toward the 8,192-token budget and every turn waited the whole 15 s timeout.  The budget follows what
the probe knows: room to think for a reasoning model, a brief reply for one that does not think.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp

from proxy import jsonio
from proxy.capabilities import LocalCapabilities, server_root
from proxy.config import LocalConfig, RoutingConfig, local_dialect
from proxy.conversation import RequestFacts
from proxy.routing import COMPLEX, SIMPLE, Classification
from proxy.sse import SSEDecodeError, SSEDecoder

ClassifyResult = Classification


_VERDICT_UPPER_RE = re.compile(r"\b(SIMPLE|COMPLEX)\b")
_VERDICT_ANY_RE = re.compile(r"\b(simple|complex)\b", re.IGNORECASE)
_BARE_LINE_RE = re.compile(r"^[\W_]*(?:verdict\s*[:=-]\s*)?[\W_]*(simple|complex)[\W_]*$", re.IGNORECASE)
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"

OPENAI = "openai"
ANTHROPIC = "anthropic"
DIALECTS = (OPENAI, ANTHROPIC)
# Tokens for a model that does not think first: the prompt's brief reasoning and the verdict line
# fit easily; a model still talking after that is rambling, not judging.
BRIEF_BUDGET = 256

_LINE_HEAD = 400
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


class VerdictReader:
    """Reads a classifier reply as it streams and says when its verdict is settled.

    Fed the reply's text pieces (a reasoning model's separate thinking is never fed: it is not the
    answer).  A ``<think>`` block inside the text is dropped as it arrives.  The verdict is settled
    by the first complete bare verdict line outside any reasoning block, the line the prompt asks
    for; the caller may then hang up.  Without such a line, :meth:`verdict` judges the whole reply
    with :func:`parse_verdict`, as the classifier always did.
    """

    def __init__(self) -> None:
        self._visible: list[str] = []
        self._line = ""  # the visible text since the last newline
        self._pending = ""  # a tail that may be the start of a think tag
        self._in_think = False
        self.settled: str | None = None

    def feed(self, piece: str) -> str | None:
        """Take one text piece; return the verdict once it is settled (None until then)."""
        buf = self._pending + piece
        self._pending = ""
        while buf:
            tag = _THINK_CLOSE if self._in_think else _THINK_OPEN
            at = buf.find(tag)
            if at >= 0:
                if not self._in_think:
                    self._show(buf[:at])
                self._in_think = not self._in_think
                buf = buf[at + len(tag) :]
                continue
            keep = _partial_tag(buf, tag)
            if not self._in_think:
                self._show(buf[: len(buf) - keep])
            self._pending = buf[len(buf) - keep :]
            break
        return self.settled

    def _show(self, text: str) -> None:
        self._visible.append(text)
        *done, line = (self._line + text).split("\n")
        # A line this long is no bare verdict line: keep only its head, not the whole of a long reply.
        self._line = line[:_LINE_HEAD]
        for line in done:
            bare = _BARE_LINE_RE.match(line.strip()[:200]) if self.settled is None else None
            if bare:
                self.settled = bare.group(1).upper()

    @property
    def reply(self) -> str:
        """The visible reply so far (reasoning blocks left out)."""
        text = "".join(self._visible) + ("" if self._in_think else self._pending)
        # A template that opens the think block itself leaves only its closing tag in the text.
        close = text.rfind(_THINK_CLOSE)
        return text[close + len(_THINK_CLOSE) :] if close >= 0 else text

    def verdict(self, early: bool = True) -> str | None:
        """The settled verdict (with ``early``), else the whole reply's (a reply cut inside <think> has none)."""
        return (self.settled if early else None) or parse_verdict(self.reply)


def _partial_tag(buf: str, tag: str) -> int:
    """How many characters at the end of ``buf`` could begin ``tag`` (held back until the next piece)."""
    for n in range(min(len(tag) - 1, len(buf)), 0, -1):
        if tag.startswith(buf[-n:]):
            return n
    return 0


def classify_budget(routing: RoutingConfig, caps: LocalCapabilities | None) -> int:
    """The classifier's token budget: room to think for a reasoning model (the configured figure), a
    brief reply for a model the probe knows does not think first (a rambling small model is then
    cut after BRIEF_BUDGET tokens instead of running on to the timeout)."""
    cap = routing.classify_max_tokens
    if caps is not None and caps.reasoning is False:
        return min(cap, BRIEF_BUDGET)
    return cap


def classify_dialect(local: LocalConfig, caps: LocalCapabilities | None) -> str:
    """The API the classifier speaks to the local server: the one the local answers use."""
    return local_dialect(local, caps.anthropic if caps is not None else None)


def _request(
    local: LocalConfig, prompt: str, view: str, max_tokens: int, api_key: str, dialect: str, stream: bool
) -> tuple[str, dict[str, Any], dict[str, str]]:
    # A connection of its own, never pooled: an early stop hangs up mid-stream anyway, and a
    # streamed connection llama-server closes after the reply must not be handed to the proxy's
    # next local request (measured: "Can not write request body" on the request after).
    headers = {"Connection": "close"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if dialect == ANTHROPIC:
        url = server_root(local.base_url) + "/v1/messages"
        headers = {**headers, "anthropic-version": "2023-06-01"}
        if api_key:
            headers["x-api-key"] = api_key
        body: dict[str, Any] = {
            "model": local.model,
            "system": prompt,
            "messages": [{"role": "user", "content": view}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": stream,
        }
        return url, body, headers
    body = {
        "model": local.model,
        "messages": [{"role": "system", "content": prompt}, {"role": "user", "content": view}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    }
    return f"{local.base_url.rstrip('/')}/chat/completions", body, headers


class _ServerError(Exception):
    pass


def _pieces(event: Any, dialect: str) -> tuple[str, bool]:
    """(text, finished) from one stream event's data; raises _ServerError for an error event."""
    if not isinstance(event, dict):
        return "", False
    if event.get("error") and event.get("type", "error") == "error":
        err = event["error"]
        message = err.get("message") if isinstance(err, dict) else err
        raise _ServerError(f"the local server reported an error: {str(message)[:160]}")
    if dialect == ANTHROPIC:
        kind = event.get("type")
        delta = event.get("delta")
        if kind == "content_block_delta" and isinstance(delta, dict) and delta.get("type") == "text_delta":
            text = delta.get("text")
            return (text if isinstance(text, str) else ""), False
        return "", kind == "message_stop"
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", False
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    if isinstance(content, list):  # some servers stream content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return (content if isinstance(content, str) else ""), False


async def classify(
    session: aiohttp.ClientSession,
    local: LocalConfig,
    routing: RoutingConfig,
    prompt: str,
    view: str,
    api_key: str,
    *,
    dialect: str = OPENAI,
    max_tokens: int | None = None,
    early_stop: bool = True,
) -> Classification:
    """Ask the local model for a verdict on ``view``.

    The reply is streamed; with ``early_stop`` the connection is closed as soon as the verdict is
    settled (:class:`VerdictReader`), which also frees the server's slot, else the whole reply is
    read and judged.  ``max_tokens``: the budget (default: ``routing.classify_max_tokens``; the
    proxy passes :func:`classify_budget`).  ``dialect``: ``openai`` (``/chat/completions``) or
    ``anthropic`` (the server's own ``/v1/messages``).
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown classifier dialect {dialect!r}: use one of {', '.join(DIALECTS)}")
    budget = max_tokens if max_tokens is not None else routing.classify_max_tokens
    url, body, headers = _request(local, prompt, view, budget, api_key, dialect, stream=True)
    reader = VerdictReader()
    started = time.monotonic()

    def elapsed() -> float:
        return (time.monotonic() - started) * 1000

    try:
        async with asyncio.timeout(routing.classify_timeout_s):
            async with session.post(url, json=body, headers=headers) as r:
                if r.status >= 400:
                    return Classification(None, "error", f"HTTP {r.status} from the local server", elapsed())
                try:
                    await _read_reply(r, reader, dialect, early_stop)
                finally:
                    r.close()  # hang up: on an early stop the server stops generating for this request
    except TimeoutError:
        detail = f"no answer within {routing.classify_timeout_s:g} s"
        return Classification(None, "timeout", detail, elapsed(), last_line(reader.reply))
    except _ServerError as exc:
        return Classification(None, "error", str(exc), elapsed(), last_line(reader.reply))
    except aiohttp.ClientError as exc:
        return Classification(None, "error", f"{type(exc).__name__}: {exc}"[:200], elapsed())
    except (SSEDecodeError, ValueError):
        return Classification(None, "error", "the local server's answer is not a readable stream", elapsed())
    verdict = reader.verdict(early_stop)
    reply = reader.reply
    if verdict is None:
        return Classification(None, "empty", f"reply of {len(reply)} characters", elapsed(), last_line(reply))
    assert verdict in (SIMPLE, COMPLEX)
    return Classification(verdict, "ok", None, elapsed(), last_line(reply))


def _whole_reply_text(data: Any) -> str:
    """The answer text of a non-streamed reply (a server that ignored ``stream: true``), either dialect."""
    if not isinstance(data, dict):
        return ""
    content: Any = data.get("content")  # Anthropic: a list of blocks
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type", "text") == "text")
    return content if isinstance(content, str) else ""


async def _read_reply(r: aiohttp.ClientResponse, reader: VerdictReader, dialect: str, early_stop: bool) -> bool:
    """Feed the stream to ``reader``; True when it stopped early on a settled verdict."""
    if r.content_type == "application/json":
        reader.feed(_whole_reply_text(await r.json(content_type=None)))
        return False
    decoder = SSEDecoder()
    async for chunk in r.content.iter_any():
        for event in decoder.feed(chunk):
            if event.data.strip() == "[DONE]":
                return False
            try:
                data = jsonio.loads(event.data)
            except ValueError:
                continue  # a keep-alive or comment-like line: not part of the answer
            text, finished = _pieces(data, dialect)
            if text and reader.feed(text) is not None and early_stop:
                return True
            if finished:
                return False
    for event in decoder.flush():
        if event.data.strip() and event.data.strip() != "[DONE]":
            try:
                text, _ = _pieces(jsonio.loads(event.data), dialect)
            except ValueError:
                continue
            reader.feed(text)
    return False
