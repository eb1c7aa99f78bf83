"""The decision log: one JSON line per request, appended when the request ends.

Record fields (all present in every line; unknown values are null):

    ts            UTC ISO-8601 time the request arrived, e.g. "2026-11-23T05:40:12.123Z"
    id            Switchyard's request id ("req_...")
    session       Claude Code session id, or null
    route         "local" | "cloud"  (where the answer finally came from)
    model         model name sent upstream
    reason        why: explicit, subagent-tag, no-messages, plan-mode, long-context, server-tool, background,
                  local-down, retry-to-cloud, classified, cached, classify-timeout, classify-error,
                  classify-empty
    verdict       "SIMPLE" | "COMPLEX" | null
    local_up      bool | null (null when the health check was not needed)
    classify_ms   float | null
    status        HTTP status sent to the client; 499: the client went away before the answer was
                  complete (even after a 200); 503 with a detail: the answer was cut at shutdown
    ttft_ms       ms from arrival to the first byte of the answer, or null
    total_ms      ms from arrival to the end of the answer
    fallback      null, or the cause of a local→cloud fallback ("connect-error", "first-token-timeout", ...).
                  Unusable local answers have their own causes: "text-tool-call-invalid" (a tool call
                  written as text that names an unknown tool, does not parse or does not fit its
                  input_schema), "empty-answer" (nothing or only whitespace), "reasoning-only",
                  "length-before-content", "tool-finish-without-call"; on the Anthropic-dialect local path
                  also "native-grammar" (the server's own stream broke the Anthropic grammar)
    input_tokens  int | null
    output_tokens int | null
    detail        null, or a short secret-free explanation (classifier error text, reply length, ...)
    stream        bool
    cached_tokens int | null: prompt tokens a local server reused from its prefix cache
    prefill_ms    float | null: a local server's prompt time
    prompt_hash   null, or a hash of the latest genuine user text keyed with the install's hash key
                  (same text, same hash, on this install only; see proxy/record_ids.py)
    turn          int | null: genuine user messages in the transcript (a repeat of a message is a new
                  turn with the same prompt_hash; a tool-result continuation keeps both)
    project       null, or a short keyed id of the working directory Claude Code names
    project_name  null, or that directory's basename (only with [log] project_names = true)
    repaired      null, or the shape of a tool call the local model wrote as text and Switchyard sent
                  as a tool_use block: "tool_call_tag", "function_tag", "mistral", "bare_json",
                  "fenced_json", "single_quoted"

Never prompt text, never keys.  Lines are written with a single ``write`` on an ``O_APPEND`` file so
concurrent requests never interleave within a line.  Rotation is by size: ``decisions.jsonl`` →
``decisions.jsonl.1`` … ``.N``.

A line is whole or absent: a short write (disk full) is cut back off the file with ``ftruncate`` and
the record counted as failed; if even that fails, the next record starts on a new line rather than
being glued to the fragment.  Once a second the path is compared with the open file (device and
inode), so a log moved away by logrotate (``mv decisions.jsonl decisions.jsonl-DATE; touch
decisions.jsonl``), deleted, or replaced is reopened instead of written to under its old name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy import jsonio

log = logging.getLogger("switchyard.decisions")

FIELDS = (
    "ts",
    "id",
    "session",
    "route",
    "model",
    "reason",
    "verdict",
    "local_up",
    "classify_ms",
    "status",
    "ttft_ms",
    "total_ms",
    "fallback",
    "input_tokens",
    "output_tokens",
    "detail",
    "stream",
    "cached_tokens",
    "prefill_ms",
    "prompt_hash",
    "turn",
    "project",
    "project_name",
    "repaired",
)


def utc_iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class DecisionRecord:
    ts: str
    id: str
    session: str | None = None
    route: str = "cloud"
    model: str | None = None
    reason: str = ""
    verdict: str | None = None
    local_up: bool | None = None
    classify_ms: float | None = None
    status: int = 0
    ttft_ms: float | None = None
    total_ms: float | None = None
    fallback: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    detail: str | None = None
    stream: bool = False
    # Local answers: prompt tokens the server reused from its prefix cache, and its prompt time.
    cached_tokens: int | None = None
    prefill_ms: float | None = None
    prompt_hash: str | None = None
    turn: int | None = None
    project: str | None = None
    project_name: str | None = None
    # A tool call written as text and repaired into a tool_use block: its shape.
    repaired: str | None = None
    # Not logged: the client was sent the whole answer, so a disconnect after it is no 499.
    sent_whole: bool = False

    def to_json(self) -> str:
        # Built by hand: dataclasses.asdict deep-copies every field and showed up in profiles.
        data: dict[str, Any] = {name: getattr(self, name) for name in FIELDS}
        for key in ("classify_ms", "ttft_ms", "total_ms", "prefill_ms"):
            if data[key] is not None:
                data[key] = round(data[key], 3)
        return jsonio.dumps(data).decode()


class DecisionLog:
    """Append-only JSONL writer with size rotation.  Cheap enough to call on every request."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path = Path(path) if path else None
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._checked_at = 0.0
        # A fragment of a line may be left in the file (a short write that could not be cut back).
        self._needs_newline = False
        # Reported by /health, so `switchyard doctor` can tell a log that stopped growing.
        self.written = 0
        self.failed = 0
        self.ok = True  # the latest open or write succeeded
        self.last_error: str | None = None  # why the latest attempt failed; None once one succeeds
        self.last_failure: tuple[str, float] | None = None  # the most recent failure and its time, kept

    def _failure(self, exc: OSError) -> None:
        self.failed += 1
        first = self.ok
        self.ok = False
        self.last_error = f"{exc.strerror or exc} ({self.path})"
        self.last_failure = (self.last_error, time.time())
        self._close_fd()
        if first:
            log.warning("cannot write the decision log: %s", self.last_error)

    def _success(self) -> None:
        if not self.ok:
            log.info("the decision log is writable again (%s)", self.path)
        self.ok = True
        self.last_error = None

    def _close_fd(self) -> None:
        # A write that failed (disk full, say) leaves the descriptor open: close it before the next
        # write reopens the file, or every failure would leak one.
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def status(self) -> dict[str, Any]:
        """What /health reports: counters, the current state, and the last failure with its time."""
        failure = self.last_failure
        return {
            "path": str(self.path) if self.path else None,
            "written": self.written,
            "failed": self.failed,
            "ok": self.ok,
            "last_error": self.last_error,
            "last_failure": None if failure is None else {"error": failure[0], "at": utc_iso(failure[1])},
        }

    def open(self) -> bool:
        """Open (creating) the log now, so a bad path is reported at start, not on the first request."""
        if self.path is None:
            return True
        with self._lock:
            try:
                self._open()
            except OSError as exc:
                self._failure(exc)
                return False
        return True

    def _open(self) -> int:
        assert self.path is not None
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _still_our_file(self, fd: int) -> bool:
        """Does the path still name the open file?  (logrotate may have moved it and made a new one.)"""
        assert self.path is not None
        try:
            on_disk = self.path.stat()
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        # Truncated in place (logrotate's copytruncate): keep the file, but know its real size.
        self._size = mine.st_size
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def _rotate(self) -> None:
        assert self.path is not None
        self._close_fd()
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
            return
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def _append(self, fd: int, line: bytes) -> None:
        """Write all of ``line`` or none of it (raises OSError when none of it could stay)."""
        done = 0
        try:
            while done < len(line):
                n = os.write(fd, line[done:] if done else line)
                if n <= 0:
                    raise OSError(errno.ENOSPC, "short write: no bytes written")
                done += n
        except OSError:
            if done:
                self._cut_back(fd, done)
            raise

    def _cut_back(self, fd: int, written: int) -> None:
        """Remove the ``written`` bytes of a partial line from the end of the file."""
        try:
            end = os.fstat(fd).st_size
            os.ftruncate(fd, max(end - written, 0))
        except OSError:
            # The fragment stays: make sure the next record does not continue it.
            self._needs_newline = True

    def write(self, record: DecisionRecord) -> None:
        if self.path is None:
            return
        line = (record.to_json() + "\n").encode("utf-8")
        with self._lock:
            try:
                fd = self._open()
                # Another process (or a user's logrotate) may have moved the file away.  A stat per
                # line would cost more than the rest of the write, so look once a second.
                now = time.monotonic()
                if now - self._checked_at > 1.0:
                    self._checked_at = now
                    if not self._still_our_file(fd):
                        self._close_fd()
                        fd = self._open()
                if self._size and self._size + len(line) > self.max_bytes:
                    self._rotate()
                    fd = self._open()
                if self._needs_newline:
                    line = b"\n" + line
                self._append(fd, line)
                self._needs_newline = False
                self._size += len(line)
                self.written += 1
                self._success()
            except OSError as exc:
                # Logging must never take a request down with it.
                self._failure(exc)

    def close(self) -> None:
        with self._lock:
            self._close_fd()
