"""Switchyard's added latency and throughput on the path with no classification call.

One run, one process tree: a stand-in Anthropic upstream (its own process), Switchyard (`python -m
proxy serve`, its own process) forwarding to it, and this load generator.  Each case is measured
direct-to-upstream and through Switchyard, so the figures are differences and ratios measured side
by side, not absolute numbers from different machines.

    python bench/bench_proxy.py [--requests 400] [--frames 2000] [--json out.json]

Bodies: the real 78 KB first-turn request captured from Claude Code (tests/data/claude_code_turn1.json,
24 tools) and a small one.  The model is set to `cloud`, an explicit choice, so no classifier call is
made (the same cost as a cached verdict).  A third case asks for a long stream (`cloud,long-stream`:
FRAMES text deltas, written one event at a time) to show what relaying costs per frame.

In-process, without the network: what the cloud relay's per-frame work costs (cutting each read into
frames, parsing each frame, the grammar check; proxy.cloud.CloudStream) on the long stream and on the
78 KB case's short answer, against the byte scan the relay did before; and what forwarding the body
costs (proxy.cloud.cloud_payload, the parsed body re-serialised) against the splice it replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-router-key"

# The short answer every case but the long stream gets.
EVENTS = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_bench","type":"message",'
    b'"role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":10,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"ok"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"output_tokens":1}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def long_events(n: int) -> list[bytes]:
    """The short answer with N text deltas of 40 characters instead of one: one item per frame."""
    frames = [f + b"\n\n" for f in EVENTS.split(b"\n\n")[:-1]]
    delta = frames[2].replace(b'"text":"ok"', b'"text":"some streamed text, forty bytes long. "')
    return frames[:2] + [delta] * n + frames[3:]


# Argv: port, file of the short answer, file of the long stream (frames joined).  The long stream is
# written one event at a time, as LiteLLM sends them.
UPSTREAM_CODE = r"""
import sys
from pathlib import Path
from aiohttp import web

EVENTS = Path(sys.argv[2]).read_bytes()
LONG = [f + b"\n\n" for f in Path(sys.argv[3]).read_bytes().split(b"\n\n")[:-1]]

async def messages(request):
    raw = await request.read()
    if b'"long-stream"' not in raw[:200]:
        return web.Response(body=EVENTS, content_type="text/event-stream")
    out = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await out.prepare(request)
    for frame in LONG:
        await out.write(frame)
    await out.write_eof()
    return out

app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/v1/messages", messages)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


# The least any aiohttp proxy can cost: read the body, POST it upstream on a pooled connection,
# relay the answer.  Measured in the same run, it shows how much of Switchyard's added latency is the
# HTTP stack itself rather than routing.
FLOOR_CODE = r"""
import asyncio, sys
import aiohttp
from aiohttp import web
try:
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
except ImportError:
    pass
UP = "http://127.0.0.1:%s/v1/messages" % sys.argv[2]

async def handler(request):
    raw = await request.read()
    async with request.app["s"].post(UP, data=raw, headers={"content-type": "application/json"}) as r:
        out = web.StreamResponse(status=r.status, headers={"content-type": r.headers.get("content-type", "")})
        await out.prepare(request)
        async for chunk in r.content.iter_any():
            await out.write(chunk)
        await out.write_eof()
        return out

async def ctx(app):
    app["s"] = aiohttp.ClientSession()
    yield
    await app["s"].close()

app = web.Application(client_max_size=64 * 1024 * 1024)
app.cleanup_ctx.append(ctx)
app.router.add_post("/v1/messages", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_switchyard(
    tmp: Path, port: int, *, local_url: str, cloud_url: str, local_extra: str = ""
) -> subprocess.Popen[bytes]:
    """`python -m proxy serve` with a minimal config in TMP, as its own process (LOCAL_EXTRA: more
    [local] lines)."""
    config = tmp / "config.toml"
    config.write_text(
        f"""
[listen]
port = {port}
pidfile = "{tmp / "switchyard.pid"}"
[local]
base_url = "{local_url}"
model = "local-model"
max_output_tokens = 8192
{local_extra}
[cloud]
base_url = "{cloud_url}"
simple_model = "cloud-simple"
complex_model = "cloud-complex"
[log]
decisions = "{tmp / "decisions.jsonl"}"
"""
    )
    env = {**os.environ, "SWITCHYARD_ROUTER_KEY": KEY, "SWITCHYARD_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config)], cwd=REPO, env=env)


CAPTURED = REPO / "tests" / "data" / "claude_code_turn1.json"


def load_bodies() -> dict[str, dict[str, Any]]:
    big = json.loads(CAPTURED.read_text())
    big["model"] = "cloud"
    small = {
        "model": "cloud",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "Say ok."}],
    }
    return {"claude-code-78k": big, "small": small, "long-stream": {**small, "model": "cloud,long-stream"}}


# ----- in-process: the cloud relay's per-frame work, and forwarding the body ---------------------------
_USAGE_RE = (re.compile(rb'"input_tokens"\s*:\s*(\d+)'), re.compile(rb'"output_tokens"\s*:\s*(\d+)'))


def scan_relay(chunks: list[bytes]) -> None:
    """What the relay did per read before the grammar check: a byte scan for usage and the end."""
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        for pattern in _USAGE_RE:
            for _ in pattern.finditer(window):
                pass
        _ = b"message_stop" in window or b"event: error" in window
        tail = window[-96:]


def checked_relay(chunks: list[bytes]) -> None:
    from proxy.cloud import CloudStream

    cs = CloudStream()
    for chunk in chunks:
        cs.feed(chunk)
    assert cs.grammar.ended and cs.violation is None


def _best_us(fn: Any, arg: Any, repeat: int) -> float:
    """Best of REPEAT runs, in microseconds: the least-disturbed run on a shared machine."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - t0)
    return best * 1e6


def _reads(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def relay_microbench(frames: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    long_frames = long_events(frames)
    long_stream = b"".join(long_frames)
    short = EVENTS
    out: dict[str, Any] = {"long_stream_frames": frames + 5, "long_stream_bytes": len(long_stream)}
    cases = {
        "long stream, one read per frame": long_frames,
        "long stream, 16 KB reads": _reads(long_stream, 16384),
        "78 KB case's answer (6 frames, one read)": [short],
    }
    for name, chunks in cases.items():
        n = short.count(b"\n\n") if chunks == [short] else frames + 5
        repeat = 200 if chunks == [short] else 20
        checked = _best_us(checked_relay, chunks, repeat)
        scanned = _best_us(scan_relay, chunks, repeat)
        out[name] = {
            "checked_us_total": round(checked, 1),
            "checked_us_per_frame": round(checked / n, 2),
            "before_scan_us_per_frame": round(scanned / n, 2),
            "added_us_per_frame": round((checked - scanned) / n, 2),
        }
    return out


def _splice(raw: bytes, model: str) -> bytes:
    """The splice cloud_payload replaced: the client's bytes with the leading model value swapped."""
    m = re.match(rb'^\s*\{\s*"model"\s*:\s*"(?:[^"\\]|\\.)*"', raw)
    assert m is not None
    return b'{"model":' + json.dumps(model).encode() + raw[m.end() :]


def payload_microbench() -> dict[str, Any]:
    import orjson

    from proxy.cloud import cloud_payload

    raw = CAPTURED.read_bytes()
    body = orjson.loads(raw)
    reserialise = _best_us(lambda b: [cloud_payload(b, "cloud-complex") for _ in range(100)], body, 30) / 100
    splice = _best_us(lambda r: [_splice(r, "cloud-complex") for _ in range(100)], raw, 30) / 100
    parse = _best_us(lambda r: [orjson.loads(r) for _ in range(100)], raw, 30) / 100
    return {
        "body_bytes": len(raw),
        "reserialise_ms": round(reserialise / 1000, 4),
        "splice_ms": round(splice / 1000, 4),
        "added_ms": round((reserialise - splice) / 1000, 4),
        "parse_for_reference_ms": round(parse / 1000, 4),
    }


async def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


async def one(session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    async with session.post(url, data=payload, headers=headers) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url} answered {r.status}")
    return (time.perf_counter() - t0) * 1000


async def latency(url: str, payload: bytes, headers: dict[str, str], n: int) -> list[float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
        for _ in range(20):  # warm up connections and caches
            await one(s, url, payload, headers)
        return [await one(s, url, payload, headers) for _ in range(n)]


async def interleaved(urls: list[str], payload: bytes, headers: dict[str, str], n: int) -> list[list[float]]:
    """Latencies for each URL, measured in turns (A, B, C, A, B, C, ...) so that drift in the
    machine's speed during the run affects every target alike."""
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for _ in urls]
    try:
        for s, url in zip(sessions, urls, strict=True):
            for _ in range(20):
                await one(s, url, payload, headers)
        out: list[list[float]] = [[] for _ in urls]
        for _ in range(n):
            for i, (s, url) in enumerate(zip(sessions, urls, strict=True)):
                out[i].append(await one(s, url, payload, headers))
        return out
    finally:
        for s in sessions:
            await s.close()


async def interleaved_pairs(
    targets: list[tuple[str, bytes]], headers: dict[str, str], n: int
) -> list[list[float]]:
    """Like interleaved(), with a payload of its own for each URL."""
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for _ in targets]
    try:
        for s, (url, payload) in zip(sessions, targets, strict=True):
            for _ in range(5):
                await one(s, url, payload, headers)
        out: list[list[float]] = [[] for _ in targets]
        for _ in range(n):
            for i, (s, (url, payload)) in enumerate(zip(sessions, targets, strict=True)):
                out[i].append(await one(s, url, payload, headers))
        return out
    finally:
        for s in sessions:
            await s.close()


async def throughput(url: str, payload: bytes, headers: dict[str, str], n: int, conc: int) -> tuple[float, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:
        for _ in range(conc):
            await one(s, url, payload, headers)
        queue = list(range(n))
        times: list[float] = []

        async def worker() -> None:
            while queue:
                queue.pop()
                times.append(await one(s, url, payload, headers))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        elapsed = time.perf_counter() - t0
    return n / elapsed, statistics.median(times)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p50(xs: list[float]) -> float:
    return statistics.median(xs)


async def run(n: int, frames: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    up_port, sy_port, floor_port = free_port(), free_port(), free_port()
    # Started once, before any timing: blocking here costs nothing that is measured.
    (tmp / "short.sse").write_bytes(EVENTS)
    (tmp / "long.sse").write_bytes(b"".join(long_events(frames)))
    up_args = [str(up_port), str(tmp / "short.sse"), str(tmp / "long.sse")]
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM_CODE, *up_args])  # noqa: ASYNC220
    proxy = start_switchyard(tmp, sy_port, local_url="http://127.0.0.1:9/v1", cloud_url=f"http://127.0.0.1:{up_port}")
    floor = subprocess.Popen([sys.executable, "-c", FLOOR_CODE, str(floor_port), str(up_port)])  # noqa: ASYNC220
    results: dict[str, Any] = {"requests_per_case": n, "cases": {}}
    try:
        await wait_port(up_port)
        await wait_port(sy_port)
        await wait_port(floor_port)
        headers = {"content-type": "application/json", "x-api-key": KEY, "anthropic-version": "2023-06-01"}
        for name, body in load_bodies().items():
            payload = json.dumps(body).encode()
            direct_url = f"http://127.0.0.1:{up_port}/v1/messages"
            proxy_url = f"http://127.0.0.1:{sy_port}/v1/messages"
            floor_url = f"http://127.0.0.1:{floor_port}/v1/messages"
            if name == "long-stream":
                # Direct, the stand-in gets the model name Switchyard would send it.
                direct = json.dumps({**body, "model": "long-stream"}).encode()
                lat = await interleaved_pairs([(direct_url, direct), (proxy_url, payload)], headers, max(20, n // 10))
                d_lat, p_lat = lat
                added = p50(p_lat) - p50(d_lat)
                results["cases"][name] = {
                    "frames": frames + 5,
                    "direct_p50_ms": round(p50(d_lat), 3),
                    "switchyard_p50_ms": round(p50(p_lat), 3),
                    "added_p50_ms": round(added, 3),
                    "added_per_frame_us": round(added * 1000 / (frames + 5), 2),
                }
                continue
            d_lat, p_lat, f_lat = await interleaved([direct_url, proxy_url, floor_url], payload, headers, n)
            d_rps, _ = await throughput(direct_url, payload, headers, n, 8)
            p_rps, p_c8_p50 = await throughput(proxy_url, payload, headers, n, 8)
            d16, _ = await throughput(direct_url, payload, headers, n, 16)
            p16, _ = await throughput(proxy_url, payload, headers, n, 16)
            results["cases"][name] = {
                "body_bytes": len(payload),
                "direct_p50_ms": round(p50(d_lat), 3),
                "switchyard_p50_ms": round(p50(p_lat), 3),
                "added_p50_ms": round(p50(p_lat) - p50(d_lat), 3),
                "bare_aiohttp_proxy_added_p50_ms": round(p50(f_lat) - p50(d_lat), 3),
                "direct_rps_c8": round(d_rps),
                "switchyard_rps_c8": round(p_rps),
                "switchyard_p50_ms_c8": round(p_c8_p50, 3),
                "direct_rps_c16": round(d16),
                "switchyard_rps_c16": round(p16),
            }
        results["switchyard_rss_mb_after"] = round(rss_mb(proxy.pid), 1)
    finally:
        for p in (proxy, upstream, floor):
            p.send_signal(signal.SIGTERM)
        for p in (proxy, upstream, floor):
            p.wait(20)
    return results


def emit(results: dict[str, Any], json_path: Path | None) -> None:
    """Print the results, and also write them to JSON_PATH when given."""
    text = json.dumps(results, indent=2)
    print(text)
    if json_path:
        json_path.write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement (default 400)")
    parser.add_argument("--frames", type=int, default=2000, help="text deltas in the long stream (default 2000)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    results = asyncio.run(run(args.requests, args.frames))
    results["cloud_relay_per_frame"] = relay_microbench(args.frames)
    results["cloud_payload_78k"] = payload_microbench()
    emit(results, args.json)


if __name__ == "__main__":
    main()
