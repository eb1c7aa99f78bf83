"""``switchyard watch``: readable lines, filters, past records across rotation, and following a live log."""

from __future__ import annotations

import datetime as dt
import json
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from proxy.cli import cli
from proxy.decision_log import DecisionLog, DecisionRecord
from proxy.ops import watch
from tests.conftest import UserPaths
from tests.test_ops_support import REPO, write_setup


def record(i: int, **kw: Any) -> DecisionRecord:
    base: dict[str, Any] = {
        "ts": f"2026-11-23T05:40:{i % 60:02d}.000Z",
        "id": f"req_{i}",
        "session": "sess-aaaa1111",
        "route": "local",
        "model": "qwen3",
        "reason": "classified",
        "verdict": "SIMPLE",
        "classify_ms": 812.4,
        "status": 200,
        "ttft_ms": 120.0,
        "total_ms": 3400.0,
    }
    base.update(kw)
    return DecisionRecord(**base)


def as_dict(rec: DecisionRecord) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(rec.to_json())
    return data


def test_format_record_shows_the_essentials() -> None:
    line = watch.format_record(as_dict(record(12)), tz=dt.UTC)
    assert line.split()[:4] == ["05:40:12", "local", "classified", "SIMPLE"]
    assert "qwen3" in line and "ttft 120ms" in line and "total 3400ms" in line and "classify 812ms" in line
    assert "[sess-aaa]" in line
    assert "fallback" not in line and "HTTP" not in line
    cloud = as_dict(record(1, route="cloud", reason="local-down", verdict=None, classify_ms=None,
                           fallback="connect-error", status=529, total_ms=61000.0, input_tokens=900,
                           output_tokens=None, detail="cloud failed after 3 attempt(s)"))  # fmt: skip
    line = watch.format_record(cloud, tz=dt.UTC)
    assert "fallback: connect-error" in line and "HTTP 529" in line and "total 61.0s" in line
    assert "tokens 900/-" in line and "(cloud failed after 3 attempt(s))" in line
    assert "classify" not in line
    assert "repaired" not in line
    repaired = as_dict(record(2, repaired="tool_call_tag"))
    assert "repaired: tool_call_tag" in watch.format_record(repaired, tz=dt.UTC)
    refused = as_dict(record(3, route="cloud", fallback="text-tool-call-invalid", detail="bare_json: names 'X'"))
    line = watch.format_record(refused, tz=dt.UTC)
    assert "fallback: text-tool-call-invalid" in line and "(bare_json: names 'X')" in line


def test_filters() -> None:
    rec = as_dict(record(1, reason="classify-timeout", route="cloud"))
    assert watch.Filters().matches(rec)
    assert watch.Filters(routes=("cloud",)).matches(rec)
    assert not watch.Filters(routes=("local",)).matches(rec)
    assert watch.Filters(reasons=("classify",)).matches(rec)  # a family
    assert watch.Filters(reasons=("classify-timeout", "cached")).matches(rec)
    assert not watch.Filters(reasons=("classified",)).matches(rec)
    assert watch.Filters(sessions=("sess-aa",)).matches(rec)
    assert not watch.Filters(sessions=("other",)).matches(rec)
    assert not watch.Filters(sessions=("sess",)).matches({**rec, "session": None})


def test_last_lines_reach_into_rotated_files(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    (tmp_path / "decisions.jsonl.1").write_text("".join(record(i).to_json() + "\n" for i in range(5)))
    log.write_text("".join(record(i).to_json() + "\n" for i in range(5, 8)))
    ids = [json.loads(ln)["id"] for ln in watch.last_lines(log, 5)]
    assert ids == ["req_3", "req_4", "req_5", "req_6", "req_7"]
    assert len(watch.last_lines(log, 100)) == 8
    assert watch.last_lines(log, 0) == []


def test_follow_sees_appends_and_survives_rotation(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    writer = DecisionLog(str(path), max_bytes=600, backups=2)  # rotates every couple of lines
    writer.write(record(0))  # before following: not reported
    seen: list[str] = []
    done = threading.Event()

    def consume() -> None:
        for line in watch.follow(path, poll_s=0.02, should_stop=done.is_set):
            seen.append(json.loads(line)["id"])
            if len(seen) == 6:
                done.set()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.2)
    for i in range(1, 7):
        writer.write(record(i))
        time.sleep(0.06)
    t.join(timeout=10)
    done.set()
    writer.close()
    assert (tmp_path / "decisions.jsonl.1").exists(), "the log should have rotated during the test"
    assert seen == [f"req_{i}" for i in range(1, 7)]


def test_cli_past_records_with_filters_and_json(user_paths: UserPaths) -> None:
    config = write_setup(user_paths, port=1)
    log = user_paths.state / "switchyard" / "decisions.jsonl"
    log.parent.mkdir(parents=True)
    recs = [record(i, route="cloud" if i % 3 == 0 else "local", session=f"s{i % 2}") for i in range(30)]
    log.write_text("".join(r.to_json() + "\n" for r in recs) + "garbage line\n")
    runner = CliRunner()
    res = runner.invoke(cli, ["watch", "--config", str(config), "--no-follow", "-n", "4"])
    assert res.exit_code == 0, res.output
    assert len(res.output.splitlines()) == 4
    res = runner.invoke(cli, ["watch", "--config", str(config), "--no-follow", "--route", "cloud", "--json", "-n", "3"])
    out = [json.loads(ln) for ln in res.output.splitlines()]
    assert [r["id"] for r in out] == ["req_21", "req_24", "req_27"]
    res = runner.invoke(cli, ["watch", "--config", str(config), "--no-follow", "--session", "s1", "-n", "100"])
    assert len(res.output.splitlines()) == 15
    res = runner.invoke(cli, ["watch", "--config", str(config), "--route", "elsewhere"])
    assert res.exit_code == 2 and "elsewhere" in res.output


def readline(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    ready = select.select([proc.stdout], [], [], timeout)[0]
    assert ready, "watch printed nothing in time"
    return proc.stdout.readline()


def test_watch_follows_a_live_log_in_a_real_process(user_paths: UserPaths) -> None:
    config = write_setup(user_paths, port=1)
    log = user_paths.state / "switchyard" / "decisions.jsonl"
    writer = DecisionLog(str(log), max_bytes=1 << 20, backups=1)
    writer.write(record(0, reason="cached"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "watch", "--config", str(config), "-n", "1", "--reason", "cached"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO),
    )
    try:
        first = readline(proc)
        assert "cached" in first and "req" not in first  # readable, not JSON
        writer.write(record(1, reason="classified"))  # filtered out
        writer.write(record(2, reason="cached", route="cloud", model="claude-x"))
        second = readline(proc)
        assert "cloud" in second and "claude-x" in second
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        writer.close()
