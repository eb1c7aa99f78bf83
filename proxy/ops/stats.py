"""``switchyard stats``: aggregate the decision log (and its rotated files) quickly.

Speed: a million lines is ~340 MB of JSON and ``json.loads`` on every line costs seconds.  The proxy
writes each record as a flat object in one fixed key order with ``,`` and ``:`` separators, and in
JSON text the two bytes ``,"`` can only start a key (a quote inside a string is always escaped).  So
one ``bytes.split(b',"')`` over a chunk of lines (in C) lays the chunk out as one segment per field of each line,
and every field becomes a column by slicing (``segs[3::N]`` is every line's ``route":...``), with
Python work only for the number conversions.  Correctness does not depend on that layout: each
column's key is verified, and a chunk that does not fit is re-read line by line (a regular
expression, then ``json.loads`` for lines in another spelling); lines that are not JSON records are
counted as unreadable.  Values stay in their JSON spelling (strings keep their quotes) until the
end, so every path produces identical columns.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import compress
from operator import and_, is_not, not_
from pathlib import Path
from typing import Any

from proxy import jsonio
from proxy.decision_log import FIELDS
from proxy.ops.chart import bar_chart

# Requests refused before routing: counted, but kept out of shares and latencies.
REJECTED_REASONS = frozenset({"bad-request", "unauthorized"})
CLASSIFY_FAILURE_PREFIX = "classify-"

# JSON strings as an "unrolled loop" (no alternation per character: several times faster).
_S = rb'("[^"\\\n]*(?:\\.[^"\\\n]*)*"|null)'
_SX = rb'(?:"[^"\\\n]*(?:\\.[^"\\\n]*)*"|null)'
_N = rb"(-?[0-9][0-9.eE+-]*|null)"
_B = rb"(?:true|false|null)"
_NX = rb"(?:-?[0-9][0-9.eE+-]*|null)"
# One line as DecisionRecord.to_json writes it.  Captures the aggregated fields, in _FIELDS order.
_LINE_RE = re.compile(
    rb'^\{"ts":' + _S + rb',"id":' + _SX + rb',"session":' + _SX + rb',"route":' + _S
    + rb',"model":' + _SX + rb',"reason":' + _S + rb',"verdict":' + _SX + rb',"local_up":' + _B
    + rb',"classify_ms":' + _N + rb',"status":' + _N + rb',"ttft_ms":' + _N + rb',"total_ms":' + _N
    + rb',"fallback":' + _S + rb',"input_tokens":' + _N + rb',"output_tokens":' + _N
    + rb',"detail":' + _SX + rb',"stream":' + _B + rb',"cached_tokens":' + _NX + rb',"prefill_ms":' + _NX
    + rb',"repaired":' + _S + rb"\}\r?$"
)  # fmt: skip
_FIELDS = (
    "ts", "route", "reason", "classify_ms", "status", "ttft_ms", "total_ms", "fallback",
    "input_tokens", "output_tokens", "repaired",
)  # fmt: skip
# Position of each aggregated field among the ``,"``-separated segments of a line (ts is the 0th).
_LAYOUT = {name: i for i, name in enumerate(FIELDS)}
_PER_LINE = len(FIELDS) - 1
_TS_RE = re.compile(rb'\{"ts":("[^"\\\n]*")')
# The last field of a line runs into the next line's segment: it is read with one findall instead,
# key kept in front like every other column.
_LAST_FIELD = FIELDS[-1]
_LAST_RE = re.compile(rb',"(' + FIELDS[-1].encode() + rb'":' + _SX + rb")\}\r?(?:\n|$)")
Row = tuple[bytes, ...]
Columns = list[list[bytes]]
NULL = b"null"
_not_none = partial(is_not, None)
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float | None
    p95: float | None


@dataclass
class Stats:
    requests: int = 0
    rejected: int = 0
    unreadable_lines: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    by_route: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    fallbacks: dict[str, int] = field(default_factory=dict)
    # Tool calls the local model wrote as text, sent as tool_use blocks: by shape.
    repaired: dict[str, int] = field(default_factory=dict)
    classifier_failures: dict[str, int] = field(default_factory=dict)
    classify_ms: Summary = Summary(0, None, None)
    ttft_ms: dict[str, Summary] = field(default_factory=dict)
    total_ms: dict[str, Summary] = field(default_factory=dict)
    local_input_tokens: int = 0
    local_output_tokens: int = 0
    # (bucket start "YYYY-MM-DDTHH:MM", local, routed total) in time order, empty buckets included.
    share_series: list[tuple[str, int, int]] = field(default_factory=list)
    bucket_minutes: int = 0

    @property
    def routed(self) -> int:
        return sum(self.by_route.values())

    @property
    def local_share(self) -> float | None:
        return self.by_route.get("local", 0) / self.routed if self.routed else None

    def to_dict(self) -> dict[str, Any]:
        def summ(s: Summary) -> dict[str, Any]:
            return {"n": s.n, "p50": s.p50, "p95": s.p95}

        return {
            "requests": self.requests,
            "rejected": self.rejected,
            "unreadable_lines": self.unreadable_lines,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "local_share": self.local_share,
            "by_route": self.by_route,
            "by_reason": self.by_reason,
            "by_status": self.by_status,
            "fallbacks": self.fallbacks,
            "repaired": self.repaired,
            "classifier_failures": self.classifier_failures,
            "classify_ms": summ(self.classify_ms),
            "ttft_ms": {k: summ(v) for k, v in self.ttft_ms.items()},
            "total_ms": {k: summ(v) for k, v in self.total_ms.items()},
            "cloud_tokens_avoided": {"input": self.local_input_tokens, "output": self.local_output_tokens},
            "share_series": [{"start": s, "local": loc, "total": tot} for s, loc, tot in self.share_series],
            "bucket_minutes": self.bucket_minutes,
        }


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least p % of values at or below it)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def summarize(values: Iterable[float]) -> Summary:
    ordered = sorted(values)
    return Summary(len(ordered), percentile(ordered, 50), percentile(ordered, 95))


def _json_spelling(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _prefix(name: str) -> bytes:
    return name.encode() + b'":'


_PREFIXES = [_prefix(name) for name in _FIELDS]


def _fast_columns(chunk: bytes, lines: int) -> Columns | None:
    """The chunk's columns via the fixed layout, or None when the chunk does not fit it.

    Values keep their key in front (``route":"local"``): stripping a million of them one by one
    would cost more than everything else.  ``_Acc`` strips them in bulk.
    """
    # A raw NUL never occurs in JSON text; we rely on that for the key check below.
    if not chunk.startswith(b'{"ts":"') or b"\0" in chunk:
        return None
    segs = chunk.split(b',"')
    if len(segs) != _PER_LINE * lines + 1:
        return None
    ts = _TS_RE.findall(chunk)
    if len(ts) != lines:
        return None
    cols: Columns = [ts]
    for name, prefix in zip(_FIELDS[1:], _PREFIXES[1:], strict=True):
        col = _LAST_RE.findall(chunk) if name == _LAST_FIELD else segs[_LAYOUT[name] :: _PER_LINE]
        # Every value must sit under its own key (catches any line with other keys or order):
        # in C, by counting NUL+key in the column joined with NULs.
        if len(col) != lines or (b"\0" + b"\0".join(col)).count(b"\0" + prefix) != lines:
            return None
        cols.append(col)
    return cols


def _row_from_json(line: bytes) -> Row | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("ts"), str):
        return None
    return tuple(_json_spelling(rec.get(name)) for name in _FIELDS)


def parse_chunk(chunk: bytes) -> tuple[Columns, int]:
    """Columns (one list per field of _FIELDS) of a chunk of whole lines, and the unreadable line count.

    ``ts`` values are JSON strings (quotes kept); every other value has its key in front, as the
    fast path leaves it: ``status":200``.
    """
    lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") or not chunk else 1)
    cols = _fast_columns(chunk, lines) if lines else None
    if cols is not None:
        return cols, 0
    rows: list[Row] = []
    bad = 0
    for line in chunk.split(b"\n"):
        if not line.strip():
            continue
        m = _LINE_RE.match(line)
        row = m.groups() if m else _row_from_json(line)
        if row is None:
            bad += 1
        else:
            rows.append((row[0], *(p + v for p, v in zip(_PREFIXES[1:], row[1:], strict=True))))
    if not rows:
        return [[] for _ in _FIELDS], bad
    return [list(col) for col in zip(*rows, strict=True)], bad


def _numbers(col: list[bytes], name: str) -> list[Any]:
    """A column of JSON numbers (or null) as Python values, parsed in one C call."""
    if not col:
        return []
    body = b",".join(col).replace(_prefix(name), b"")
    values = jsonio.loads(b"[" + body + b"]")  # one C call for the whole column
    if len(values) != len(col):  # pragma: no cover - a value holding a comma; the key check prevents it
        raise ValueError(f"column {name} did not parse")
    return list(values)


def iter_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file in chunks of whole lines."""
    with path.open("rb") as fh:
        rest = b""
        while True:
            block = fh.read(chunk_bytes)
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block
                continue
            rest = block[cut + 1 :]
            yield block[: cut + 1]
        if rest.strip():
            yield rest


def log_files(path: Path) -> list[Path]:
    """The log and its rotated files, oldest first (``.N`` … ``.1``, then the live file)."""
    rotated: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        for p in path.parent.glob(path.name + ".*"):
            suffix = p.name[len(path.name) + 1 :]
            if suffix.isdigit():
                rotated.append((int(suffix), p))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if path.exists():
        files.append(path)
    return files


def _value(raw: bytes) -> bytes:
    """The JSON value of a ``key":value`` segment (a bare value is returned as is)."""
    return raw if raw.startswith(b'"') else raw[raw.find(b'":') + 2 :]


def _unquote(raw: bytes) -> str:
    raw = _value(raw)
    if raw == NULL:
        return ""
    if b"\\" in raw:
        return str(json.loads(raw))
    return raw[1:-1].decode("utf-8", "replace")


class _Acc:
    """Per-chunk aggregation into counters and compact float arrays."""

    def __init__(self, since: str | None) -> None:
        self.since = b'"' + since.encode() if since else None
        self.requests = 0
        self.unreadable = 0
        self.first: bytes | None = None
        self.last: bytes | None = None
        self.route: Counter[bytes] = Counter()
        self.reason: Counter[bytes] = Counter()
        self.status: Counter[bytes] = Counter()
        self.fallback: Counter[bytes] = Counter()
        self.repaired: Counter[bytes] = Counter()
        self.classify = array("d")
        self.ttft: dict[bytes, array[float]] = {}
        self.total: dict[bytes, array[float]] = {}
        self.tok_in = 0
        self.tok_out = 0
        self.minutes: Counter[tuple[bytes, bytes]] = Counter()
        self._rejected = frozenset(_prefix("reason") + _json_spelling(r) for r in REJECTED_REASONS)
        self._local = _prefix("route") + b'"local"'
        self._ok_status = frozenset(_prefix("status") + str(code).encode() for code in range(200, 300))

    def add(self, cols: Columns) -> None:
        # Every per-row step is a map()/compress()/Counter over a whole column, so the loops run in C.
        if not cols[0]:
            return
        if self.since is not None and min(cols[0]) < self.since:
            keep = list(map(self.since.__le__, cols[0]))
            cols = [list(compress(c, keep)) for c in cols]
        ts, route, reason, cms, status, ttft, total, fb, itok, otok, repaired = cols
        if not ts:
            return
        self.requests += len(ts)
        lo, hi = min(ts), max(ts)
        self.first = lo if self.first is None else min(self.first, lo)
        self.last = hi if self.last is None else max(self.last, hi)
        self.reason.update(reason)
        self.status.update(status)
        self.fallback.update(fb)
        self.repaired.update(repaired)
        self.classify.extend(filter(_not_none, _numbers(cms, "classify_ms")))
        rejected = list(map(self._rejected.__contains__, reason))
        if any(rejected):
            keep = list(map(not_, rejected))
            ts, route, status, ttft, total, itok, otok = (
                list(compress(c, keep)) for c in (ts, route, status, ttft, total, itok, otok)
            )
        self.route.update(route)
        ttft_v = _numbers(ttft, "ttft_ms")
        total_v = _numbers(total, "total_ms")
        for r in set(route):
            mask = list(map(r.__eq__, route))
            self.ttft.setdefault(r, array("d")).extend(filter(_not_none, compress(ttft_v, mask)))
            self.total.setdefault(r, array("d")).extend(filter(_not_none, compress(total_v, mask)))
        # Tokens the cloud did not have to process: answered locally with a 2xx.
        answered = list(map(and_, map(self._local.__eq__, route), map(self._ok_status.__contains__, status)))
        if any(answered):
            self.tok_in += sum(filter(_not_none, compress(_numbers(itok, "input_tokens"), answered)))
            self.tok_out += sum(filter(_not_none, compress(_numbers(otok, "output_tokens"), answered)))
        # Minute buckets ("YYYY-MM-DDTHH:MM"): re-bucketed for the chart once the span is known.
        self.minutes.update(zip([t[1:17] for t in ts], route, strict=True))


def _bucket_size(span_minutes: int, width: int) -> int:
    for size in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 43200):
        if span_minutes // size + 1 <= width:
            return size
    return 43200 * (span_minutes // (43200 * width) + 1)


def _parse_minute(key: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(key, "%Y-%m-%dT%H:%M")
    except ValueError:
        return None


def share_series(minutes: Counter[tuple[str, str]], width: int) -> tuple[list[tuple[str, int, int]], int]:
    """Bucket per-minute (local, total) counts into at most ``width`` equal time buckets."""
    parsed: dict[str, dt.datetime] = {}
    for key, _route in minutes:
        if key not in parsed:
            when = _parse_minute(key)
            if when is not None:
                parsed[key] = when
    if not parsed:
        return [], 0
    start, end = min(parsed.values()), max(parsed.values())
    size = _bucket_size(int((end - start).total_seconds() // 60), max(1, width))
    count = int((end - start).total_seconds() // 60) // size + 1
    local = [0] * count
    total = [0] * count
    for (key, route), n in minutes.items():
        when = parsed.get(key)
        if when is None:
            continue
        idx = int((when - start).total_seconds() // 60) // size
        total[idx] += n
        if route == "local":
            local[idx] += n
    labels = [(start + dt.timedelta(minutes=i * size)).strftime("%Y-%m-%dT%H:%M") for i in range(count)]
    return list(zip(labels, local, total, strict=True)), size


def compute_stats(
    path: Path,
    since: str | None = None,
    width: int = 60,
    chunk_bytes: int = CHUNK_BYTES,
) -> Stats:
    """Aggregate the log at ``path`` and its rotated files.

    ``since``: an ISO UTC time in the ``ts`` field's spelling (see ``parse_since``).
    """
    since_epoch = _iso_to_epoch(since) if since else None
    acc = _Acc(since)
    # One process on purpose: on 2 cores, worker processes reading byte ranges gained only ~12 % on
    # a million lines, not worth a process pool (and its fork/spawn hazards) in a command-line tool.
    for file in log_files(path):
        # Lines are written when a request ends, so nothing in a file last written before --since counts.
        if since_epoch is not None and file.stat().st_mtime < since_epoch:
            continue
        for chunk in iter_chunks(file, chunk_bytes):
            cols, bad = parse_chunk(chunk)
            acc.unreadable += bad
            acc.add(cols)
    return _finish(acc, width)


def _iso_to_epoch(iso: str) -> float | None:
    try:
        when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _finish(acc: _Acc, width: int) -> Stats:
    st = Stats(requests=acc.requests, unreadable_lines=acc.unreadable)
    st.first_ts = _unquote(acc.first) if acc.first else None
    st.last_ts = _unquote(acc.last) if acc.last else None
    by_route: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    for reason, n in acc.reason.items():
        name = _unquote(reason) or "(none)"
        by_reason[name] += n
        if name in REJECTED_REASONS:
            st.rejected += n
    for route, n in acc.route.items():
        by_route[_unquote(route) or "(none)"] += n
    st.by_route = dict(by_route.most_common())
    st.by_reason = dict(by_reason.most_common())
    statuses: Counter[str] = Counter()
    for k, v in acc.status.items():
        statuses[_value(k).decode("utf-8", "replace")] += v
    st.by_status = dict(sorted(statuses.items()))
    st.fallbacks = {_unquote(k): v for k, v in acc.fallback.most_common() if _value(k) != NULL}
    st.repaired = {_unquote(k): v for k, v in acc.repaired.most_common() if _value(k) != NULL}
    st.classifier_failures = {
        k[len(CLASSIFY_FAILURE_PREFIX) :]: v for k, v in st.by_reason.items() if k.startswith(CLASSIFY_FAILURE_PREFIX)
    }
    st.classify_ms = summarize(acc.classify)
    st.ttft_ms = {_unquote(k): summarize(v) for k, v in sorted(acc.ttft.items())}
    st.total_ms = {_unquote(k): summarize(v) for k, v in sorted(acc.total.items())}
    st.local_input_tokens = acc.tok_in
    st.local_output_tokens = acc.tok_out
    minutes: Counter[tuple[str, str]] = Counter()
    for (minute, route), n in acc.minutes.items():
        minutes[(minute.decode("ascii", "replace"), _unquote(route))] += n
    st.share_series, st.bucket_minutes = share_series(minutes, width)
    return st


# ---------------------------------------------------------------- --since parsing

_REL_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: dt.datetime | None = None) -> str:
    """``--since``: a duration back from now (``90m``, ``24h``, ``7d``) or an ISO date/time (UTC if no zone).

    Returns the bound in the ``ts`` field's own spelling so records compare as strings.
    """
    now = now or dt.datetime.now(dt.UTC)
    value = text.strip()
    m = _REL_RE.match(value)
    if m:
        when = now - dt.timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])
    else:
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"cannot read --since {text!r}: give a duration like 30m, 24h, 7d "
                "or a date/time like 2026-11-23 or 2026-11-23T08:00"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---------------------------------------------------------------- rendering


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _counts(items: dict[str, int], whole: int | None = None) -> str:
    if not items:
        return "none"
    parts = []
    for name, n in items.items():
        parts.append(f"{name} {n:,}" + (f" ({_pct(n, whole)})" if whole else ""))
    return ", ".join(parts)


def render_text(st: Stats, chart: bool = True, ascii_only: bool = False, since: str | None = None) -> list[str]:
    if st.requests == 0:
        return ["no requests in the decision log" + (f" since {since}" if since else "")]
    lines = [
        f"requests            {st.requests:,}   ({st.first_ts} .. {st.last_ts})",
    ]
    if st.rejected:
        lines.append(f"  rejected          {st.rejected:,} (bad request or unauthorized; not counted below)")
    if st.unreadable_lines:
        lines.append(f"  unreadable lines  {st.unreadable_lines:,}")
    local = st.by_route.get("local", 0)
    lines.append(f"local share         {_pct(local, st.routed)}   ({_counts(st.by_route)})")
    lines.append(f"by reason           {_counts(st.by_reason, st.requests)}")
    lines.append(
        f"fallbacks           {sum(st.fallbacks.values()):,}"
        + (f"   ({_counts(st.fallbacks)})" if st.fallbacks else "")
    )
    lines.append(
        f"repaired tool calls {sum(st.repaired.values()):,}"
        + (f"   ({_counts(st.repaired)})" if st.repaired else "")
    )
    lines.append(
        f"classifier failures {sum(st.classifier_failures.values()):,}"
        + (f"   ({_counts(st.classifier_failures)})" if st.classifier_failures else "")
    )
    c = st.classify_ms
    lines.append(f"classify latency    p50 {_ms(c.p50)}   p95 {_ms(c.p95)}   (n={c.n:,})")
    for title, table in (("time to first token", st.ttft_ms), ("total latency      ", st.total_ms)):
        for route, s in table.items():
            lines.append(f"{title} {route:<6} p50 {_ms(s.p50)}   p95 {_ms(s.p95)}   (n={s.n:,})")
    lines.append(
        f"cloud tokens avoided {st.local_input_tokens:,} input + {st.local_output_tokens:,} output (answered locally)"
    )
    if chart and st.share_series:
        shares = [loc / tot if tot else None for _, loc, tot in st.share_series]
        lines.append("")
        lines.append(f"local share over time ({_bucket_label(st.bucket_minutes)} per column, UTC)")
        lines.extend(
            bar_chart(
                shares,
                height=6,
                left_label=st.share_series[0][0].replace("T", " "),
                right_label=st.share_series[-1][0].replace("T", " "),
                ascii_only=ascii_only,
            )
        )
    return lines


def _bucket_label(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"
