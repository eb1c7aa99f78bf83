"""The installer under signals (issue 13): child process groups, a rollback that finishes, LiteLLM back after it."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from installer import deploy


class _Stop(BaseException):
    pass


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):  # a zombie waiting for a reaper counts as stopped
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    return False


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stop()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def test_interrupted_child_command_takes_its_grandchildren_with_it(tmp_path: Path) -> None:
    """SIGTERM while a deploy command runs: the grandchild it started (as ensurepip's pip) is stopped too."""
    pidfile = tmp_path / "grandchild.pid"
    script = (
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pidfile)!r} + '.tmp', 'w').write(str(p.pid))\n"
        f"os.rename({str(pidfile)!r} + '.tmp', {str(pidfile)!r})\n"
        "time.sleep(300)\n"
    )

    def interrupt_when_started() -> None:
        for _ in range(6000):  # bounded: 300 s
            if pidfile.exists():
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=interrupt_when_started, daemon=True)
    with _sigterm_raises(), pytest.raises(_Stop):
        t.start()
        deploy._run([sys.executable, "-c", script], "python -m venv")
    t.join()
    grandchild = int(pidfile.read_text())
    try:
        # Bounded wait: the helper has already sent SIGTERM then SIGKILL to the group before returning.
        for _ in range(200):
            if _dead(grandchild):
                break
            time.sleep(0.05)
        assert _dead(grandchild), "the grandchild survived the interruption"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(grandchild, signal.SIGKILL)


def test_rollback_says_when_litellm_does_not_come_back(tmp_path: Path) -> None:
    """A restart step journaled (even one interrupted mid-way) is redone; LiteLLM not answering is reported."""
    from installer.journal import Journal
    from installer.journal_actions import RestartLiteLLM
    from installer.rollback import rollback
    from installer.service_start import restart_waiter
    from proxy.host.paths import Paths

    p = Paths.from_env()
    j = Journal(p.journal_file, p.backups_dir)
    j.record(RestartLiteLLM("true"))
    # Nothing listens on port 9 (discard): the bounded wait gives up and the rollback says so.
    failures = rollback(j, restart_waiter("http://127.0.0.1:9", wait_s=1.0))
    assert len(failures) == 1
    assert "LiteLLM is not back after the rollback's restart with 'true'" in failures[0]
    assert "did not come back" in failures[0]


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT])
def test_exit_by_signal_ends_the_process_by_that_signal_without_a_core(tmp_path: Path, signum: int) -> None:
    import subprocess

    code = f"from installer.signals import exit_by_signal\nprint('rolled back', flush=True)\nexit_by_signal({signum})\n"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60,
                       check=False, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert r.returncode == -signum and r.stdout == "rolled back\n"
    assert not list(cwd.iterdir())  # SIGQUIT's default action dumps no core here


def test_child_output_is_handed_over_line_by_line_as_it_comes() -> None:
    """The deploy step shows pip's lines while pip runs (not all at the end)."""
    from installer import child

    seen: list[tuple[str, bool]] = []
    flag = Path(os.environ["HOME"]) / "second-line-may-come"
    code = (
        "import os, sys, time\nprint('Collecting aiohttp', flush=True)\n"
        f"while not os.path.exists({str(flag)!r}): time.sleep(0.01)\n"
        "print('Successfully installed aiohttp', file=sys.stderr, flush=True)\n"
    )

    def on_line(line: str) -> None:
        seen.append((line, flag.exists()))
        flag.touch()  # the child writes its second line only after the first one was seen here

    r = child.run([sys.executable, "-c", code], timeout=60, on_line=on_line)
    assert r.returncode == 0
    assert seen == [("Collecting aiohttp", False), ("Successfully installed aiohttp", True)]
    assert r.stdout == "Collecting aiohttp\nSuccessfully installed aiohttp\n"
