"""The host layer (proxy/host/): the pidfile's lock, zombie-safe stops, the env file's one format."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.host import envfile, http_probe, pidfile, procs
from tests.test_ops_support import spawn_holding, stale_pidfile

# What the review found counted as Switchyard by argv: it must not.
LOOKS_LIKE_SWITCHYARD = (sys.executable, "-c", "import time; time.sleep(30)", "-m", "proxy", "serve")


def _wait_state(pid: int, want: str) -> None:
    deadline = time.monotonic() + 10
    while procs.state(pid) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    assert procs.state(pid) == want


def test_a_pidfile_is_live_only_while_its_lock_is_held(tmp_path: Path) -> None:
    p = tmp_path / "x.pid"
    assert pidfile.live_pid(p) is None
    impostor = subprocess.Popen(list(LOOKS_LIKE_SWITCHYARD))
    try:
        stale_pidfile(p, impostor.pid)
        assert pidfile.read_pid(p) == impostor.pid and pidfile.live_pid(p) is None
        assert not pidfile.remove_if_owned(p, 12345) and p.exists()
        assert pidfile.remove_if_owned(p, impostor.pid) and not p.exists()
    finally:
        impostor.kill()
        impostor.wait()
    holder = spawn_holding(p, "sleep", "30")
    try:
        assert pidfile.live_pid(p) == holder.pid
        holder.kill()
        # Not reaped yet: a zombie, which kill(pid, 0) still finds; it has closed its files.
        _wait_state(holder.pid, "Z")
        assert pidfile.live_pid(p) is None
        assert procs.gone(holder.pid)
    finally:
        holder.kill()
        holder.wait()


def test_write_pidfile_holds_the_lock_in_this_process_until_removed(tmp_path: Path) -> None:
    p = tmp_path / "own.pid"
    pidfile.write_pidfile(p)
    try:
        assert pidfile.read_pid(p) == os.getpid()
        assert pidfile.is_locked(p)
        # Our own PID is never "another live proxy" (a server checks before it writes).
        assert pidfile.live_pid(p) is None
    finally:
        assert pidfile.remove_if_owned(p)
    assert not p.exists() and not pidfile.is_locked(p)


def test_stop_is_zombie_safe_and_kills_only_when_forced(tmp_path: Path) -> None:
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                 "print('ready', flush=True)\ntime.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline().strip() == "ready"
        assert procs.stop(stubborn.pid, 0.3, force=False) is procs.Stop.RUNNING
        assert procs.stop(stubborn.pid, 0.3) is procs.Stop.KILLED
        # Reaped by stop (our child): no zombie is left to wait for.
        assert procs.state(stubborn.pid) is None
    finally:
        stubborn.kill()
        stubborn.wait()
    polite = subprocess.Popen(["sleep", "30"])
    # Our own child: stop reaps it instead of waiting for a zombie to vanish.
    assert procs.stop(polite.pid, 5.0) is procs.Stop.STOPPED
    assert procs.state(polite.pid) is None


def test_spawn_detached_gives_the_child_the_pidfile_lock(tmp_path: Path) -> None:
    p = tmp_path / "run" / "child.pid"
    child = procs.spawn_detached(["sleep", "30"], tmp_path / "log", env=dict(os.environ), cwd=tmp_path, pidfile=p)
    try:
        assert pidfile.live_pid(p) == child.pid
    finally:
        assert procs.stop(child.pid, 5.0).ok
    assert pidfile.live_pid(p) is None


HARD_VALUES = {
    "DOLLAR": "a$HOME${X}$(id)`id`",
    "QUOTES": 'say "hi" \\" there',
    "BACKSLASH": "c:\\path\\n\\",
    "SPACE": "  two  words  ",
    "EMPTY": "",
}


def test_env_file_round_trips_through_python_and_sh(tmp_path: Path) -> None:
    f = tmp_path / "env"
    f.write_bytes(envfile.render_env(HARD_VALUES))
    assert envfile.read_env_file(f) == HARD_VALUES
    for name, value in HARD_VALUES.items():
        # How the launcher reads it: sourced in a subshell by POSIX sh.
        out = subprocess.run(["/bin/sh", "-c", f'. "$1" && printf %s "${name}"', "sh", str(f)],
                             capture_output=True, text=True, check=True)
        assert out.stdout == value, name


@pytest.mark.parametrize("bad", ["it's", "two\nlines", "cr\r"])
def test_env_file_refuses_what_it_cannot_hold(bad: str) -> None:
    with pytest.raises(envfile.EnvFileError, match="single quote or a line break"):
        envfile.render_env({"K": bad})


def test_env_file_reads_what_the_previous_installer_wrote() -> None:
    old = '# old\nSWITCHYARD_ROUTER_KEY=plain-Key_1\nSWITCHYARD_LITELLM_KEY="l\\$\\`\\"\\\\ x"\n'
    assert envfile.parse_env_text(old) == {"SWITCHYARD_ROUTER_KEY": "plain-Key_1", "SWITCHYARD_LITELLM_KEY": 'l$`"\\ x'}


def test_http_probe_reports_no_answer_without_raising(free_port: Callable[[], int]) -> None:
    r = http_probe.request(f"http://127.0.0.1:{free_port()}/health", timeout=1.0)
    assert r.status is None and r.error and not r.ok
    assert http_probe.model_ids({"data": [{"id": "a"}, {"x": 1}]}) == ["a"]
    assert http_probe.model_ids({"nope": []}) is None
    assert http_probe.HttpResult(404, b'{"error": {"message": "no  such\\nroute"}}').message() == "no such route"
