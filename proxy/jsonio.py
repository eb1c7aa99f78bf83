"""JSON on the hot path, through orjson.

Parsing a 78 KB Claude Code body and serialising the translated request are the largest costs
Switchyard adds to a request; orjson does both several times faster than the standard library
(0.2 ms instead of 0.5 ms to parse, 0.03 ms instead of 0.4 ms to serialise, measured on the captured
body).  Semantics differ only at the edges: NaN/Infinity literals and integers beyond 64 bits are
rejected, which for an API request is the right answer anyway.
"""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError  # a subclass of ValueError


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return orjson.dumps(obj)
