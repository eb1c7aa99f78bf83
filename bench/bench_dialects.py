"""The two local dialects side by side, and what checking for tool calls written as text costs.

One run, one process tree: a stand-in local server (its own process) that answers both
``/v1/chat/completions`` (OpenAI chunks) and ``/v1/messages`` (Anthropic events) with the same text
deltas; two Switchyards (`python -m proxy serve`, one with ``local.api = "openai"``, one with
``"anthropic"``) in front of it; and this load generator.  All four targets are measured in turns,
on the same real 78 KB Claude Code body with ``model: local`` (an explicit choice: no classifier).

- Added TTFT per dialect: time to the first text delta through Switchyard minus the same straight
  from the stand-in in that dialect.  The Anthropic path's extra over the OpenAI path is the
  difference of the two added figures (same body, same run).
- The hold's cost to TTFT: Switchyard holds a tools-carrying answer's text until its first
  ``HOLD_CHARS`` characters show no tool call (see ``proxy/text_tool_calls.py``).  A paced stand-in
  (one ``word `` delta every ``--pace-ms``, like a model generating) shows it in wall-clock: the same
  stream through Switchyard with the request's tools and without them.
- In-process, per chunk: the translator without the check, with it on plain text, and on an answer
  that is a tool call written as text (held to the end, then parsed and schema-checked once).

    python bench/bench_dialects.py [--requests 200] [--pace-ms 20] [--json out.json]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_local import Target, measure
from bench.bench_proxy import KEY, REPO, emit, free_port, start_switchyard, wait_port
from proxy.native_request import to_native_request
from proxy.openai_request import request_tool_names, request_tool_schemas, to_openai_request
from proxy.openai_stream import StreamTranslator
from proxy.text_tool_calls import HOLD_CHARS

LOCAL_CODE = r"""
import asyncio, json, sys
from aiohttp import web

PACE = float(sys.argv[2]) / 1000

def chunk(delta, finish=None):
    return ("data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n").encode()

def event(name, data):
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

O_ROLE = chunk({"role": "assistant", "content": ""})
O_TEXT = chunk({"content": "word "})
O_TAIL = chunk({}, "stop") + b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",' \
         b'"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}\n\ndata: [DONE]\n\n'
A_HEAD = event("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message",
               "role": "assistant", "model": "m", "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 10, "output_tokens": 0}}}) \
         + event("content_block_start", {"type": "content_block_start", "index": 0,
                 "content_block": {"type": "text", "text": ""}})
A_TEXT = event("content_block_delta", {"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": "word "}})
A_TAIL = event("content_block_stop", {"type": "content_block_stop", "index": 0}) \
         + event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                 "stop_sequence": None}, "usage": {"output_tokens": 5}}) \
         + event("message_stop", {"type": "message_stop"})

async def stream(request, head, text, tail):
    body = await request.json()
    n = int(body.get("max_tokens", 1))  # the benchmark asks for N text deltas through max_tokens
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(head)
    for _ in range(n):
        if PACE:
            await asyncio.sleep(PACE)
        await resp.write(text)
    await resp.write(tail)
    await resp.write_eof()
    return resp

async def chat(request):
    return await stream(request, O_ROLE, O_TEXT, O_TAIL)

async def messages(request):
    return await stream(request, A_HEAD, A_TEXT, A_TAIL)

async def models(request):
    return web.json_response({"data": [{"id": "local-model"}]})

app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/v1/chat/completions", chat)
app.router.add_post("/v1/messages", messages)
app.router.add_get("/v1/models", models)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def p50(values: list[tuple[float, float]], i: int = 0) -> float:
    return round(statistics.median(v[i] for v in values), 3)


def per_chunk_us(schemas: dict[str, Any], pieces: list[str]) -> float:
    """One translator over PIECES (OpenAI content deltas), finish included, per piece, in µs."""
    reps = 200
    t0 = time.perf_counter()
    for _ in range(reps):
        tr = StreamTranslator(schemas, model="m", text_tools=schemas or None)
        for p in pieces:
            tr.feed({"choices": [{"index": 0, "delta": {"content": p}}]})
        tr.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        tr.finish()
    return (time.perf_counter() - t0) / (reps * len(pieces)) * 1e6


def check_costs(schemas: dict[str, Any]) -> dict[str, float]:
    plain = ["word "] * 400
    call = json.dumps({"name": "Write", "arguments": {"file_path": "/tmp/x.py", "content": "print(1)\n" * 200}})
    as_text = [call[i : i + 5] for i in range(0, len(call), 5)]
    return {
        "translator_us_per_chunk_no_check": round(per_chunk_us({}, plain), 3),
        "translator_us_per_chunk_check_plain_text": round(per_chunk_us(schemas, plain), 3),
        "translator_us_per_chunk_tool_call_as_text": round(per_chunk_us(schemas, as_text), 3),
        "tool_call_as_text_chunks": len(as_text),
    }


async def run(n: int, pace_ms: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-bench-dialects-"))
    lp, pp, so, sa, sp = (free_port() for _ in range(5))
    procs = [
        subprocess.Popen([sys.executable, "-c", LOCAL_CODE, str(lp), "0"]),  # noqa: ASYNC220
        subprocess.Popen([sys.executable, "-c", LOCAL_CODE, str(pp), str(pace_ms)]),  # noqa: ASYNC220
    ]
    for port, api, upstream in ((so, "openai", lp), (sa, "anthropic", lp), (sp, "openai", pp)):
        (tmp / api / str(port)).mkdir(parents=True)
        procs.append(
            start_switchyard(
                tmp / api / str(port),
                port,
                local_url=f"http://127.0.0.1:{upstream}/v1",
                cloud_url="http://127.0.0.1:9",
                local_extra=f'api = "{api}"',
            )
        )
    try:
        for port in (lp, pp, so, sa, sp):
            await wait_port(port)
        body = json.loads((REPO / "tests" / "data" / "claude_code_turn1.json").read_text())
        body |= {"model": "local", "stream": True, "max_tokens": 1}
        schemas = request_tool_schemas(body)
        oa = to_openai_request(body, model="local-model", max_output_tokens=8192) | {"stream": True}
        na = to_native_request(body, model="local-model", max_output_tokens=8192) | {"stream": True}
        h1 = {"content-type": "application/json"}
        h2 = {**h1, "x-api-key": KEY}
        an = json.dumps(body).encode()
        # max_tokens 1: one delta, released at the end of the answer (shorter than the hold).
        targets: list[Target] = [
            (f"http://127.0.0.1:{lp}/v1/chat/completions", json.dumps(oa).encode(), h1, b'"word '),
            (f"http://127.0.0.1:{lp}/v1/messages", json.dumps(na).encode(), h1, b"text_delta"),
            (f"http://127.0.0.1:{so}/v1/messages", an, h2, b"text_delta"),
            (f"http://127.0.0.1:{sa}/v1/messages", an, h2, b"text_delta"),
        ]
        d_oa, d_an, s_oa, s_an = await measure(targets, n)
        out: dict[str, Any] = {"requests": n, "tools": len(request_tool_names(body)), "hold_chars": HOLD_CHARS}
        out |= {
            "direct_openai_ttft_p50_ms": p50(d_oa),
            "direct_anthropic_ttft_p50_ms": p50(d_an),
            "switchyard_openai_ttft_p50_ms": p50(s_oa),
            "switchyard_anthropic_ttft_p50_ms": p50(s_an),
        }
        out["added_ttft_openai_ms"] = round(out["switchyard_openai_ttft_p50_ms"] - out["direct_openai_ttft_p50_ms"], 3)
        out["added_ttft_anthropic_ms"] = round(
            out["switchyard_anthropic_ttft_p50_ms"] - out["direct_anthropic_ttft_p50_ms"], 3
        )
        out["anthropic_minus_openai_added_ms"] = round(out["added_ttft_anthropic_ms"] - out["added_ttft_openai_ms"], 3)
        # The hold, on a paced stream of 100 deltas of 5 characters: with the tools, and without.
        small = {"model": "local", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        with_tools = {**small, "tools": body["tools"]}
        paced: list[Target] = [
            (f"http://127.0.0.1:{sp}/v1/messages", json.dumps(small).encode(), h2, b"text_delta"),
            (f"http://127.0.0.1:{sp}/v1/messages", json.dumps(with_tools).encode(), h2, b"text_delta"),
        ]
        no_hold, hold = await measure(paced, max(10, n // 20))
        out["paced_ms_per_delta"] = pace_ms
        out["paced_ttft_no_tools_p50_ms"] = p50(no_hold)
        out["paced_ttft_with_tools_p50_ms"] = p50(hold)
        out["hold_cost_ttft_ms"] = round(out["paced_ttft_with_tools_p50_ms"] - out["paced_ttft_no_tools_p50_ms"], 3)
        out["hold_deltas"] = -(-HOLD_CHARS // len("word "))
        out |= check_costs(schemas)
        return out
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--pace-ms", type=float, default=20.0, help="pause between deltas of the paced stand-in")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    emit(asyncio.run(run(args.requests, args.pace_ms)), args.json)


if __name__ == "__main__":
    main()
