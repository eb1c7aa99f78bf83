"""The installer's systemd user-unit path, end to end.

No user manager runs on the build machines (field notes), so: (1) the unit a real install writes is
parsed and its ExecStartPre/ExecStart lines are run directly, as systemd would run them; (2, 3) the
install runs with the stand-in manager of :mod:`tests.fake_systemd` first on PATH, which executes
the unit as written (the proxy it starts is real).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from installer import probes
from proxy.host import pidfile, procs
from proxy.host.envfile import read_env_file
from proxy.host.paths import UNIT_NAME, Paths
from tests.fake_systemd import calls, install_fake_systemd, parse_unit, prepare, run_pre, spawn_main
from tests.test_installer_support import (
    INSTALL,
    REPO,
    Lab,
    answers_for,
    run_installer,
    snapshot,
    stop_installed_proxy,
    write_answers,
)


def _answers(lab: Lab, tmp_path: Path) -> tuple[Path, int]:
    """Answers with a private copy of the lab's LiteLLM config (these tests never restart LiteLLM)."""
    cfg = tmp_path / "user-litellm" / "config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_bytes(lab.litellm_config.read_bytes())
    values = answers_for(lab, litellm_config=str(cfg))
    return write_answers(tmp_path / "answers.yml", values), int(values["port"])


def _router_key(p: Paths) -> str:
    return str(read_env_file(p.env_file)["SWITCHYARD_ROUTER_KEY"])


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not Switchyard: its PID goes into a stale pidfile."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def test_rendered_unit_runs_as_systemd_would_run_it(
    shared_lab: Lab, tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    answers, port = _answers(shared_lab, tmp_path)
    r = run_installer("--answers", str(answers), *INSTALL, env={"LITELLM_MASTER_KEY": shared_lab.key})
    p = Paths.from_env()
    # No user manager here: the installer started the proxy in the background; the unit runs it next.
    stop_installed_proxy(p.pid_dir)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    unit = parse_unit(p.unit_file.read_text())

    # The keys the issue asks for, with absolute paths only.
    assert unit.one("Service", "Type") == "exec"
    assert unit.one("Service", "Restart") == "on-failure"
    assert re.fullmatch(r"[1-9][0-9]*(ms|s|min)?", unit.one("Service", "RestartSec") or "")
    assert unit.one("Install", "WantedBy") == "default.target"
    assert unit.all("Service", "ExecStartPre") == [f"-/bin/rm -f {p.pidfile}"]
    assert unit.one("Service", "ExecStart") == f"{p.venv_python} -m proxy serve --config {p.config_file}"
    assert unit.one("Service", "EnvironmentFile") == str(p.env_file)
    assert unit.one("Service", "WorkingDirectory") == str(p.data_dir)
    assert unit.one("Service", "StandardOutput") == unit.one("Service", "StandardError") == f"append:{p.proxy_log}"
    assert p.proxy_log.parent.is_dir()
    for key in ("ExecStartPre", "ExecStart", "EnvironmentFile", "WorkingDirectory", "StandardOutput"):
        for value in unit.all("Service", key):
            words = value.removeprefix("-").removeprefix("append:").split()
            assert all(Path(w).is_absolute() for w in words if "/" in w), f"{key}={value}"

    # A pidfile left by a crash, naming a PID that now belongs to another process.
    p.pidfile.parent.mkdir(parents=True, exist_ok=True)
    p.pidfile.write_text(f"{stranger.pid}\n")
    log_before = p.proxy_log.stat().st_size
    # The manager's environment, not this shell's (no PYTHONPATH, no LiteLLM key): the unit must
    # bring everything it needs.
    prep = prepare(unit, dict(os.environ))
    assert "PYTHONPATH" not in prep.env and "LITELLM_MASTER_KEY" not in prep.env
    assert run_pre(unit, prep) is None
    assert not p.pidfile.exists()
    assert stranger.poll() is None
    main = spawn_main(unit, prep)
    try:
        key = _router_key(p)
        health = probes.wait_router(port, key, 30.0, alive=lambda: main.poll() is None)
        assert health.status == 200, health.body
        with httpx.Client(trust_env=False) as c:
            bare = c.get(f"http://127.0.0.1:{port}/health")
            assert bare.status_code == 200 and "local_up" not in bare.json()  # liveness only without the key
        assert pidfile.read_pid(p.pidfile) == main.pid
        main.send_signal(signal.SIGTERM)
        assert main.wait(timeout=30) == 0
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
    assert p.proxy_log.stat().st_size > log_before
    assert not p.pidfile.exists()


@dataclass
class FakeManager:
    bindir: Path
    state: Path

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.bindir}:{os.environ['PATH']}", "SWITCHYARD_INSTALL_STABLE_S": "1"}

    def main_pid(self) -> int:
        try:
            return int((self.state / f"{UNIT_NAME}.main.pid").read_text())
        except (OSError, ValueError):
            return 0


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[FakeManager]:
    p = Paths.from_env()
    fake = FakeManager(tmp_path / "fakebin", tmp_path / "systemd-state")
    install_fake_systemd(fake.bindir, fake.state, p.unit_dir, linger=False)
    yield fake
    subprocess.run(["systemctl", "--user", "stop", UNIT_NAME], env=dict(os.environ, **fake.env),
                   capture_output=True, check=False, timeout=60)
    stop_installed_proxy(p.pid_dir)


def test_service_step_with_a_user_manager_then_uninstall(
    shared_lab: Lab, tmp_path: Path, manager: FakeManager
) -> None:
    answers, port = _answers(shared_lab, tmp_path)
    r = run_installer("--answers", str(answers), *INSTALL,
                      env={"LITELLM_MASTER_KEY": shared_lab.key, **manager.env})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    p = Paths.from_env()
    made = calls(manager.state)
    start = made.index(f"start {UNIT_NAME}")
    assert made.index("daemon-reload") < made.index(f"enable {UNIT_NAME}") < start
    # Verified over the stability window: active, and the same main PID asked for more than once.
    after = made[start + 1:]
    assert f"is-active {UNIT_NAME}" in after
    assert after.count(f"show {UNIT_NAME} -p MainPID --value") >= 2
    main = manager.main_pid()
    assert pidfile.live_pid(p.pidfile) == main
    assert f"{UNIT_NAME} is active (PID {main}) and /health answers 200" in r.stdout
    assert "no systemd user manager answers here" not in r.stdout
    assert probes.router_health(port, _router_key(p)).status == 200
    assert pidfile.read_pid(p.pidfile) == main
    # Lingering is off: the administrator's command is named.
    assert "lingering is off" in r.stdout
    assert f"loginctl enable-linger {getpass.getuser()}" in r.stdout
    assert f"show-user {getpass.getuser()} -p Linger" in (manager.state / "loginctl-calls").read_text()
    # The service's output went where the unit says.
    assert p.proxy_log.stat().st_size > 0
    # The journal records how to undo it.
    journal = json.loads(p.journal_file.read_text())
    svc = journal["service"]
    assert svc["manager"] == "systemd" and svc["unit_file"] == str(p.unit_file)
    assert ["systemctl", "--user", "disable", "--now", UNIT_NAME] in svc["undo"]
    assert ["systemctl", "--user", "daemon-reload"] in svc["undo"]
    undo = {tuple(a["argv"]): a["undo"] for a in journal["runs"][-1]["actions"] if a["op"] == "command"}
    assert undo[("systemctl", "--user", "enable", UNIT_NAME)] == ["systemctl", "--user", "disable", UNIT_NAME]
    assert undo[("systemctl", "--user", "start", UNIT_NAME)] == ["systemctl", "--user", "stop", UNIT_NAME]
    assert str(p.proxy_log) in journal["logs"]

    # The uninstaller replays it through the same manager: disable --now, unit removed, reload.
    n = len(calls(manager.state))
    u = subprocess.run([sys.executable, str(REPO / "uninstall.py"), "--no-color", "--yes"], capture_output=True,
                       text=True, env=dict(os.environ, **manager.env), cwd="/", timeout=120, check=False, input="")
    assert u.returncode == 0, u.stdout[-3000:] + u.stderr[-3000:]
    later = calls(manager.state)[n:]
    assert later.index(f"disable --now {UNIT_NAME}") < later.index("daemon-reload")
    assert not p.unit_file.exists()
    assert procs.gone(main)
    assert probes.port_free(port)


def test_failing_start_rolls_back(shared_lab: Lab, tmp_path: Path, manager: FakeManager) -> None:
    answers, port = _answers(shared_lab, tmp_path)
    p = Paths.from_env()
    before = snapshot(p.home, *(d for d in [p.runtime_dir] if d), ignore=("user-litellm",))
    # The unit's real ExecStart, with an option the proxy refuses: it exits at once.
    (manager.state / "exec-start-extra").write_text("--no-such-option\n")
    r = run_installer("--answers", str(answers), *INSTALL,
                      env={"LITELLM_MASTER_KEY": shared_lab.key, **manager.env})
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    stopped = [ln for ln in r.stderr.splitlines() if "install stopped" in ln]
    assert len(stopped) == 1 and UNIT_NAME in stopped[0] and str(p.proxy_log) in stopped[0], r.stderr
    assert "Traceback" not in r.stderr
    assert "Rolled back: the files are as they were before this run." in r.stdout
    made = calls(manager.state)
    assert made.index(f"start {UNIT_NAME}") < made.index(f"disable {UNIT_NAME}") < len(made) - 1
    assert made[-1] == "daemon-reload"  # the manager forgets the removed unit
    assert not (manager.state / "enabled" / UNIT_NAME).exists()
    assert snapshot(p.home, *(d for d in [p.runtime_dir] if d), ignore=("user-litellm",)) == before
    assert probes.port_free(port)
