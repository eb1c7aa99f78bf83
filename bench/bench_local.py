"""Switchyard's added time to first token on the local path, and the cost of relaying a chunk.

One run, one process tree: a stand-in OpenAI-compatible local server (its own process) that streams
a role chunk, then N text chunks, then finish and usage chunks; Switchyard (`python -m proxy serve`,
its own process) in front of it; and this load generator.

- TTFT: the time from sending the request to the first text delta, directly from the stand-in (the
  OpenAI body Switchyard would send) and through Switchyard (the real 78 KB Claude Code body with
  `model: local`, an explicit choice, so no classifier call).
- Per-chunk relay cost: (total time through Switchyard − total time direct) / N over a long stream,
  and, in-process, the translator alone (decode + translate + encode) per chunk.

With --compare-ccr, Claude Code Router (pinned, installed from npm into .ci-cache/ccr) also runs, as
its own process group with a private HOME whose config sends everything to the same stand-in, and is
measured in the same turns as Switchyard, on the same body and key; both routers' RSS is reported.

    python bench/bench_local.py [--requests 300] [--chunks 400] [--json out.json] [--compare-ccr]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_proxy import KEY, REPO, emit, free_port, rss_mb, start_switchyard, wait_port
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


async def measure(targets: list[Target], n: int) -> list[list[tuple[float, float]]]:
    """(ttft, total) for each target, measured in turns so that drift affects all alike."""
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)))
            for _ in targets
        ]
        for _ in range(10):
            for s, t in zip(sessions, targets, strict=True):
                await ttft_and_total(s, *t)
        out: list[list[tuple[float, float]]] = [[] for _ in targets]
        for _ in range(n):
            for i, (s, t) in enumerate(zip(sessions, targets, strict=True)):
                out[i].append(await ttft_and_total(s, *t))
        return out


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


# Claude Code Router, for --compare-ccr.  2.0.0 is the version the field notes measured; its npm
# package bundles everything (no dependencies, no install scripts), and `ccr start` serves in the
# foreground of its own process, so it can be run and stopped as a child like Switchyard.
CCR_PACKAGE = "@musistudio/claude-code-router"
CCR_VERSION = "2.0.0"
CCR_PREFIX = REPO / ".ci-cache" / "ccr"


@dataclass(frozen=True)
class CCRInstall:
    cli: Path
    version: str


def install_ccr(prefix: Path = CCR_PREFIX, version: str = CCR_VERSION) -> CCRInstall:
    """The pinned CCR under PREFIX, installed from npm unless already there."""
    pkg = prefix / "node_modules" / Path(CCR_PACKAGE) / "package.json"

    def installed() -> str | None:
        try:
            found: str = json.loads(pkg.read_text())["version"]
        except (OSError, ValueError, KeyError):
            return None
        return found

    if installed() != version:
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("--compare-ccr needs npm (and node) on PATH to install Claude Code Router; install Node.js 20+")
        prefix.mkdir(parents=True, exist_ok=True)
        cmd = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts"]
        done = subprocess.run([*cmd, f"{CCR_PACKAGE}@{version}"], capture_output=True, text=True, check=False)
        if done.returncode != 0 or installed() != version:
            sys.exit(f"npm could not install {CCR_PACKAGE}@{version} into {prefix}: {done.stderr.strip()[-2000:]}")
    return CCRInstall(cli=pkg.parent / "dist" / "cli.js", version=version)


def write_ccr_config(home: Path, port: int, upstream_port: int) -> None:
    """CCR's config (~/.claude-code-router/config.json) in a private HOME: one provider, the stand-in,
    as the default route; the same key as Switchyard; no log files (logging would be CCR's default)."""
    config = {
        "HOST": "127.0.0.1",
        "PORT": port,
        "APIKEY": KEY,
        "LOG": False,
        "NON_INTERACTIVE_MODE": True,
        "Providers": [
            {
                "name": "local",
                "api_base_url": f"http://127.0.0.1:{upstream_port}/v1/chat/completions",
                "api_key": "none",
                "models": ["local-model"],
            }
        ],
        "Router": {"default": "local,local-model"},
    }
    target = home / ".claude-code-router" / "config.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    tmp.replace(target)


def start_ccr(ccr: CCRInstall, tmp: Path, port: int, upstream_port: int) -> subprocess.Popen[bytes]:
    """`node cli.js start` with HOME and TMPDIR inside TMP (never the real ones), in its own process
    group so that stopping it takes whatever it spawned too.  Its output goes to TMP/ccr.log."""
    node = shutil.which("node")
    if node is None:
        sys.exit("--compare-ccr needs node on PATH to run Claude Code Router; install Node.js 20+")
    home, ccr_tmp = tmp / "ccr-home", tmp / "ccr-tmp"
    ccr_tmp.mkdir(parents=True, exist_ok=True)
    write_ccr_config(home, port, upstream_port)
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}  # loopback only, never through a proxy
    env = {k: v for k, v in os.environ.items() if k.lower() not in drop and not k.startswith("XDG_")}
    env |= {"HOME": str(home), "TMPDIR": str(ccr_tmp), "CI": "true"}
    with (tmp / "ccr.log").open("wb") as log:
        return subprocess.Popen(
            [node, str(ccr.cli), "start"],
            cwd=tmp,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group led by PROC; SIGKILL it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in group PGID, summed."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += rss_mb(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue  # a process that ended while we looked
    return total


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:].strip()


async def wait_ccr(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Claude Code Router exited with {proc.returncode}: {tail(log)}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"Claude Code Router did not listen on {port} within 30 s: {tail(log)}")


async def text_deltas(url: str, payload: bytes, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as s, s.post(url, data=payload, headers=headers) as r:
        return (await r.read()).count(b'"text_delta"')


async def run(n: int, chunks: int, ccr: CCRInstall | None = None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-bench-local-"))
    lp, sp = free_port(), free_port()
    # Started once, before any timing.
    local = subprocess.Popen([sys.executable, "-c", LOCAL_CODE, str(lp)])  # noqa: ASYNC220
    proxy = start_switchyard(tmp, sp, local_url=f"http://127.0.0.1:{lp}/v1", cloud_url="http://127.0.0.1:9")
    cp = free_port() if ccr else 0  # without --compare-ccr nothing below touches it
    router = start_ccr(ccr, tmp, cp, lp) if ccr else None
    try:
        await wait_port(lp)
        await wait_port(sp)
        if router:
            await wait_ccr(router, cp, tmp / "ccr.log")
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
        # CCR gets the same Anthropic body and key as Switchyard (its APIKEY is set to KEY).
        via_ccr = f"http://127.0.0.1:{cp}/v1/messages"
        targets: list[Target] = [(direct, oa_payload, h1, b'"word '), (through, an_payload, h2, b"text_delta")]
        if router:
            targets.append((via_ccr, an_payload, h2, b"text_delta"))
        d, p, *c = await measure(targets, n)
        out["direct_ttft_p50_ms"] = round(statistics.median(x[0] for x in d), 3)
        out["switchyard_ttft_p50_ms"] = round(statistics.median(x[0] for x in p), 3)
        out["added_ttft_p50_ms"] = round(out["switchyard_ttft_p50_ms"] - out["direct_ttft_p50_ms"], 3)
        if router and ccr:
            out["ccr_version"] = ccr.version
            out["ccr_ttft_p50_ms"] = round(statistics.median(x[0] for x in c[0]), 3)
            out["ccr_added_ttft_p50_ms"] = round(out["ccr_ttft_p50_ms"] - out["direct_ttft_p50_ms"], 3)
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
        long_targets: list[Target] = [
            (direct, json.dumps(small_oa).encode(), h1, b'"word '),
            (through, json.dumps(small).encode(), h2, b"text_delta"),
        ]
        if router:
            # The comparison holds only if CCR relays the whole stream (it could cap max_tokens).
            got = await text_deltas(via_ccr, json.dumps(small).encode(), h2)
            if got != chunks:
                raise RuntimeError(f"Claude Code Router relayed {got} text deltas of {chunks}")
            long_targets.append((via_ccr, json.dumps(small).encode(), h2, b"text_delta"))
        ld, lp_, *lc = await measure(long_targets, m)
        out["direct_long_total_p50_ms"] = round(statistics.median(x[1] for x in ld), 3)
        out["switchyard_long_total_p50_ms"] = round(statistics.median(x[1] for x in lp_), 3)
        extra = out["switchyard_long_total_p50_ms"] - out["direct_long_total_p50_ms"] - out["added_ttft_p50_ms"]
        out["relay_ms_per_chunk"] = round(max(extra, 0.0) / chunks, 4)
        if router:
            out["ccr_long_total_p50_ms"] = round(statistics.median(x[1] for x in lc[0]), 3)
            out["switchyard_rss_mb"] = round(rss_mb(proxy.pid), 1)
            out["ccr_rss_mb"] = round(group_rss_mb(router.pid), 1)
        out["translator_us_per_chunk"] = round(translator_cost_us(20000), 2)
        return out
    finally:
        if router:
            stop_group(router)
        for proc in (proxy, local):
            proc.send_signal(signal.SIGTERM)
        for proc in (proxy, local):
            proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=400)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--compare-ccr",
        action="store_true",
        help=f"also install Claude Code Router {CCR_VERSION} from npm (into .ci-cache/ccr) and measure it alike",
    )
    args = parser.parse_args()
    # Installed before anything starts, so npm's time and traffic never overlap a measurement.
    ccr = install_ccr() if args.compare_ccr else None
    emit(asyncio.run(run(args.requests, args.chunks, ccr)), args.json)


if __name__ == "__main__":
    main()
