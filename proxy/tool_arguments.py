"""Tool-call arguments as a model writes them → a JSON object, with the narrow repair both the
tool-call path and the text-tool-call recogniser use: code fences and trailing commas, nothing more."""

from __future__ import annotations

import json
import re
from typing import Any

_TRAILING_COMMA_RE = re.compile(r",(\s*[}\]])")
_FENCE_RE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def strip_trailing_commas(text: str) -> str:
    """Remove commas directly before } or ], outside of JSON strings."""
    out: list[str] = []
    in_str = False
    esc = False
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif c == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j >= n or text[j] not in "}]":
                out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def parse_tool_arguments(raw: str) -> dict[str, Any]:
    """Arguments text → JSON object, with a light repair.  Raises ``ValueError`` if not an object.

    Empty or whitespace-only arguments mean a call without parameters: ``{}``.
    """
    text = raw.strip()
    if not text:
        return {}
    try:
        value = _loads(text)
    except ValueError:
        fenced = _FENCE_RE.match(text)
        if fenced:
            text = fenced.group(1).strip()
        text = strip_trailing_commas(text)
        if not text:
            return {}
        value = _loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"arguments are a JSON {type(value).__name__}, not an object")
    if nesting_depth(value) > MAX_ARGUMENT_DEPTH:
        raise ValueError(f"arguments are nested more than {MAX_ARGUMENT_DEPTH} levels deep")
    return value


# Deeper tool arguments than this are refused: no real tool takes them, and the answer must still be
# written as JSON afterwards (orjson writes 254 levels, json.dumps raises RecursionError near 1,000).
MAX_ARGUMENT_DEPTH = 128


def nesting_depth(value: Any) -> int:
    """How many containers deep ``value`` goes (a scalar: 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            items: Any = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((item, depth + 1) for item in items)
    return deepest


def _loads(text: str) -> Any:
    """json.loads, with nesting too deep for it reported as the ValueError a bad argument text is."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("arguments are nested too deeply") from None


def strict_object(raw: str) -> bool:
    """True when ``raw`` already is a complete JSON object (no repair): safe to emit early."""
    try:
        return isinstance(_loads(raw), dict)
    except ValueError:
        return False
