"""What the classifier's early stop saves: classify latency, hanging up at the verdict versus reading
the whole reply, against a stand-in that talks on after its verdict the way a small model does.

One process: a stand-in OpenAI-compatible server (tests/standins) streams a short reasoning line, the
bare verdict line, then ``--after`` more tokens, one every 1/``--rate`` s (SmolLM2 on 2 threads: about
150 tokens/s), then finishes.  Both ways run in alternation on the same server; the figure that
matters is the ratio, not the absolute times.  Real-server figures: ``switchyard eval --whole-reply``.

    python bench/bench_classify.py [--requests 20] [--after 240] [--rate 150] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.classifier import classify, view_for_prompt
from proxy.classify_prompt import DEFAULT_PROMPT
from tests.proxy_harness import make_config
from tests.standins import OpenAILocal
from tests.standins.openai_local import ChunkReply, chat_chunks


async def measure(srv: OpenAILocal, requests: int, after: int, rate: float) -> dict[str, list[float]]:
    reply = ChunkReply(
        chat_chunks(text="A one-file rename.\nSIMPLE\n" + " more" * after, piece=5), delay=1.0 / rate
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(Path(tmp), local_url=srv.v1_url, routing={"classify_timeout_s": 120.0})
    out: dict[str, list[float]] = {"early": [], "whole": []}
    async with aiohttp.ClientSession() as session:
        for _ in range(requests):
            for way in ("early", "whole"):
                srv.script_classifier(reply)
                res = await classify(session, cfg.local, cfg.routing, DEFAULT_PROMPT, view_for_prompt("rename x"),
                                     "", early_stop=way == "early")
                assert res.verdict == "SIMPLE", res
                out[way].append(res.elapsed_ms)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--after", type=int, default=240, help="tokens the stand-in sends after its verdict")
    ap.add_argument("--rate", type=float, default=150.0, help="tokens per second")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with OpenAILocal() as srv:
        ms = asyncio.run(measure(srv, args.requests, args.after, args.rate))
    early, whole = statistics.median(ms["early"]), statistics.median(ms["whole"])
    result = {"requests": args.requests, "after_tokens": args.after, "rate": args.rate,
              "early_p50_ms": round(early, 1), "whole_p50_ms": round(whole, 1), "ratio": round(whole / early, 1)}
    print(f"classify p50: early stop {early:.0f} ms, whole reply {whole:.0f} ms ({whole / early:.1f}x) "
          f"with {args.after} tokens after the verdict at {args.rate:g} tokens/s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
