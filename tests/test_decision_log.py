from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

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


def test_failed_writes_do_not_leak_descriptors(tmp_path: Path) -> None:
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


# --- disk full, logrotate, recovery (issue 13) ----------------------------------------------------

def _lines(path: Path) -> list[str]:
    return path.read_bytes().decode().split("\n")


def _disk_fills_after(monkeypatch: pytest.MonkeyPatch, room: int) -> list[int]:
    """os.write as on a disk with ``room`` bytes left: a short write, then ENOSPC.  Returns the calls."""
    real_write = os.write
    calls: list[int] = []
    left = [room]

    def full_disk(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, bytes(data[: left[0]]))
        left[0] -= n
        return n

    monkeypatch.setattr(os, "write", full_disk)
    return calls


def test_a_short_write_leaves_no_partial_line_and_is_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(str(path), max_bytes=10**9, backups=1)
    log.write(rec(1))
    size_before = path.stat().st_size
    calls = _disk_fills_after(monkeypatch, room=40)  # less than one record
    log.write(rec(2))
    assert calls and calls[0] > 40  # the record was offered whole, and only 40 bytes fitted
    assert path.stat().st_size == size_before  # ...and those 40 bytes were cut off again
    assert (log.written, log.failed, log.ok) == (1, 1, False)
    monkeypatch.undo()  # room again
    log.write(rec(3))
    ids = [json.loads(line)["id"] for line in _lines(path) if line]
    assert ids == ["req_1", "req_3"] and _lines(path)[-1] == ""
    assert (log.written, log.failed, log.ok, log.last_error) == (2, 1, True, None)


def test_a_fragment_that_cannot_be_cut_off_is_never_glued_to_the_next_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(str(path), max_bytes=10**9, backups=1)
    log.write(rec(1))
    _disk_fills_after(monkeypatch, room=30)

    def no_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "ftruncate", no_truncate)
    log.write(rec(2))
    monkeypatch.undo()
    log.write(rec(3))
    lines = [line for line in _lines(path) if line]
    assert len(lines) == 3
    assert json.loads(lines[0])["id"] == "req_1" and json.loads(lines[2])["id"] == "req_3"
    with pytest.raises(ValueError):
        json.loads(lines[1])  # the 30-byte fragment, alone on its line
    assert log.written == 2


def test_logrotate_move_and_touch_is_noticed_and_the_new_file_gets_the_records(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(str(path), max_bytes=10**9, backups=1)
    log.write(rec(1))
    rotated = tmp_path / "decisions.jsonl-20261123"
    path.rename(rotated)
    path.touch()
    log._checked_at = 0.0  # as if a second had passed
    log.write(rec(2))
    log.write(rec(3))
    assert [json.loads(x)["id"] for x in rotated.read_text().splitlines()] == ["req_1"]
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["req_2", "req_3"]


def test_copytruncate_is_noticed_by_the_size_check(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    line = len(rec(0).to_json()) + 1
    log = DecisionLog(str(path), max_bytes=3 * line + 10, backups=1)
    for i in range(3):
        log.write(rec(i))
    assert not (tmp_path / "d.jsonl.1").exists()
    os.truncate(path, 0)  # logrotate's copytruncate
    log._checked_at = 0.0
    log.write(rec(9))
    assert not (tmp_path / "d.jsonl.1").exists()  # the stale size would have rotated here
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["req_9"]


def test_status_reports_the_current_state_and_keeps_the_last_failure_with_its_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(str(path), max_bytes=10**9, backups=1)
    log.write(rec(1))
    _disk_fills_after(monkeypatch, room=0)
    log.write(rec(2))
    failing = log.status()
    assert failing["ok"] is False and "No space left" in failing["last_error"]
    monkeypatch.undo()
    log.write(rec(3))
    st = log.status()
    assert (st["ok"], st["last_error"], st["written"], st["failed"]) == (True, None, 2, 1)
    assert "No space left" in st["last_failure"]["error"] and st["last_failure"]["at"].endswith("Z")
