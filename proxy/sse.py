"""Server-sent events: an incremental decoder and a compact encoder.

Both upstream dialects Switchyard speaks stream SSE: OpenAI chat-completion chunks (``data:`` lines,
ending with ``data: [DONE]`` or just EOF) and Anthropic Messages events (``event:`` + ``data:``).
Network reads split the byte stream anywhere: inside a line, inside a UTF-8 sequence, between the
``\\r`` and ``\\n`` of a line ending.  The decoder therefore buffers bytes and only decodes whole lines.

Interpretation follows the WHATWG event-stream rules, with one leniency: an event that has an
``event:`` field but no ``data:`` is still dispatched (with empty data), because a relay that drops
it would silently change the stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from proxy import jsonio


class SSEDecodeError(ValueError):
    """A line of the stream is not valid UTF-8."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event.  ``event`` is None when the stream gave no ``event:`` field."""

    event: str | None
    data: str
    id: str | None = None

    def json(self) -> Any:
        """The data parsed as JSON (raises ``json.JSONDecodeError``/``ValueError``)."""
        return json.loads(self.data)


class SSEDecoder:
    """Feed raw bytes as they arrive; get back the events completed by them.

    >>> d = SSEDecoder()
    >>> d.feed(b"event: ping\\ndata: {}\\n") + d.feed(b"\\n")
    [SSEEvent(event='ping', data='{}', id=None)]

    Call :meth:`flush` at end of stream: it dispatches a final event that lacks the trailing
    blank line (some servers close the connection right after the last ``data:`` line).
    """

    __slots__ = ("_buf", "_data", "_event", "_has_data", "_id")

    def __init__(self) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._has_data = False
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A trailing \r may be the first half of \r\n: keep it until the next read decides.
            hold = buf.endswith(b"\r")
            if hold:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            hold = False
        end = buf.rfind(b"\n")
        if end < 0:
            self._buf = buf + (b"\r" if hold else b"")
            return []
        self._buf = buf[end + 1 :] + (b"\r" if hold else b"")
        events: list[SSEEvent] = []
        for raw in buf[:end].split(b"\n"):
            ev = self._line(raw)
            if ev is not None:
                events.append(ev)
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: treat a pending partial line as complete and dispatch any pending event."""
        events: list[SSEEvent] = []
        rest, self._buf = self._buf, b""
        if rest:
            # A lone trailing \r was a line ending after all.
            for raw in rest.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
                ev = self._line(raw)
                if ev is not None:
                    events.append(ev)
        ev = self._dispatch()
        if ev is not None:
            events.append(ev)
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self._dispatch()
        if raw[0] == 0x3A:  # ":" starts a comment (keep-alives)
            return None
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SSEDecodeError(f"stream line is not valid UTF-8 (byte {exc.start})") from None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id" and "\x00" not in value:
            self._id = value
        # "retry" and unknown fields are ignored, as the spec says.
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_data and self._event is None:
            return None
        ev = SSEEvent(event=self._event or None, data="\n".join(self._data), id=self._id)
        self._event = None
        self._data = []
        self._has_data = False
        return ev


class FrameSplitter:
    """Cut a relayed byte stream into whole SSE frames, so that only complete events are passed on.

    A relay that forwards reads as they come passes on half an event when the upstream dies
    mid-frame, and whatever it appends then is glued to that half.  Fed each read, this returns the
    frames the read completed (each without its terminating blank line); an incomplete trailing frame
    stays in :attr:`pending` and is dropped at end of stream (as the SSE rules drop an unterminated
    event).  ``\\r\\n`` and ``\\r`` line endings are turned into ``\\n``; Anthropic and LiteLLM send ``\\n``.

    >>> s = FrameSplitter()
    >>> s.feed(b"event: ping\\ndata: {}\\n\\nevent: mess")
    [b'event: ping\\ndata: {}']
    >>> s.pending
    b'event: mess'
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    @property
    def pending(self) -> bytes:
        return self._buf

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            buf = _normalise_line_ends(buf)
        parts = buf.split(b"\n\n")
        self._buf = parts.pop()
        # Runs of blank lines make empty parts; they carry nothing.
        return [p for p in parts if p] if b"" in parts else parts

    def end(self) -> list[bytes]:
        """End of stream: a held trailing ``\\r`` was a line end after all; frames it completes."""
        if not self._buf.endswith(b"\r"):
            return []
        self._buf = self._buf[:-1] + b"\n"
        return self.feed(b"")


def _normalise_line_ends(buf: bytes) -> bytes:
    # A trailing \r may be the first half of \r\n; treating it as a line end now and dropping the \n
    # that follows would need state, so keep it as \r until the next read settles it.
    hold = buf.endswith(b"\r")
    body = (buf[:-1] if hold else buf).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return body + b"\r" if hold else body


_EVENT_NAMES: dict[bytes, str] = {}


def parse_frame(frame: bytes) -> tuple[str | None, bytes | None]:
    """The ``event:`` name and ``data:`` bytes of one frame (from :class:`FrameSplitter`).

    ``data`` is None when the frame has no data line (comments, keep-alives).  Anthropic's own shape,
    ``event: NAME`` then one ``data: JSON`` line, takes the fast path.
    """
    if frame.startswith(b"event: "):
        nl = frame.find(b"\n", 7)
        if nl > 0 and frame.startswith(b"data: ", nl + 1) and frame.find(b"\n", nl + 7) < 0:
            raw_name = frame[7:nl]
            name = _EVENT_NAMES.get(raw_name)
            if name is None:
                name = raw_name.decode("utf-8", "replace")
                if len(_EVENT_NAMES) < 64:  # the handful of names a stream uses, decoded once
                    _EVENT_NAMES[raw_name] = name
            return name, frame[nl + 7 :]
    event: str | None = None
    data: list[bytes] = []
    for line in frame.split(b"\n"):
        if not line or line[0] == 0x3A:  # ":" starts a comment
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            event = value.decode("utf-8", "replace")
    return event, (b"\n".join(data) if data else None)


async def aiter_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Decode an async byte stream (e.g. ``response.content.iter_any()``) into events."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for ev in decoder.feed(chunk):
            yield ev
    for ev in decoder.flush():
        yield ev


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    """One Anthropic-style event: ``event: NAME`` + compact JSON ``data:`` + blank line.

    JSON escapes every \\n and \\r inside strings, so the data always fits on one line.
    """
    try:
        payload = jsonio.dumps(data)
    except TypeError:
        # A lone surrogate (possible after parsing "\ud800"): escape it instead of failing.
        payload = json.dumps(data, separators=(",", ":")).encode()
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"
