"""Benchmark ``switchyard statusline`` on a generated 100 MB decision log.

    python bench/bench_statusline.py [--mb 100] [--keep DIR]

Claude Code runs the status line after every answer, so what matters is that its cost does not grow
with the log.  Prints the time of one ``glance`` (the work of the command after Python has started)
for a session answered at the end, for one last seen far back, and, as the baseline in the same
process, the time ``switchyard stats`` (the fast whole-log reader) takes on the same file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_stats import line_of, make_record
from proxy.ops import statusline as sl
from proxy.ops.stats import compute_stats


def generate(path: Path, mb: int) -> int:
    rng = random.Random(5)
    now = dt.datetime.now(dt.UTC).timestamp()
    per_line = len(line_of(make_record(0, rng, now))) + 1
    lines = mb * 1_000_000 // per_line
    t0 = now - lines * 0.25  # the last ~17 hours of it fall on today or yesterday
    with path.open("w", encoding="utf-8") as fh:
        batch = []
        for i in range(lines):
            batch.append(line_of(make_record(i, rng, t0)))
            if len(batch) >= 10000:
                fh.write("\n".join(batch) + "\n")
                batch = []
        fh.write("\n".join(batch) + "\n" if batch else "")
    return lines


def best(fn: object, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--keep", help="directory to write the log into (kept afterwards)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        log = base / "decisions.jsonl"
        lines = generate(log, args.mb)
        print(f"log: {log.stat().st_size / 1e6:.0f} MB, {lines:,} lines")
        today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        last = sl.lines_backwards(log).__next__()
        recent = last.split(b'"session":"', 1)[1].split(b'"', 1)[0].decode()
        t_recent = best(lambda: sl.glance(log, recent, today))
        t_absent = best(lambda: sl.glance(log, "no-such-session", today))

        # What Claude Code waits for: the whole command, Python's start included.
        argv = [sys.executable, "-m", "proxy", "statusline", "--log", str(log)]
        stdin = json.dumps({"session_id": recent}).encode()
        t_cmd = best(lambda: subprocess.run(argv, input=stdin, capture_output=True, check=True), 5)
        light = [sys.executable, "-m", "proxy.ops.statusline", "--log", str(log)]  # what the launcher runs
        t_light = best(lambda: subprocess.run(light, input=stdin, capture_output=True, check=True), 5)
        # The baseline: a status line that aggregates the whole log, with stats' own fast reader.
        t_read = best(lambda: compute_stats(log), 1)
        print(f"statusline, session answered at the end:  {t_recent * 1000:.1f} ms")
        window = sl.SCAN_BYTES >> 20
        print(f"statusline, session not in the window:    {t_absent * 1000:.1f} ms (reads at most {window} MB)")
        print(f"the whole command (python -m proxy ...):  {t_cmd * 1000:.1f} ms")
        print(f"the launcher's (-m proxy.ops.statusline): {t_light * 1000:.1f} ms")
        print(f"baseline, switchyard stats on the file:   {t_read * 1000:.1f} ms")
        print(f"ratio statusline / whole-log stats: {t_recent / t_read:.4f} (end), {t_absent / t_read:.4f} (absent)")


if __name__ == "__main__":
    main()
