"""HTTP/1.1 over a raw socket, for requests no HTTP client will send (bad bytes, broken framing).

``exchange(url, data)`` sends ``data`` as it is and reads what comes back until the server closes
or ``Content-Length`` is satisfied; ``RawResponse`` holds the status, headers and body.  Nothing is
ever sent anywhere but the loopback address in ``url``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawResponse:
    raw: bytes
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def closed_without_answer(self) -> bool:
        return not self.raw


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    assert host == "127.0.0.1", "raw requests go to loopback only"
    return host, int(port)


def parse_response(raw: bytes) -> RawResponse:
    """The first response in ``raw`` (interim 1xx responses skipped)."""
    rest = raw
    while True:
        head, sep, body = rest.partition(b"\r\n\r\n")
        if not sep:
            return RawResponse(raw=raw)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if 100 <= status < 200:
            rest = body
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = body[: int(headers["content-length"])]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = dechunk(body)
        return RawResponse(raw=raw, status=status, headers=headers, body=body)


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


def _complete(raw: bytes) -> bool:
    resp = parse_response(raw)
    if not resp.status:
        return False
    if "content-length" in resp.headers:
        head_len = raw.index(b"\r\n\r\n") + 4
        return len(raw) - head_len >= int(resp.headers["content-length"])
    if resp.headers.get("transfer-encoding", "").lower() == "chunked":
        return raw.endswith(b"0\r\n\r\n")
    return False


def exchange(url: str, data: bytes, timeout: float = 10.0, *, half_close: bool = False) -> RawResponse:
    """Send ``data``; return the response (``raw`` empty when the server closed without a word)."""
    with socket.create_connection(host_port(url), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before taking everything
        return read_response(s, timeout)


def read_response(s: socket.socket, timeout: float = 10.0) -> RawResponse:
    raw = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _complete(raw):
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        raw += chunk
    return parse_response(raw)


def request_bytes(
    method: str, path: str, headers: Mapping[str, str | bytes], body: bytes = b"", *, version: str = "HTTP/1.1"
) -> bytes:
    """A request with ``Content-Length`` set from ``body`` unless ``headers`` name their own framing."""
    lines = [f"{method} {path} {version}".encode()]
    names = {k.lower() for k in headers}
    for k, v in headers.items():
        lines.append(k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()))
    if "host" not in names:
        lines.append(b"Host: 127.0.0.1")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
