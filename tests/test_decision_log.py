from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from proxy import pidfile
from proxy.decision_log import FIELDS, DecisionLog, DecisionRecord


def rec(i: int) -> DecisionRecord:
    return DecisionRecord(ts="2026-11-23T00:00:00.000Z", id=f"req_{i}", route="local", reason="cached", status=200)


def test_rotates_by_size_and_keeps_n_backups(tmp_path: Path) -> None:
    path = tmp_path / "state" / "decisions.jsonl"
    log = DecisionLog(str(path), max_bytes=1000, backups=2)
    for i in range(100):
        log.write(rec(i))
    log.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["decisions.jsonl", "decisions.jsonl.1", "decisions.jsonl.2"]
    for p in path.parent.iterdir():
        assert p.stat().st_size <= 1000
        for line in p.read_text().splitlines():
            assert list(json.loads(line)) == list(FIELDS)
    # newest records are in the live file, the ones before in .1
    last = [json.loads(x)["id"] for x in path.read_text().splitlines()]
    assert last[-1] == "req_99"
    prev = [json.loads(x)["id"] for x in (path.parent / "decisions.jsonl.1").read_text().splitlines()]
    assert int(prev[-1][4:]) == int(last[0][4:]) - 1
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(str(path), max_bytes=10**9, backups=1)
    def writer(k: int) -> None:
        for i in range(200):
            log.write(rec(k * 1000 + i))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 800 and len({json.loads(x)["id"] for x in lines}) == 800


def test_log_moved_away_is_recreated(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(str(path), max_bytes=10**9, backups=1)
    log.write(rec(1))
    path.rename(tmp_path / "moved.jsonl")
    log._checked_at = 0.0  # as if a second had passed
    log.write(rec(2))
    assert json.loads(path.read_text())["id"] == "req_2"


def test_pidfile_trusts_only_a_live_switchyard(tmp_path: Path) -> None:
    p = tmp_path / "x.pid"
    assert pidfile.live_pid(p) is None
    sleeper = subprocess.Popen(["sleep", "30"])
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-m", "proxy", "serve"])
    try:
        pidfile.write_pidfile(p, sleeper.pid)
        assert pidfile.read_pid(p) == sleeper.pid and pidfile.live_pid(p) is None
        assert not pidfile.remove_if_owned(p, 12345) and p.exists()
        assert pidfile.remove_if_owned(p, sleeper.pid) and not p.exists()
        deadline = time.monotonic() + 5
        while not pidfile.process_cmdline(fake.pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # /proc/PID/cmdline is empty for a moment after exec
        assert pidfile.is_switchyard(fake.pid)  # argv has "-m proxy serve"
        assert not pidfile.is_switchyard(sleeper.pid)
    finally:
        for proc in (sleeper, fake):
            proc.kill()
            proc.wait()
    assert not pidfile.is_alive(sleeper.pid)


def test_failed_writes_do_not_leak_descriptors(tmp_path: Path) -> None:
    import os

    path = tmp_path / "d.jsonl"
    log = DecisionLog(str(path), max_bytes=10**9, backups=1)
    log.write(rec(0))
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    before = len(os.listdir("/proc/self/fd"))
    os.write = full_disk  # type: ignore[assignment]
    try:
        for i in range(50):
            log.write(rec(i))
    finally:
        os.write = real_write
    assert log.failed == 50 and "No space left" in (log.last_error or "")
    assert len(os.listdir("/proc/self/fd")) <= before + 1
    log.write(rec(99))  # recovers once the disk has room again
    assert json.loads(path.read_text().splitlines()[-1])["id"] == "req_99"
