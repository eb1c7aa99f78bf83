"""Switchyard's resident memory under local-path load: where it levels off at a given concurrency.

One process tree, as in bench_local: the stand-in local server (its own process) streaming a short
answer, Switchyard (`python -m proxy serve`), and this load generator sending the real 78 KB Claude
Code body with `model: local` and `stream: true` from C concurrent clients.  RSS is sampled twice a
second; the figure that matters is where it levels off (the README's target: 64 MB at C = 50).

    python bench/bench_memory.py [--concurrency 50] [--requests 3000] [--chunks 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_local import LOCAL_CODE
from bench.bench_proxy import KEY, REPO, emit, free_port, rss_mb, start_switchyard, wait_port


def local_body(chunks: int) -> bytes:
    body = json.loads((REPO / "tests" / "data" / "claude_code_turn1.json").read_text())
    # The stand-in streams as many text chunks as max_tokens asks for.
    body.update(model="local", stream=True, max_tokens=chunks)
    return json.dumps(body).encode()


async def load(url: str, payload: bytes, total: int, concurrency: int, pid: int) -> tuple[float, list[float]]:
    """Send ``total`` requests from ``concurrency`` clients; returns (requests/s, RSS samples in MB)."""
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    sent = 0
    finished = False
    samples: list[float] = []

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while sent < total:
            sent += 1
            async with session.post(url, data=payload, headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"Switchyard answered {r.status}: {await r.text()}")
                await r.read()

    async def sampler() -> None:
        while not finished:
            samples.append(rss_mb(pid))
            await asyncio.sleep(0.5)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        watch = asyncio.create_task(sampler())
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        finished = True
        await watch
    return total / elapsed, samples


async def run(concurrency: int, total: int, chunks: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    local_port, sy_port = free_port(), free_port()
    local = subprocess.Popen([sys.executable, "-c", LOCAL_CODE, str(local_port)])  # noqa: ASYNC220
    proxy = start_switchyard(tmp, sy_port, local_url=f"http://127.0.0.1:{local_port}/v1", cloud_url="http://127.0.0.1:9")
    try:
        await wait_port(local_port)
        await wait_port(sy_port)
        await asyncio.sleep(1)  # the start-up capability probe is done
        idle = rss_mb(proxy.pid)
        url = f"http://127.0.0.1:{sy_port}/v1/messages"
        rps, samples = await load(url, local_body(chunks), total, concurrency, proxy.pid)
        # The second half of the run: where the figure has levelled off.
        tail = samples[len(samples) // 2 :] or samples
        return {
            "concurrency": concurrency,
            "requests": total,
            "requests_per_s": round(rps),
            "rss_mb_idle": round(idle, 1),
            "rss_mb_max": round(max(samples), 1),
            "rss_mb_level": round(sum(tail) / len(tail), 1),
            "rss_mb_after": round(rss_mb(proxy.pid), 1),
        }
    finally:
        for p in (proxy, local):
            p.send_signal(signal.SIGTERM)
        for p in (proxy, local):
            p.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--requests", type=int, default=3000, help="requests in all (default 3000)")
    parser.add_argument("--chunks", type=int, default=20, help="text chunks per answer (default 20)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    emit(asyncio.run(run(args.concurrency, args.requests, args.chunks)), args.json)


if __name__ == "__main__":
    main()
