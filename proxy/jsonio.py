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
JSONEncodeError = orjson.JSONEncodeError  # a subclass of TypeError

# orjson parses at most this many levels of nesting (deeper: JSONDecodeError, "depth limit exceeded")
# and writes at most MAX_ENCODE_DEPTH levels (deeper: JSONEncodeError, "Recursion limit reached").  A body
# between the two parses, but cannot be re-encoded by orjson: callers that re-encode must say so.
MAX_DEPTH = 1024
MAX_ENCODE_DEPTH = 254


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return orjson.dumps(obj)
