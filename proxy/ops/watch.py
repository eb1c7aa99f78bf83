"""``switchyard watch``: follow the decision log as readable lines, with filters.

``format_record`` and ``matches`` are pure; ``follow`` does the file work: it prints the last lines,
then polls for new ones, and reopens the file when the proxy rotates it (new inode or shrunk).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.ops.stats import log_files


@dataclass(frozen=True)
class Filters:
    routes: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()  # prefixes of session ids

    def matches(self, rec: dict[str, Any]) -> bool:
        if self.routes and rec.get("route") not in self.routes:
            return False
        if self.reasons and not any(_reason_matches(rec.get("reason"), r) for r in self.reasons):
            return False
        session = rec.get("session") or ""
        return not self.sessions or any(session.startswith(s) for s in self.sessions)


def _reason_matches(reason: Any, wanted: str) -> bool:
    # "classify" matches every classify-* failure as well.
    return isinstance(reason, str) and (reason == wanted or reason.startswith(wanted + "-"))


def _ms(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value / 1000:.1f}s" if value >= 10000 else f"{value:.0f}ms"


def local_time(ts: Any, tz: dt.tzinfo | None = None) -> str:
    if not isinstance(ts, str):
        return "--:--:--"
    try:
        when = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts[:19]
    return when.astimezone(tz).strftime("%H:%M:%S")


def format_record(rec: dict[str, Any], tz: dt.tzinfo | None = None) -> str:
    """One record as a line: time, route, reason, model, latency, fallback and the rest when present."""
    route = str(rec.get("route") or "?")
    reason = str(rec.get("reason") or "?")
    if rec.get("verdict"):
        reason += f" {rec['verdict']}"
    parts = [
        local_time(rec.get("ts"), tz),
        f"{route:<5}",
        f"{reason:<20}",
        f"{rec.get('model') or '-'}",
        f"ttft {_ms(rec.get('ttft_ms'))}",
        f"total {_ms(rec.get('total_ms'))}",
    ]
    if rec.get("classify_ms") is not None:
        parts.append(f"classify {_ms(rec.get('classify_ms'))}")
    status = rec.get("status")
    if status not in (200, None):
        parts.append(f"HTTP {status}")
    if rec.get("fallback"):
        parts.append(f"fallback: {rec['fallback']}")
    if rec.get("repaired"):
        parts.append(f"repaired: {rec['repaired']}")
    tokens = (rec.get("input_tokens"), rec.get("output_tokens"))
    if any(isinstance(t, int) for t in tokens):
        parts.append(
            f"tokens {tokens[0] if tokens[0] is not None else '-'}/{tokens[1] if tokens[1] is not None else '-'}"
        )
    if rec.get("session"):
        parts.append(f"[{str(rec['session'])[:8]}]")
    if rec.get("detail"):
        parts.append(f"({rec['detail']})")
    return "  ".join(parts)


def parse_line(line: str) -> dict[str, Any] | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def last_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines across the log and its rotated files (newest last)."""
    if count <= 0:
        return []
    out: list[str] = []
    for file in reversed(log_files(path)):
        try:
            with file.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                block = 64 * 1024
                data = b""
                while size > 0 and data.count(b"\n") <= count:
                    step = min(block, size)
                    size -= step
                    fh.seek(size)
                    data = fh.read(step) + data
        except OSError:
            continue
        lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
        if size > 0:
            lines = lines[1:]  # the first one may be cut
        out = lines[-(count - len(out)) :] + out
        if len(out) >= count:
            break
    return out[-count:]


def position(path: Path) -> tuple[int, int] | None:
    """(inode, size) of the log now: where ``follow`` should pick up after the past was printed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size


def follow(
    path: Path,
    poll_s: float = 0.25,
    should_stop: Callable[[], bool] = lambda: False,
    start: tuple[int, int] | None = None,
) -> Iterator[str]:
    """Complete lines appended to ``path`` after ``start`` (default: now), across rotations.

    Pass the ``position`` taken *before* printing past records, so a record written in between
    is neither lost nor shown twice.
    """
    fh = None
    inode = None
    pos = 0
    pending = b""
    if start is None:
        start = position(path)
    try:
        while not should_stop():
            try:
                st = path.stat()
            except FileNotFoundError:
                st = None
            if st is not None and (fh is None or st.st_ino != inode or st.st_size < pos):
                if fh is not None:
                    # Rotated: drain what the old file still had, then switch.
                    pending += fh.read()
                    fh.close()
                    if pending.endswith(b"\n"):
                        yield from _complete(pending)
                    pending = b""
                first_open = fh is None and inode is None
                fh = path.open("rb")
                inode = st.st_ino
                # The same file as at ``start``: continue from there; a new one: from its beginning.
                if first_open and start is not None and start[0] == inode:
                    fh.seek(min(start[1], st.st_size))
                pos = fh.tell()
            if fh is not None:
                chunk = fh.read()
                if chunk:
                    pos += len(chunk)
                    pending += chunk
                    cut = pending.rfind(b"\n")
                    if cut >= 0:
                        yield from _complete(pending[: cut + 1])
                        pending = pending[cut + 1 :]
                    continue
            time.sleep(poll_s)
    finally:
        if fh is not None:
            fh.close()


def _complete(data: bytes) -> Iterator[str]:
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip():
            yield line


def render(lines: Sequence[str], filters: Filters, raw_json: bool, tz: dt.tzinfo | None = None) -> Iterator[str]:
    for line in lines:
        rec = parse_line(line)
        if rec is None:
            continue
        if filters.matches(rec):
            yield line if raw_json else format_record(rec, tz)
