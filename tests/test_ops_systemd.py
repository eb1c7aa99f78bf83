"""start / status / stop through ``systemctl --user`` when the unit exists and a user manager answers.

No user manager runs on the build machines, so ``systemctl`` is replaced on PATH by a small script
that behaves like one for this unit: ``start`` runs the unit's command (``python -m proxy serve``)
as the main process, ``show`` reports its state, ``stop`` sends SIGTERM.  The proxy itself is real.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy import pidfile
from tests.conftest import UserPaths
from tests.test_ops_support import REPO, run_cli, write_setup

FAKE_SYSTEMCTL = r"""#!{python}
import os, signal, subprocess, sys, time
state = {state!r}
args = [a for a in sys.argv[1:] if a not in ("--user", "--no-pager")]
with open(os.path.join(state, "calls"), "a") as fh:
    fh.write(" ".join(args) + "\n")
pid_path = os.path.join(state, "main.pid")

def main_pid():
    try:
        pid = int(open(pid_path).read())
        os.kill(pid, 0)
        return pid if open(f"/proc/{{pid}}/stat").read().split()[2] != "Z" else 0
    except (OSError, ValueError):
        return 0

def start():
    if main_pid():
        return
    log = open({log!r}, "ab")
    env = dict(os.environ, PYTHONPATH={repo!r})
    for line in open({env_file!r}):
        name, _, value = line.strip().partition("=")
        env[name] = value
    proc = subprocess.Popen([{python!r}, "-m", "proxy", "serve", "--config", {config!r}],
                            stdout=log, stderr=log, env=env, start_new_session=True)
    open(pid_path, "w").write(str(proc.pid))

def stop():
    pid = main_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            if not main_pid():
                break
            time.sleep(0.05)

cmd = args[0]
if cmd == "show-environment":
    print("HOME=" + os.environ.get("HOME", ""))
elif cmd == "start":
    start()
elif cmd == "stop":
    stop()
elif cmd == "restart":
    stop(); start()
elif cmd == "show":
    pid = main_pid()
    print("ActiveState=" + ("active" if pid else "inactive"))
    print("SubState=" + ("running" if pid else "dead"))
    print(f"MainPID={{pid}}")
    print("NRestarts=0")
else:
    sys.exit(1)
"""


@pytest.fixture
def fake_systemd(
    user_paths: UserPaths, tmp_path: Path, free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    config = write_setup(user_paths, port=free_port())
    state = tmp_path / "systemd-state"
    state.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "systemctl"
    script.write_text(
        FAKE_SYSTEMCTL.format(
            python=sys.executable,
            state=str(state),
            log=str(tmp_path / "unit.log"),
            repo=str(REPO),
            env_file=str(config.parent / "env"),
            config=str(config),
        )
    )
    script.chmod(0o755)
    unit = user_paths.config / "systemd" / "user" / "switchyard.service"
    unit.parent.mkdir(parents=True)
    pid = user_paths.state / "switchyard" / "switchyard.pid"
    unit.write_text(f"[Service]\nExecStartPre=-/bin/rm -f {pid}\nExecStart={sys.executable} -m proxy serve\n")
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    yield state
    run_cli("stop")


def test_start_status_stop_go_through_systemctl(fake_systemd: Path, user_paths: UserPaths) -> None:
    res = run_cli("start", "--timeout", "20")
    assert res.returncode == 0, res.stderr
    assert "started switchyard.service" in res.stdout
    main = int((fake_systemd / "main.pid").read_text())
    assert pidfile.is_switchyard(main)
    res = run_cli("status")
    assert f"✓ service: systemd unit switchyard.service active (running), PID {main}" in res.stdout
    assert f"✓ port: PID {main} listens on" in res.stdout
    assert "✓ /health" in res.stdout
    res = run_cli("stop")
    assert res.returncode == 0 and "stopped switchyard.service" in res.stdout
    assert not pidfile.is_switchyard(main)
    calls = (fake_systemd / "calls").read_text().splitlines()
    assert "start switchyard.service" in calls and "stop switchyard.service" in calls
    res = run_cli("status")
    assert res.returncode == 1
    assert "✗ service: systemd unit switchyard.service is inactive (dead)" in res.stdout
    assert "journalctl --user -u switchyard.service" in res.stdout
