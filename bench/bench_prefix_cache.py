"""Does the local server's prefix cache survive Switchyard?  Per request of a real Claude Code session.

Replays the 9-request session captured from the real Claude Code CLI (tests/data/claude_code_session.json:
three `claude -p` runs — tool steps, a `--continue` turn, a `--continue --permission-mode plan` turn
whose plan-mode notice arrives as a mid-conversation system message) through Switchyard
(`python -m proxy serve`, its own process, `model: local` so it answers locally) to a real
llama-server (built by .ci/llama.sh) serving SmolLM2-135M with Qwen2.5's chat template, which takes
the 24 tool definitions and renders them after the system text, as Qwen models do.  The model's
context is stretched to 32K with --override-kv: the answers are nonsense, the prompt work is real.

For each request it prints what llama-server reported through Switchyard's decision log
(``input_tokens`` = prompt tokens, ``cached_tokens`` = taken from the prefix cache, ``prefill_ms``),
in three runs of the same process tree, each against a freshly started server:

- ``switchyard``: the requests one after another, as Claude Code sends them;
- ``switchyard+classifier``: the same, with the classifier request the proxy sends at a new user turn
  (the same compact view and prompt, through proxy.classifier) before every request;
- ``baseline``: the translation before this change, which merged every mid-conversation system
  message into the leading system prompt (the request bodies are rewritten that way before sending).

    python bench/bench_prefix_cache.py [--json out.json] [--runs switchyard,baseline] [--first 5]

``--first 5`` starts at the first request of the second `claude -p` run (Claude Code itself changes its
system prompt there, so the server evaluates it afresh anyway): one long prefill per run instead of two.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_proxy import KEY, REPO, emit, free_port, start_switchyard, wait_port
from proxy.classifier import classify, compact_view
from proxy.classify_prompt import DEFAULT_PROMPT
from proxy.config import LocalConfig, RoutingConfig
from proxy.conversation import extract_facts
from tests.llama_server import LlamaOptions, find_llama, qwen_template, start_llama_server

SESSION = REPO / "tests" / "data" / "claude_code_session.json"
RUNS = ("switchyard", "switchyard+classifier", "baseline")


def session_bodies() -> list[dict[str, Any]]:
    return [r["body"] for r in json.loads(SESSION.read_text())["requests"]]


def merged_system_messages(body: dict[str, Any]) -> dict[str, Any]:
    """The old translation's effect: every role:"system" message moved into the leading system prompt."""
    out = dict(body)
    notes = [m for m in body["messages"] if m.get("role") == "system"]
    out["messages"] = [m for m in body["messages"] if m.get("role") != "system"]
    texts = [m["content"] if isinstance(m["content"], str) else "".join(b.get("text", "") for b in m["content"])
             for m in notes]
    out["system"] = [*body["system"], *({"type": "text", "text": t} for t in texts)]
    return out


async def send(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    payload = {**body, "model": "local", "max_tokens": 8, "stream": True}
    headers = {"x-api-key": KEY, "content-type": "application/json", "anthropic-version": "2023-06-01"}
    async with session.post(f"{url}/v1/messages", json=payload, headers=headers) as resp:
        await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"Switchyard answered {resp.status}")


def records(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


async def last_record(log: Path, n: int, timeout: float = 30.0) -> dict[str, Any]:
    """The Nth decision record (written as the request ends, a moment after the client's last byte)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        lines = records(log)
        if len(lines) >= n:
            break
        if loop.time() > deadline:
            raise RuntimeError(f"expected {n} decision records, found {len(lines)}")
        await asyncio.sleep(0.05)
    rec: dict[str, Any] = json.loads(lines[n - 1])
    if rec["route"] != "local" or rec["fallback"]:
        raise RuntimeError(f"request {n} was not answered locally: {rec}")
    return rec


async def one_run(name: str, binary: str, model: str, tmp: Path, first: int = 1) -> list[dict[str, Any]]:
    options = LlamaOptions(
        ctx=32768, parallel=1, chat_template_file=qwen_template(),
        extra=("--override-kv", "llama.context_length=int:32768"),
    )
    llama = start_llama_server(binary, model, options, tmp / name)
    port = free_port()
    run_dir = tmp / f"{name}-switchyard"
    run_dir.mkdir()
    # A 19,000-token first prompt takes minutes on a CPU: no first-token timeout may cut it short.
    proxy = start_switchyard(
        run_dir, port, local_url=llama.v1_url, cloud_url="http://127.0.0.1:9",
        local_extra="first_token_timeout_s = 3600.0\nread_timeout_s = 3600.0",
    )
    rows: list[dict[str, Any]] = []
    try:
        await wait_port(port)
        url = f"http://127.0.0.1:{port}"
        local = LocalConfig(base_url=llama.v1_url, model=llama.model)
        routing = RoutingConfig(classify_max_tokens=16, classify_timeout_s=600)
        timeout = aiohttp.ClientTimeout(total=3600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            bodies = session_bodies()[first - 1 :]
            for n, body in enumerate(bodies, first):
                if name == "baseline":
                    body = merged_system_messages(body)
                classify_ms = None
                if name == "switchyard+classifier":
                    facts = extract_facts(body, {}, 0)
                    verdict = await classify(session, local, routing, DEFAULT_PROMPT, compact_view(facts), "")
                    classify_ms = round(verdict.elapsed_ms)
                await send(session, url, body)
                rec = await last_record(run_dir / "decisions.jsonl", n - first + 1)
                prompt, cached = rec["input_tokens"], rec["cached_tokens"] or 0
                rows.append({
                    "request": n,
                    "prompt_tokens": prompt,
                    "cached_tokens": cached,
                    "cached_share": round(cached / prompt, 4) if prompt else None,
                    "prefill_ms": rec["prefill_ms"],
                    "classify_ms": classify_ms,
                })
                print(f"{name:22} request {n}: {prompt:>6} prompt tokens, {cached:>6} from cache "
                      f"({rows[-1]['cached_share']:.1%}), prefill {rec['prefill_ms']:>9.0f} ms", flush=True)
    finally:
        proxy.terminate()
        proxy.wait(10)
        llama.stop()
    return rows


async def run(runs: list[str], first: int = 1) -> dict[str, Any]:
    binary, model = find_llama(os.environ)
    if not binary or not model:
        raise SystemExit("llama-server or the model not found: run `bash .ci/llama.sh` first")
    results: dict[str, Any] = {"session": str(SESSION.relative_to(REPO)), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in runs:
            results["runs"][name] = await one_run(name, binary, model, Path(tmp), first)
    for name, rows in results["runs"].items():
        # Request 5 starts the second `claude -p` run, where Claude Code changed its own system prompt.
        pairs = [(a, b) for a, b in itertools.pairwise(rows) if b["request"] != 5]
        results.setdefault("summary", {})[name] = {
            "min_cached_share_after_first": min(b["cached_share"] for _, b in pairs),
            # Of the previous request's prompt, how much the server reused (1.0: all of it; the rest of
            # a prompt is the new tail, e.g. the ~1,100-token plan-mode notice of request 8).
            "min_previous_prompt_reused": min(round(b["cached_tokens"] / a["prompt_tokens"], 4) for a, b in pairs),
            "total_prefill_ms": round(sum(r["prefill_ms"] for r in rows)),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, from {', '.join(RUNS)}")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--first", type=int, default=1, help="start at this request of the session (1-9)")
    args = parser.parse_args()
    runs = [r for r in args.runs.split(",") if r]
    unknown = set(runs) - set(RUNS)
    if unknown:
        parser.error(f"unknown run(s): {', '.join(sorted(unknown))}")
    emit(asyncio.run(run(runs, args.first)), args.json)


if __name__ == "__main__":
    main()
