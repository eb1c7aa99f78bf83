"""Switchyard's added latency and throughput on the path with no classification call.

One run, one process tree: a stand-in Anthropic upstream (its own process), Switchyard (`python -m
proxy serve`, its own process) forwarding to it, and this load generator.  Each case is measured
direct-to-upstream and through Switchyard, so the figures are differences and ratios measured side
by side, not absolute numbers from different machines.

    python bench/bench_proxy.py [--requests 400] [--json out.json]

Bodies: the real 78 KB first-turn request captured from Claude Code (tests/data/claude_code_turn1.json,
24 tools) and a small one.  The model is set to `cloud`, an explicit choice, so no classifier call is
made (the same cost as a cached verdict).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

UPSTREAM_CODE = r"""
import sys
from aiohttp import web

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

async def messages(request):
    await request.read()
    return web.Response(body=EVENTS, content_type="text/event-stream")

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


def load_bodies() -> dict[str, dict[str, Any]]:
    captured = REPO / "tests" / "data" / "claude_code_turn1.json"
    big = json.loads(captured.read_text())
    big["model"] = "cloud"
    small = {
        "model": "cloud",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "Say ok."}],
    }
    return {"claude-code-78k": big, "small": small}


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


async def run(n: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    up_port, sy_port, floor_port = free_port(), free_port(), free_port()
    # Started once, before any timing: blocking here costs nothing that is measured.
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM_CODE, str(up_port)])  # noqa: ASYNC220
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
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    emit(asyncio.run(run(args.requests)), args.json)


if __name__ == "__main__":
    main()
