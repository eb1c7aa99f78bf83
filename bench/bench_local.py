"""Switchyard's added time to first token on the local path, and the cost of relaying a chunk.

One run, one process tree: a stand-in OpenAI-compatible local server (its own process) that streams
a role chunk, then N text chunks, then finish and usage chunks; Switchyard (`python -m proxy serve`,
its own process) in front of it; and this load generator.

- TTFT: the time from sending the request to the first text delta, directly from the stand-in (the
  OpenAI body Switchyard would send) and through Switchyard (the real 78 KB Claude Code body with
  `model: local`, an explicit choice, so no classifier call).
- Per-chunk relay cost: (total time through Switchyard − total time direct) / N over a long stream,
  and, in-process, the translator alone (decode + translate + encode) per chunk.

    python bench/bench_local.py [--requests 300] [--chunks 400] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_proxy import KEY, REPO, free_port, start_switchyard, wait_port
from proxy.openai_request import request_tool_names, to_openai_request
from proxy.openai_stream import StreamTranslator
from proxy.sse import SSEDecoder, encode_event

LOCAL_CODE = r"""
import json, sys
from aiohttp import web

def chunk(delta, finish=None):
    return ("data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n").encode()

ROLE = chunk({"role": "assistant", "content": ""})
TEXT = chunk({"content": "word "})
TAIL = chunk({}, "stop") + b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":[],' \
       b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}\n\ndata: [DONE]\n\n'

async def chat(request):
    body = await request.json()
    n = int(body.get("max_tokens", 1))  # the benchmark asks for N text chunks through max_tokens
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(ROLE)
    for _ in range(n):
        await resp.write(TEXT)
    await resp.write(TAIL)
    await resp.write_eof()
    return resp

async def models(request):
    return web.json_response({"data": [{"id": "local-model"}]})

app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/v1/chat/completions", chat)
app.router.add_get("/v1/models", models)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def ttft_and_total(
    session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict[str, str], marker: bytes
) -> tuple[float, float]:
    t0 = time.perf_counter()
    first = None
    async with session.post(url, data=payload, headers=headers) as r:
        if r.status != 200:
            raise RuntimeError(f"{url} answered {r.status}: {await r.text()}")
        seen = b""
        async for chunk in r.content.iter_any():
            if first is None:
                seen = (seen + chunk)[-4096:]
                if marker in seen:
                    first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None, "no content seen"
    return (first - t0) * 1000, (end - t0) * 1000


Target = tuple[str, bytes, dict[str, str], bytes]  # url, payload, headers, first-content marker


async def measure(a: Target, b: Target, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(ttft, total) for two targets, measured in turns so that drift affects both alike."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as sa,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as sb,
    ):
        for _ in range(10):
            await ttft_and_total(sa, *a)
            await ttft_and_total(sb, *b)
        ra, rb = [], []
        for _ in range(n):
            ra.append(await ttft_and_total(sa, *a))
            rb.append(await ttft_and_total(sb, *b))
        return ra, rb


def translator_cost_us(chunks: int) -> float:
    """Decode + translate + encode one text chunk, in-process, in microseconds."""
    line = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}\n\n'
    )
    dec = SSEDecoder()
    tr = StreamTranslator(model="m")
    tr.feed({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "x"}}]})
    t0 = time.perf_counter()
    for _ in range(chunks):
        for ev in dec.feed(line):
            for name, data in tr.feed(json.loads(ev.data)):
                encode_event(name, data)
    return (time.perf_counter() - t0) / chunks * 1e6


async def run(n: int, chunks: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-bench-local-"))
    lp, sp = free_port(), free_port()
    # Started once, before any timing.
    local = subprocess.Popen([sys.executable, "-c", LOCAL_CODE, str(lp)])  # noqa: ASYNC220
    proxy = start_switchyard(tmp, sp, local_url=f"http://127.0.0.1:{lp}/v1", cloud_url="http://127.0.0.1:9")
    try:
        await wait_port(lp)
        await wait_port(sp)
        body = json.loads((REPO / "tests" / "data" / "claude_code_turn1.json").read_text())
        body["model"] = "local"
        body["stream"] = True
        oa = to_openai_request(body, model="local-model", max_output_tokens=8192)
        oa["stream"] = True
        direct = f"http://127.0.0.1:{lp}/v1/chat/completions"
        through = f"http://127.0.0.1:{sp}/v1/messages"
        out: dict[str, Any] = {"requests": n, "stream_chunks_long": chunks, "tools": len(request_tool_names(body))}
        body["max_tokens"] = 1
        oa["max_tokens"] = 1
        oa_payload, an_payload = json.dumps(oa).encode(), json.dumps(body).encode()
        h1 = {"content-type": "application/json"}
        h2 = {**h1, "x-api-key": KEY}
        d, p = await measure((direct, oa_payload, h1, b'"word '), (through, an_payload, h2, b"text_delta"), n)
        out["direct_ttft_p50_ms"] = round(statistics.median(x[0] for x in d), 3)
        out["switchyard_ttft_p50_ms"] = round(statistics.median(x[0] for x in p), 3)
        out["added_ttft_p50_ms"] = round(out["switchyard_ttft_p50_ms"] - out["direct_ttft_p50_ms"], 3)
        # A long stream (chunks text deltas) on a small body: the difference in total time per chunk.
        small = {
            "model": "local",
            "max_tokens": chunks,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        small_oa = to_openai_request(small, model="local-model", max_output_tokens=8192)
        small_oa["stream"] = True
        m = max(20, n // 10)
        ld, lp_ = await measure(
            (direct, json.dumps(small_oa).encode(), h1, b'"word '),
            (through, json.dumps(small).encode(), h2, b"text_delta"),
            m,
        )
        out["direct_long_total_p50_ms"] = round(statistics.median(x[1] for x in ld), 3)
        out["switchyard_long_total_p50_ms"] = round(statistics.median(x[1] for x in lp_), 3)
        extra = out["switchyard_long_total_p50_ms"] - out["direct_long_total_p50_ms"] - out["added_ttft_p50_ms"]
        out["relay_ms_per_chunk"] = round(max(extra, 0.0) / chunks, 4)
        out["translator_us_per_chunk"] = round(translator_cost_us(20000), 2)
        return out
    finally:
        for proc in (proxy, local):
            proc.send_signal(signal.SIGTERM)
        for proc in (proxy, local):
            proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=400)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = asyncio.run(run(args.requests, args.chunks))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
