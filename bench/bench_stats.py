"""Benchmark ``switchyard stats`` on a generated decision log of 1,000,000 lines.

    python bench/bench_stats.py [--lines N] [--keep DIR]

Prints the generation time (not part of the figure), then the time ``compute_stats`` takes and its
lines per second on lines as the proxy writes them, and, for comparison, the obvious implementation
(``json.loads`` on every line, then the same counting in Python).
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.decision_log import FIELDS, DecisionRecord, utc_iso
from proxy.ops.stats import compute_stats

REASONS = [
    ("classified", 0.45), ("cached", 0.30), ("background", 0.08), ("long-context", 0.05),
    ("explicit", 0.03), ("plan-mode", 0.03), ("classify-timeout", 0.02), ("classify-error", 0.01),
    ("classify-empty", 0.01), ("local-down", 0.01), ("bad-request", 0.005), ("unauthorized", 0.005),
]  # fmt: skip
_REASON_NAMES = [r for r, _ in REASONS]
_CUM = list(itertools.accumulate(w for _, w in REASONS))
FALLBACKS = ["connect-error", "first-token-timeout", "read-timeout", "upstream-5xx"]


def make_record(i: int, rng: random.Random, t0: float) -> dict[str, Any]:
    # Routing is per user turn, as the proxy does it: a turn's tool steps (about 20 requests) share
    # its reason and route (classified once, then cached); faults and statuses are per request.
    turn = i // 20
    trng = random.Random(turn)
    turn_reason = _REASON_NAMES[bisect.bisect(_CUM, trng.random() * _CUM[-1])]
    reason = turn_reason
    if turn_reason in ("classified", "cached"):
        reason = "classified" if i % 20 == 0 else "cached"
    route = "local" if turn_reason in ("classified", "cached", "background") and trng.random() < 0.7 else "cloud"
    fallback = rng.choice(FALLBACKS) if route == "cloud" and rng.random() < 0.02 else None
    classify = reason in ("classified",) or reason.startswith("classify-")
    status = 200 if rng.random() < 0.98 else rng.choice([400, 429, 500, 529])
    return {
        "ts": utc_iso(t0 + i * 0.25),
        "id": f"req_{i:012x}",
        "session": f"sess-{(i // 200) % 200:04d}",  # ten turns per session
        "route": route,
        "model": "qwen3-coder-30b" if route == "local" else "claude-sonnet-4-5",
        "reason": reason,
        "verdict": ("SIMPLE" if route == "local" else "COMPLEX") if reason == "classified" else None,
        "local_up": True,
        "classify_ms": round(rng.uniform(200, 4000), 3) if classify else None,
        "status": status,
        "ttft_ms": round(rng.uniform(50, 3000), 3) if status == 200 else None,
        "total_ms": round(rng.uniform(500, 60000), 3),
        "fallback": fallback,
        "input_tokens": rng.randrange(1000, 90000) if status == 200 else None,
        "output_tokens": rng.randrange(10, 4000) if status == 200 else None,
        "detail": None,
        "stream": True,
        "cached_tokens": None,
        "prefill_ms": None,
        # One turn in 50 repeats the message of an earlier one.
        "prompt_hash": f"{turn % 5000 if trng.random() < 0.02 else turn:016x}",
        "turn": turn,
        "project": f"{(i // 200) % 12:08x}",
        "project_name": None,
    }


def line_of(rec: dict[str, Any]) -> str:
    # Same spelling as DecisionRecord.to_json, without dataclasses.asdict's cost per line.
    return json.dumps({k: rec.get(k) for k in FIELDS}, separators=(",", ":"), ensure_ascii=False)


def generate(path: Path, lines: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    t0 = time.time() - lines * 0.25
    first = make_record(0, rng, t0)
    assert line_of(first) == DecisionRecord(**first).to_json(), "generator drifted from the log schema"
    with path.open("w", encoding="utf-8") as fh:
        batch = [line_of(first)]
        for i in range(1, lines):
            batch.append(line_of(make_record(i, rng, t0)))
            if len(batch) >= 10000:
                fh.write("\n".join(batch) + "\n")
                batch = []
        if batch:
            fh.write("\n".join(batch) + "\n")


def naive(path: Path) -> int:
    """The obvious implementation: json.loads every line, then count and collect in Python."""
    reasons: Counter[str] = Counter()
    routes: Counter[str] = Counter()
    fallbacks: Counter[str] = Counter()
    ttft: dict[str, list[float]] = {}
    total: dict[str, list[float]] = {}
    classify: list[float] = []
    tokens = 0
    n = 0
    with path.open("rb") as fh:
        for line in fh:
            r = json.loads(line)
            n += 1
            reasons[r["reason"]] += 1
            if r["reason"] in ("bad-request", "unauthorized"):
                continue
            routes[r["route"]] += 1
            if r["fallback"]:
                fallbacks[r["fallback"]] += 1
            if r["classify_ms"] is not None:
                classify.append(r["classify_ms"])
            if r["ttft_ms"] is not None:
                ttft.setdefault(r["route"], []).append(r["ttft_ms"])
            if r["total_ms"] is not None:
                total.setdefault(r["route"], []).append(r["total_ms"])
            if r["route"] == "local" and 200 <= r["status"] < 300:
                tokens += (r["input_tokens"] or 0) + (r["output_tokens"] or 0)
    for values in (classify, *ttft.values(), *total.values()):
        values.sort()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--keep", help="directory to write the log into (kept afterwards)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        log = base / "decisions.jsonl"
        t = time.perf_counter()
        generate(log, args.lines)
        size_mb = log.stat().st_size / 1e6
        print(f"generated {args.lines:,} lines ({size_mb:.0f} MB) in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        st = compute_stats(log)
        took = time.perf_counter() - t
        assert st.requests == args.lines and st.unreadable_lines == 0
        print(f"switchyard stats: {took:.2f} s, {args.lines / took:,.0f} lines/s")
        t = time.perf_counter()
        naive(log)
        took_naive = time.perf_counter() - t
        print(
            f"for comparison, json.loads per line with the same counting: {took_naive:.2f} s, "
            f"{args.lines / took_naive:,.0f} lines/s"
        )


if __name__ == "__main__":
    main()
