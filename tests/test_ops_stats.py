"""``switchyard stats``: the fast aggregation must equal a plain json.loads computation on generated logs."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from proxy.cli import cli
from proxy.decision_log import DecisionRecord, utc_iso
from proxy.ops import stats
from proxy.ops.chart import bar_chart
from tests.conftest import UserPaths
from tests.test_ops_support import write_setup

T0 = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC).timestamp()
REASONS = ["classified", "cached", "background", "long-context", "explicit", "plan-mode", "classify-timeout",
           "classify-error", "classify-empty", "local-down", "bad-request", "unauthorized"]  # fmt: skip


def make_records(n: int, seed: int = 1, step_s: float = 7.0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        reason = rng.choice(REASONS)
        route = rng.choice(["local", "cloud"])
        status = rng.choice([200, 200, 200, 400, 500])
        rec = DecisionRecord(
            ts=utc_iso(T0 + i * step_s),
            id=f"req_{i}",
            session=rng.choice([None, "sess-a", "sess-b"]),
            route=route,
            model="m" if route == "local" else "claude-x",
            reason=reason,
            verdict=rng.choice([None, "SIMPLE", "COMPLEX"]),
            local_up=rng.choice([None, True, False]),
            classify_ms=rng.choice([None, rng.uniform(1, 5000)]),
            status=status,
            ttft_ms=rng.choice([None, rng.uniform(1, 3000)]),
            total_ms=rng.uniform(1, 90000),
            fallback=rng.choice([None, None, "connect-error", "first-token-timeout"]),
            input_tokens=rng.choice([None, rng.randrange(100000)]),
            output_tokens=rng.choice([None, rng.randrange(5000)]),
            detail=rng.choice([None, 'reply of 12 characters, "quoted", with a \\ backslash', 'ünïcode,"x']),
            stream=rng.random() < 0.5,
            repaired=rng.choice([None, None, None, "bare_json", "tool_call_tag"]),
        )
        out.append(json.loads(rec.to_json()))
    return out


def write_log(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n")


def nearest_rank(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def oracle(records: list[dict[str, Any]], since: str | None = None) -> dict[str, Any]:
    """The figures, computed the obvious way."""
    recs = [r for r in records if since is None or r["ts"] >= since]
    routed = [r for r in recs if r["reason"] not in ("bad-request", "unauthorized")]

    def summ(vals: list[float]) -> dict[str, Any]:
        return {"n": len(vals), "p50": nearest_rank(vals, 50), "p95": nearest_rank(vals, 95)}

    routes = sorted({r["route"] for r in routed})
    local_ok = [r for r in routed if r["route"] == "local" and 200 <= r["status"] < 300]
    by_route = Counter(r["route"] for r in routed)
    return {
        "requests": len(recs),
        "rejected": len(recs) - len(routed),
        "by_route": dict(by_route),
        "by_reason": dict(Counter(r["reason"] for r in recs)),
        "by_status": dict(Counter(str(r["status"]) for r in recs)),
        "fallbacks": dict(Counter(r["fallback"] for r in recs if r["fallback"])),
        "repaired": dict(Counter(r["repaired"] for r in recs if r["repaired"])),
        "classifier_failures": dict(
            Counter(r["reason"].removeprefix("classify-") for r in recs if r["reason"].startswith("classify-"))
        ),
        "classify_ms": summ([r["classify_ms"] for r in recs if r["classify_ms"] is not None]),
        "ttft_ms": {
            rt: summ([r["ttft_ms"] for r in routed if r["route"] == rt and r["ttft_ms"] is not None]) for rt in routes
        },
        "total_ms": {
            rt: summ([r["total_ms"] for r in routed if r["route"] == rt and r["total_ms"] is not None]) for rt in routes
        },
        "cloud_tokens_avoided": {
            "input": sum(r["input_tokens"] or 0 for r in local_ok),
            "output": sum(r["output_tokens"] or 0 for r in local_ok),
        },
        "local_share": by_route["local"] / len(routed) if routed else None,
        "first_ts": min((r["ts"] for r in recs), default=None),
        "last_ts": max((r["ts"] for r in recs), default=None),
    }


def comparable(d: dict[str, Any]) -> dict[str, Any]:
    keys = oracle([]).keys()
    return {k: d[k] for k in keys}


def test_fast_path_equals_the_obvious_computation(tmp_path: Path) -> None:
    records = make_records(3000)
    log = tmp_path / "decisions.jsonl"
    write_log(log, records)
    # The proxy's own spelling takes the fast path (the slow one would give the same figures).
    data = log.read_bytes()
    assert stats._fast_columns(data, data.count(b"\n")) is not None
    # Small chunks: many chunk boundaries.
    result = stats.compute_stats(log, chunk_bytes=20_000)
    assert result.unreadable_lines == 0
    assert comparable(result.to_dict()) == oracle(records)


def test_lines_in_another_spelling_take_the_slow_path_with_the_same_answer(tmp_path: Path) -> None:
    records = make_records(800, seed=2)
    log = tmp_path / "decisions.jsonl"
    with log.open("w", encoding="utf-8") as fh:
        for i, r in enumerate(records):
            if i % 97 == 5:
                fh.write(json.dumps(dict(reversed(list(r.items())))) + "\n")  # other key order, spaces
            elif i % 131 == 7:
                fh.write(json.dumps({**r, "future_field": [1, 2]}, separators=(",", ":")) + "\n")
            else:
                fh.write(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n")
            if i == 100:
                fh.write("\n")  # a blank line is not a record and not an error
            if i == 200:
                fh.write('{"ts":"2026-11-20T08:00:00.000Z","id":"cut-off-by-a-cra\n')
            if i == 300:
                fh.write("[1, 2, 3]\n")
    result = stats.compute_stats(log, chunk_bytes=4096)
    assert result.unreadable_lines == 2
    assert comparable(result.to_dict()) == oracle(records)


def test_rotated_files_are_read_oldest_first_and_since_filters(tmp_path: Path) -> None:
    records = make_records(1500, seed=3)
    log = tmp_path / "decisions.jsonl"
    write_log(tmp_path / "decisions.jsonl.2", records[:500])
    write_log(tmp_path / "decisions.jsonl.1", records[500:1000])
    write_log(log, records[1000:])
    (tmp_path / "decisions.jsonl.bak").write_text("not a rotation\n")
    assert stats.log_files(log) == [tmp_path / "decisions.jsonl.2", tmp_path / "decisions.jsonl.1", log]
    assert comparable(stats.compute_stats(log).to_dict()) == oracle(records)
    since = records[777]["ts"]
    assert comparable(stats.compute_stats(log, since=since).to_dict()) == oracle(records, since)


def test_since_after_everything_gives_no_requests(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    write_log(log, make_records(50))
    result = stats.compute_stats(log, since="2030-01-01T00:00:00.000Z")
    assert result.requests == 0
    assert stats.render_text(result, since="2030-01-01T00:00:00.000Z") == [
        "no requests in the decision log since 2030-01-01T00:00:00.000Z"
    ]


def test_known_answers_on_a_hand_made_log(tmp_path: Path) -> None:
    def rec(i: int, route: str, reason: str, **kw: Any) -> dict[str, Any]:
        base = DecisionRecord(ts=utc_iso(T0 + i * 60), id=f"r{i}", route=route, reason=reason, status=200)
        return {**json.loads(base.to_json()), **kw}

    records = [
        rec(0, "local", "classified", classify_ms=100.0, ttft_ms=10.0, total_ms=1000.0,
            input_tokens=1000, output_tokens=50),
        rec(1, "local", "cached", ttft_ms=20.0, total_ms=2000.0, input_tokens=2000, output_tokens=70,
            repaired="function_tag"),
        rec(2, "cloud", "classify-timeout", classify_ms=15000.0, ttft_ms=300.0, total_ms=5000.0,
            input_tokens=999, output_tokens=9),
        rec(3, "cloud", "local-down", fallback="connect-error", ttft_ms=400.0, total_ms=6000.0),
        rec(4, "local", "explicit", status=500, ttft_ms=None, total_ms=50.0, input_tokens=777),
        rec(5, "cloud", "bad-request", status=400, total_ms=1.0),
    ]  # fmt: skip
    log = tmp_path / "decisions.jsonl"
    write_log(log, records)
    st = stats.compute_stats(log)
    assert st.requests == 6 and st.rejected == 1
    assert st.by_route == {"local": 3, "cloud": 2}
    assert st.local_share == pytest.approx(0.6)
    assert st.fallbacks == {"connect-error": 1}
    assert st.repaired == {"function_tag": 1}
    assert "repaired tool calls 1   (function_tag 1" in "\n".join(stats.render_text(st, chart=False))
    assert st.classifier_failures == {"timeout": 1}
    assert (st.classify_ms.n, st.classify_ms.p50, st.classify_ms.p95) == (2, 100.0, 15000.0)
    assert st.ttft_ms["local"] == stats.Summary(2, 10.0, 20.0)
    assert st.total_ms["cloud"] == stats.Summary(2, 5000.0, 6000.0)
    # Only local answers that succeeded count as cloud tokens avoided.
    assert (st.local_input_tokens, st.local_output_tokens) == (3000, 120)
    # One-minute buckets over 5 minutes; the rejected request is not in the share.
    assert st.bucket_minutes == 1
    assert [(loc, tot) for _, loc, tot in st.share_series] == [(1, 1), (1, 1), (0, 1), (0, 1), (1, 1)]
    text = "\n".join(stats.render_text(st, ascii_only=True))
    assert "local share         60.0%" in text
    assert "cloud tokens avoided 3,000 input + 120 output" in text


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert stats.percentile(values, 50) == 50.0
    assert stats.percentile(values, 95) == 95.0
    assert stats.percentile([7.0], 95) == 7.0
    assert stats.percentile([], 50) is None


def test_parse_since() -> None:
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    assert stats.parse_since("90m", now) == "2026-11-23T10:30:00.000Z"
    assert stats.parse_since("2d", now) == "2026-11-21T12:00:00.000Z"
    assert stats.parse_since("2026-11-22", now) == "2026-11-22T00:00:00.000Z"
    assert stats.parse_since("2026-11-22T08:00+02:00", now) == "2026-11-22T06:00:00.000Z"
    with pytest.raises(ValueError, match="duration like 30m"):
        stats.parse_since("yesterday", now)


def test_share_series_buckets_by_span() -> None:
    minutes: Counter[tuple[str, str]] = Counter(
        {("2026-11-20T08:00", "local"): 3, ("2026-11-20T08:00", "cloud"): 1, ("2026-11-20T11:59", "cloud"): 2}
    )
    series, size = stats.share_series(minutes, width=10)
    assert size == 30  # 240 minutes in at most 10 columns
    assert series[0] == ("2026-11-20T08:00", 3, 4)
    assert series[-1] == ("2026-11-20T11:30", 0, 2)
    assert all(tot == 0 for _, _, tot in series[1:-1])


def test_bar_chart_draws_shares_and_gaps() -> None:
    rows = bar_chart([1.0, 0.5, None, 0.0, 0.25], height=2, left_label="a", right_label="b")
    assert rows[0] == "100% |█    "
    assert rows[1] == "     |██  ▄"
    assert rows[2] == "  0% +--.--"
    assert rows[3].startswith("      a") and rows[3].endswith("b")


def test_cli_stats_text_and_json(user_paths: UserPaths) -> None:
    config = write_setup(user_paths, port=1)
    log = user_paths.state / "switchyard" / "decisions.jsonl"
    log.parent.mkdir(parents=True)
    records = make_records(400, seed=9)
    write_log(log, records)
    runner = CliRunner()
    res = runner.invoke(cli, ["stats", "--config", str(config), "--json"])
    assert res.exit_code == 0, res.output
    assert comparable(json.loads(res.output)) == oracle(records)
    res = runner.invoke(cli, ["stats", "--config", str(config)])
    assert res.exit_code == 0
    assert "requests            400" in res.output
    assert "local share over time" in res.output
    res = runner.invoke(cli, ["stats", "--config", str(config), "--since", "soon"])
    assert res.exit_code == 2
    assert "duration like 30m" in res.output


def test_cli_stats_without_a_log_says_why(user_paths: UserPaths) -> None:
    config = write_setup(user_paths, port=1)
    res = CliRunner().invoke(cli, ["stats", "--config", str(config)])
    assert res.exit_code == 1
    assert "no decision log at" in res.output
    config = write_setup(user_paths, port=1, decisions=False)
    res = CliRunner().invoke(cli, ["stats", "--config", str(config)])
    assert res.exit_code == 1
    assert "no decision log is configured" in res.output


def test_a_crash_mid_write_is_read_around_and_counted(tmp_path: Path) -> None:
    records = make_records(300, seed=11)
    log = tmp_path / "decisions.jsonl"
    lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in records]
    # A line cut off by a crash, the next start's record glued to it; NUL padding before another.
    lines[50] = lines[49][:70] + lines[50]
    lines[120] = "\0\0\0\0" + lines[120]
    log.write_text("\n".join(lines) + "\n" + lines[0][:40], encoding="utf-8")  # and a last line cut short
    result = stats.compute_stats(log, chunk_bytes=8192)
    assert result.unreadable_lines == 3
    assert comparable(result.to_dict()) == oracle(records)
    out = "\n".join(stats.render_text(result))
    assert "skipped           3 unreadable line(s) (corrupt or cut off)" in out


def test_lines_written_before_the_newest_fields_still_take_the_fast_path(tmp_path: Path) -> None:
    records = make_records(500, seed=12)
    newest = ("prompt_hash", "turn", "project", "project_name", "repaired")
    old = [{k: v for k, v in r.items() if k not in newest} for r in records]
    log = tmp_path / "decisions.jsonl"
    write_log(log, old)
    data = log.read_bytes()
    assert stats._fast_columns(data, data.count(b"\n")) is not None
    result = stats.compute_stats(log)
    assert result.unreadable_lines == 0
    # What the old lines lack reads as null (no repairs); everything else is as in the full records.
    assert comparable(result.to_dict()) == oracle([{**r, "repaired": None} for r in records])


def test_cli_stats_by_project(user_paths: UserPaths) -> None:
    config = write_setup(user_paths, port=1)
    log = user_paths.state / "switchyard" / "decisions.jsonl"
    log.parent.mkdir(parents=True)
    records = make_records(200, seed=13)
    for i, r in enumerate(records):
        r["project"], r["project_name"] = ("aaaa1111", "widgets") if i % 2 else ("bbbb2222", None)
    write_log(log, records)
    res = CliRunner().invoke(cli, ["stats", "--config", str(config), "--by", "project"])
    assert res.exit_code == 0, res.output
    assert "== project widgets (aaaa1111)" in res.output and "== project bbbb2222" in res.output
    res = CliRunner().invoke(cli, ["stats", "--config", str(config), "--by", "project", "--json"])
    data = json.loads(res.output)
    assert data["by_project"]["widgets (aaaa1111)"]["requests"] == 100
    assert data["by_project"]["bbbb2222"]["requests"] == 100
