"""``switchyard statusline``: one short line for Claude Code's ``statusLine`` setting.

Claude Code runs the command after each assistant message (at most every 300 ms) with JSON on
stdin (``session_id``, ``transcript_path``, ``cwd``, ``model`` ...) and shows the first line printed.
So this must be fast whatever the log's size: it reads only the last ``SCAN_BYTES`` of the live
decision log, backwards in blocks, and stops as soon as it has both the session's latest answer and
the start of today (UTC).  When today began before that window, the share is of the window's part of
today and is marked ``~``.  Lines that do not parse (a crash mid-write) are skipped.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy import jsonio
from proxy.decision_detail import BROKEN_DETAIL

SCAN_BYTES = 4 * 1024 * 1024
BLOCK = 64 * 1024
REJECTED = frozenset({"bad-request", "unauthorized"})
_REJECTED_BYTES = tuple(f'"reason":"{r}"'.encode() for r in sorted(REJECTED))
_LOCAL = b'"route":"local"'


@dataclass
class Glance:
    latest: dict[str, Any] | None = None  # the session's latest record
    local: int = 0
    routed: int = 0
    complete_day: bool = False  # the window reached the start of today
    skipped: int = 0


def session_of(stdin_text: str) -> str | None:
    """The session id Claude Code passes on stdin (None when the input is not what it sends)."""
    try:
        data = jsonio.loads(stdin_text) if stdin_text.strip() else None
    except ValueError:
        return None
    sid = data.get("session_id") if isinstance(data, dict) else None
    return sid if isinstance(sid, str) and sid else None


def lines_backwards(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """The file's whole lines, last first, from at most its last ``limit`` bytes (SCAN_BYTES)."""
    limit = SCAN_BYTES if limit is None else limit
    with path.open("rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        floor = max(0, end - limit)
        pos = end
        rest = b""
        while pos > floor:
            step = min(BLOCK, pos - floor)
            pos -= step
            fh.seek(pos)
            block = fh.read(step) + rest
            parts = block.split(b"\n")
            rest = parts[0]  # may be the tail of a line that starts in the previous block
            for line in reversed(parts[1:]):
                if line.strip():
                    yield line
        if floor == 0 and rest.strip():
            yield rest  # the file's first line (a cut-off first line of the window is dropped)


def glance(path: Path, session: str | None, today: str) -> Glance:
    """The session's latest record and today's local share, reading the log from its end.

    ``today``: "YYYY-MM-DD" (UTC, the ``ts`` field's spelling).
    """
    g = Glance()
    if not path.exists():
        return g
    needle = f'"session":{jsonio.dumps(session).decode()}'.encode() if session else None
    today_b = today.encode()
    for line in lines_backwards(path):
        day = line[7:17] if line.startswith(b'{"ts":"') else None
        if day is not None and day < today_b:
            g.complete_day = True
            if g.latest is not None or needle is None:
                break
        today_line = day == today_b
        # Counted from the bytes (the proxy's own fixed spelling), not parsed: this is most lines.
        # A line cut off by a crash (no closing brace) is skipped.
        if today_line and line.rstrip().endswith(b"}") and not any(r in line for r in _REJECTED_BYTES):
            g.routed += 1
            g.local += _LOCAL in line
        elif today_line and not line.rstrip().endswith(b"}"):
            g.skipped += 1
        if needle is None or g.latest is not None or needle not in line:
            continue
        rec = _record(line)
        if rec is None:
            g.skipped += 1
            continue
        if rec.get("session") == session:
            g.latest = rec
    else:
        # The window ended before anything older than today: complete only if it was the whole file.
        g.complete_day = g.complete_day or _whole_file(path)
    return g


def _record(line: bytes) -> dict[str, Any] | None:
    """A line's record, or the record glued after a fragment a crash left (None: neither)."""
    for start in (0, line.rfind(b'{"ts":"')):
        if start < 0 or (start == 0 and not line.startswith(b"{")):
            continue
        try:
            rec = jsonio.loads(line[start:])
        except ValueError:
            continue
        if isinstance(rec, dict):
            return rec
    return None


def _whole_file(path: Path) -> bool:
    try:
        return path.stat().st_size <= SCAN_BYTES
    except OSError:
        return False


def _why(rec: dict[str, Any]) -> str:
    if rec.get("fallback"):
        return f"fallback: {rec['fallback']}"
    if str(rec.get("detail") or "").startswith(BROKEN_DETAIL):
        return "broke"
    reason = str(rec.get("reason") or "")
    return {"retry-to-cloud": "retry", "classify-timeout": "classify timeout"}.get(reason, reason)


def render(g: Glance) -> str:
    parts = []
    if g.latest is None:
        parts.append("switchyard: no answer yet")
    else:
        rec = g.latest
        model = str(rec.get("model") or "?")
        parts.append(f"switchyard: {rec.get('route', '?')} {model} ({_why(rec)})")
    if g.routed:
        mark = "" if g.complete_day else "~"
        parts.append(f"today {mark}{round(100 * g.local / g.routed)}% local")
    return " · ".join(parts)


def line_for(path: Path | None, stdin_text: str, now: dt.datetime | None = None) -> str:
    if path is None:
        return "switchyard: no decision log configured"
    today = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d")
    try:
        return render(glance(path, session_of(stdin_text), today))
    except OSError as exc:
        return f"switchyard: cannot read {path.name} ({exc.strerror})"


def main(argv: list[str]) -> int:
    """``python -m proxy.ops.statusline --config FILE``: what the launcher gives Claude Code.

    The same line as ``switchyard statusline``, without loading the command-line toolkit (click and
    every command's options): on each refresh Python's start is most of the cost.
    """
    import sys

    from proxy.config import ConfigError, load_config
    from proxy.host.paths import Paths

    log: Path | None = None
    try:
        if "--log" in argv:
            log = Path(argv[argv.index("--log") + 1])
        else:
            config = (Path(argv[argv.index("--config") + 1]) if "--config" in argv
                      else Paths.from_env(strict=False).config_file)
            decisions = load_config(config).log.decisions
            log = Path(decisions) if decisions else None
    except (ConfigError, IndexError) as exc:
        print(f"switchyard: {str(exc).splitlines()[0][:200] if str(exc) else 'give --config FILE'}")
        return 0
    stdin_text = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read(1 << 20)
    print(line_for(log, stdin_text))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
