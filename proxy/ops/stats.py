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
from operator import and_, is_not, itemgetter, methodcaller, ne, not_, or_
from pathlib import Path
from typing import Any

from proxy import jsonio
from proxy.decision_detail import BROKEN_DETAIL
from proxy.decision_log import FIELDS
from proxy.ops.chart import bar_chart
from proxy.ops.misses import Flags, MissFigures, MissTracker

# Requests refused before routing: counted, but kept out of shares and latencies.
REJECTED_REASONS = frozenset({"bad-request", "unauthorized"})
CLASSIFY_FAILURE_PREFIX = "classify-"

# A JSON scalar, strings as an "unrolled loop" (no alternation per character: several times faster).
_V = rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"|-?[0-9][0-9.eE+-]*|true|false|null'
_FIELDS = (
    "ts", "route", "reason", "classify_ms", "status", "ttft_ms", "total_ms", "fallback",
    "input_tokens", "output_tokens", "session", "detail", "prompt_hash", "turn", "project", "project_name",
    "model", "repaired",
)  # fmt: skip
# Logs written before a field was added hold a prefix of FIELDS (fields are only ever appended):
# every prefix from this one on is read by the fast path, missing fields read as null.
_OLDEST = FIELDS.index("prefill_ms") + 1


def _line_re() -> re.Pattern[bytes]:
    """One line as DecisionRecord.to_json writes it (any version from _OLDEST fields on), capturing
    the aggregated fields in _FIELDS order (a field an older line lacks captures None)."""

    def one(name: str) -> bytes:
        value = (b"(?P<%s>" % name.encode()) + _V + b")" if name in _FIELDS else b"(?:" + _V + b")"
        return (b'{"' if name == "ts" else b',"') + name.encode() + b'":' + value

    head = b"".join(one(n) for n in FIELDS[:_OLDEST])
    tail = b""
    for name in reversed(FIELDS[_OLDEST:]):
        tail = b"(?:" + one(name) + tail + b")?"
    return re.compile(b"^" + head + tail + rb"\}\r?$")


_LINE_RE = _line_re()
_TS_RE = re.compile(rb'\{"ts":("[^"\\\n]*")')
FieldRow = tuple[bytes, ...]
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
    # cloud model -> (input, output) tokens of its 2xx answers
    cloud_tokens: dict[str, tuple[int, int]] = field(default_factory=dict)
    misses: MissFigures = field(default_factory=MissFigures)
    # project id -> its basename, where the config allowed recording it
    project_names: dict[str, str] = field(default_factory=dict)
    # --by project: every figure again, per project label (its name and id, or its id, or "(none)")
    projects: dict[str, Stats] = field(default_factory=dict)

    def project_label(self, project: str | None) -> str:
        if not project:
            return "(no project)"
        name = self.project_names.get(project)
        return f"{name} ({project})" if name else project

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
            "cloud_tokens": {m: {"input": i, "output": o} for m, (i, o) in self.cloud_tokens.items()},
            "misses": {
                "local_turns": self.misses.local_turns,
                "missed": self.misses.missed,
                "rate": self.misses.rate,
                "by_kind": self.misses.by_kind,
                "by_day": {d: {"local_turns": t, "missed": m} for d, (t, m) in self.misses.by_day.items()},
                "by_project": {
                    self.project_label(p): {"local_turns": t, "missed": m}
                    for p, (t, m) in self.misses.by_project.items()
                },
            },
            **({"by_project": {k: v.to_dict() for k, v in self.projects.items()}} if self.projects else {}),
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


_NULLS = {name: _prefix(name) + NULL for name in _FIELDS}


def _fast_columns(chunk: bytes, lines: int) -> Columns | None:
    """The chunk's columns via the fixed layout, or None when the chunk does not fit it.

    Values keep their key in front (``route":"local"``): stripping a million of them one by one
    would cost more than everything else.  ``_Acc`` strips them in bulk.
    """
    # A raw NUL never occurs in JSON text; we rely on that for the key check below.
    if not chunk.startswith(b'{"ts":"') or b"\0" in chunk:
        return None
    segs = chunk.split(b',"')
    # Segments per line: one per field after ts, whichever version of the record wrote the chunk.
    per_line, extra = divmod(len(segs) - 1, lines)
    if extra or not _OLDEST - 1 <= per_line <= len(FIELDS) - 1:
        return None
    ts = _TS_RE.findall(chunk)
    if len(ts) != lines:
        return None
    cols: Columns = [ts]
    for name, prefix in zip(_FIELDS[1:], _PREFIXES[1:], strict=True):
        at = FIELDS.index(name)
        if at > per_line:  # a field this version did not write yet
            cols.append([_NULLS[name]] * lines)
            continue
        col = segs[at::per_line]
        # Every value must sit under its own key (catches any line with other keys or order):
        # in C, by counting NUL+key in the column joined with NULs.
        if len(col) != lines or (b"\0" + b"\0".join(col)).count(b"\0" + prefix) != lines:
            return None
        if at == per_line:
            # A line's last field runs on into the next line (``x":1}\n{"ts":"...``): cut at the
            # record's closing brace (the last one: a timestamp holds none).
            col = [v[: v.rfind(b"}")] for v in col]
        cols.append(col)
    return cols


def _row_from_json(line: bytes) -> FieldRow | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("ts"), str):
        return None
    return tuple(_json_spelling(rec.get(name)) for name in _FIELDS)


def _row_from_line(line: bytes) -> FieldRow | None:
    m = _LINE_RE.match(line)
    if m:
        return tuple(NULL if v is None else v for v in m.group(*_FIELDS))
    return _row_from_json(line)


def _read_around(line: bytes) -> FieldRow | None:
    """A record glued after the fragment of one cut off by a crash (or after NUL padding)."""
    at = line.rfind(b'{"ts":"')
    return _row_from_line(line[at:]) if at > 0 else None


def parse_chunk(chunk: bytes) -> tuple[Columns, int]:
    """Columns (one list per field of _FIELDS) of a chunk of whole lines, and the unreadable line count.

    ``ts`` values are JSON strings (quotes kept); every other value has its key in front, as the
    fast path leaves it: ``status":200``.  A line that is not a record is counted and skipped; a
    record glued to such a fragment (a crash mid-write, then the next start appending) is still read.
    """
    lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") or not chunk else 1)
    cols = _fast_columns(chunk, lines) if lines else None
    if cols is not None:
        return cols, 0
    rows: list[FieldRow] = []
    bad = 0
    for line in chunk.split(b"\n"):
        if not line.strip():
            continue
        row = _row_from_line(line)
        if row is None:
            bad += 1
            row = _read_around(line)
        if row is not None:
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

    def __init__(self, since: str | None, split: bool = False) -> None:
        self.since = b'"' + since.encode() if since else None
        # --by project: one accumulator per project (its raw ``project":...`` spelling), fed the same way.
        self.projects: dict[bytes, _Acc] | None = {} if split else None
        self.project_names: dict[bytes, bytes] = {}
        self.misses = MissTracker()
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
        self._cloud = _prefix("route") + b'"cloud"'
        self.cloud_tokens: dict[bytes, list[int]] = {}
        self._ok_status = frozenset(_prefix("status") + str(code).encode() for code in range(200, 300))
        self._flags = _FlagTable()
        self._broken = _prefix("detail") + _json_spelling(BROKEN_DETAIL)[:-1]
        self._null_name = _prefix("project_name") + NULL
        self._nulls: dict[bytes, None] = {_prefix(n) + NULL: None for n in ("session", "turn", "prompt_hash")}
        self._null_session = _prefix("session") + NULL
        self._null_turn = _prefix("turn") + NULL

    def add(self, cols: Columns) -> None:
        # Every per-row step is a map()/compress()/Counter over a whole column, so the loops run in C.
        if not cols[0]:
            return
        if self.since is not None and min(cols[0]) < self.since:
            keep = list(map(self.since.__le__, cols[0]))
            cols = [list(compress(c, keep)) for c in cols]
        if self.projects is not None:
            self._split(cols)
        ts, route, reason, cms, status, ttft, total, fb, itok, otok = cols[:10]
        sess, detail, ph, turn, proj, pname, model, repaired = cols[10:]
        if not ts:
            return
        if pname.count(self._null_name) != len(pname):
            for p, n in set(zip(proj, pname, strict=True)):
                if n != self._null_name:
                    self.project_names.setdefault(p, n)
        self.requests += len(ts)
        lo, hi = min(ts), max(ts)
        self.first = lo if self.first is None else min(self.first, lo)
        self.last = hi if self.last is None else max(self.last, hi)
        # Misses see every routed record (they drop refused and background ones themselves).
        self._track_misses(ts, route, reason, status, fb, sess, detail, ph, turn, proj)
        self.reason.update(reason)
        self.status.update(status)
        self.fallback.update(fb)
        self.repaired.update(repaired)
        self.classify.extend(filter(_not_none, _numbers(cms, "classify_ms")))
        rejected = list(map(self._rejected.__contains__, reason))
        if any(rejected):
            keep = list(map(not_, rejected))
            ts, route, status, ttft, total, itok, otok, model = (
                list(compress(c, keep)) for c in (ts, route, status, ttft, total, itok, otok, model)
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
        # Tokens the cloud did process, by model (what was spent there).
        cloud = list(map(and_, map(self._cloud.__eq__, route), map(self._ok_status.__contains__, status)))
        if any(cloud):
            c_model = list(compress(model, cloud))
            c_in = list(compress(_numbers(itok, "input_tokens"), cloud))
            c_out = list(compress(_numbers(otok, "output_tokens"), cloud))
            for m in set(c_model):
                mask = list(map(m.__eq__, c_model))
                spent = self.cloud_tokens.setdefault(m, [0, 0])
                spent[0] += sum(filter(_not_none, compress(c_in, mask)))
                spent[1] += sum(filter(_not_none, compress(c_out, mask)))
        # Minute buckets ("YYYY-MM-DDTHH:MM"): re-bucketed for the chart once the span is known.
        self.minutes.update(zip([t[1:17] for t in ts], route, strict=True))

    def _split(self, cols: Columns) -> None:
        assert self.projects is not None
        proj = cols[_FIELDS.index("project")]
        for p in set(proj):
            child = self.projects.get(p)
            if child is None:
                child = self.projects[p] = _Acc(None)
            child.since = self.since
            keep = list(map(p.__eq__, proj))
            child.add([list(compress(c, keep)) for c in cols])

    def _track_misses(self, *cols: list[bytes]) -> None:
        ts, route, reason, status, fb, sess, detail, ph, turn, proj = cols
        # One lookup per row (in C) gives its Flags from the few distinct (route, fallback, status,
        # reason) combinations; None for background and refused requests, which are no user turns.
        flags: list[Flags | None] = list(map(self._flags.__getitem__, zip(route, fb, status, reason, strict=True)))
        broken = list(map(methodcaller("startswith", self._broken), detail))
        if any(broken):
            for i in compress(range(len(flags)), broken):
                f = flags[i]
                if f is not None and f.local and f.failed is None:
                    flags[i] = f._replace(local_ok=False, failed="broken")
        days = [t[1:11] for t in ts]
        rows = list(compress(zip(sess, turn, ph, proj, days, flags, strict=True), flags))
        if not rows:
            return
        # A row equal to the one before it (a turn's tool steps, routed alike) changes nothing in the
        # tracker: dropped here, in C.  Rows without a session or turn (logs written before turns were
        # recorded) are turns of their own: never dropped.
        if len(rows) > 1:
            fresh = [True, *map(ne, rows[1:], rows[:-1])]
            no_session = map(self._null_session.__eq__, map(itemgetter(0), rows))
            own = map(or_, no_session, map(self._null_turn.__eq__, map(itemgetter(1), rows)))
            rows = list(compress(rows, map(or_, fresh, own)))
        s_, t_, h_, p_, d_, f_ = zip(*rows, strict=True)
        # null tokens become None (dict.get with the value itself as the default: in C)
        sessions, turns, hashes = (map(self._nulls.get, c, c) for c in (s_, t_, h_))
        self.misses.feed(zip(sessions, turns, hashes, p_, d_, f_, strict=True))


class _FlagTable(dict[tuple[bytes, bytes, bytes, bytes], "Flags | None"]):
    """Flags of a (route, fallback, status, reason) combination, in their raw spellings, worked out
    once per combination (a log has a few hundred of them)."""

    def __init__(self) -> None:
        super().__init__()
        self._local = _prefix("route") + b'"local"'
        self._no_fallback = _prefix("fallback") + NULL
        self._ok = frozenset(_prefix("status") + str(code).encode() for code in range(200, 300))
        self._not_turn = frozenset(_prefix("reason") + _json_spelling(r) for r in (*REJECTED_REASONS, "background"))
        self._retry = _prefix("reason") + b'"retry-to-cloud"'
        self._explicit = _prefix("reason") + b'"explicit"'

    def __missing__(self, key: tuple[bytes, bytes, bytes, bytes]) -> Flags | None:
        route, fb, status, reason = key
        value = None
        if reason not in self._not_turn:
            fell = fb != self._no_fallback
            answered = route == self._local
            local = answered or fell
            value = Flags(
                local=local,
                local_ok=answered and not fell and status in self._ok,
                failed="fallback" if fell else None,
                retry=reason == self._retry,
                explicit_cloud=reason == self._explicit and not local,
            )
        self[key] = value
        return value


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
    by_project: bool = False,
) -> Stats:
    """Aggregate the log at ``path`` and its rotated files.

    ``since``: an ISO UTC time in the ``ts`` field's spelling (see ``parse_since``).
    ``by_project``: also every figure per project (``Stats.projects``).
    """
    since_epoch = _iso_to_epoch(since) if since else None
    acc = _Acc(since, split=by_project)
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
    st.cloud_tokens = {_unquote(m) or "(none)": (i, o) for m, (i, o) in sorted(acc.cloud_tokens.items())}
    st.project_names = {_unquote(p): _unquote(n) for p, n in acc.project_names.items()}
    raw = acc.misses.figures()
    st.misses = MissFigures(
        local_turns=raw.local_turns,
        missed=raw.missed,
        by_kind=raw.by_kind,
        by_day={bytes(d).decode("ascii", "replace"): v for d, v in raw.by_day.items()},
        by_project={_unquote(p) or None: v for p, v in raw.by_project.items()},
    )
    if acc.projects is not None:
        for p, child in sorted(acc.projects.items()):
            label = st.project_label(_unquote(p) or None)
            child.project_names = acc.project_names
            st.projects[label] = _finish(child, width)
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
        lines.append(f"  skipped           {st.unreadable_lines:,} unreadable line(s) (corrupt or cut off)")
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
    lines.extend(render_misses(st))
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


def _rate(turns: int, missed: int) -> str:
    return f"{_pct(missed, turns)} ({missed:,} of {turns:,} local turns)"


def render_misses(st: Stats) -> list[str]:
    m = st.misses
    if not m.local_turns:
        return ["routing misses      - (no local turns)"]
    kinds = f"   ({_counts(m.by_kind)})" if m.by_kind else ""
    lines = [f"routing misses      {_rate(m.local_turns, m.missed)}{kinds}"]
    if len(m.by_day) > 1:
        lines.append("  per day           " + ", ".join(f"{d} {_pct(x, t)}" for d, (t, x) in m.by_day.items()))
    if len(m.by_project) > 1 or None not in m.by_project:
        ranked = sorted(m.by_project.items(), key=lambda kv: -kv[1][0])
        lines.append(
            "  per project       " + ", ".join(f"{st.project_label(p)} {_pct(x, t)} of {t:,}" for p, (t, x) in ranked)
        )
    if not any(m.by_project):
        lines.append("  (no prompt hashes or projects recorded: set the hash key, see [log] hash_key_env)")
    return lines


def render_by_project(st: Stats, ascii_only: bool = False) -> list[str]:
    """``stats --by project``: the overall figures, then every figure again for each project."""
    lines = render_text(st, chart=False, ascii_only=ascii_only)
    for label, sub in sorted(st.projects.items(), key=lambda kv: -kv[1].requests):
        lines += ["", f"== project {label}"]
        lines += render_text(sub, chart=False, ascii_only=ascii_only)
    return lines


def _bucket_label(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"
