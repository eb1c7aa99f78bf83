"""start / status / stop through ``systemctl --user`` when the unit exists and a user manager answers.

No user manager runs on the build machines, so ``systemctl`` is replaced on PATH by the stand-in
manager of :mod:`tests.fake_systemd`: ``start`` runs the unit's ExecStartPre/ExecStart lines as
systemd would (the main process is the real proxy), ``show`` reports its state, ``stop`` sends SIGTERM.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy.host import pidfile, procs
from proxy.host.paths import Paths
from tests.conftest import UserPaths
from tests.fake_systemd import calls as fake_calls
from tests.fake_systemd import install_fake_systemd
from tests.test_ops_support import deployed_venv, run_cli, write_setup


@pytest.fixture
def fake_systemd(
    user_paths: UserPaths, tmp_path: Path, free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    config = write_setup(user_paths, port=free_port())
    state = tmp_path / "systemd-state"
    unit = user_paths.config / "systemd" / "user" / "switchyard.service"
    unit.parent.mkdir(parents=True)
    install_fake_systemd(tmp_path / "bin", state, unit.parent)
    # The installer's real unit, running the proxy from a venv where the installer deploys it.
    from installer import render
    from tests.test_installer_units import render_input

    p = Paths.from_env()
    deployed_venv(p)
    p.proxy_log.parent.mkdir(parents=True, exist_ok=True)
    assert config == p.config_file
    unit.write_bytes(render.render_unit(render_input()))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    yield state
    run_cli("stop")


def test_start_status_stop_go_through_systemctl(fake_systemd: Path, user_paths: UserPaths) -> None:
    res = run_cli("start", "--timeout", "20")
    assert res.returncode == 0, res.stderr
    assert "started switchyard.service" in res.stdout
    main = int((fake_systemd / "switchyard.service.main.pid").read_text())
    assert pidfile.live_pid(Paths.from_env().pidfile) == main
    res = run_cli("status")
    assert f"✓ service: systemd unit switchyard.service active (running), PID {main}" in res.stdout
    assert f"✓ port: PID {main} listens on" in res.stdout
    assert "✓ /health" in res.stdout
    res = run_cli("stop")
    assert res.returncode == 0 and "stopped switchyard.service" in res.stdout
    assert procs.gone(main)
    calls = fake_calls(fake_systemd)
    assert "start switchyard.service" in calls and "stop switchyard.service" in calls
    res = run_cli("status")
    assert res.returncode == 1
    assert "✗ service: systemd unit switchyard.service is inactive (dead)" in res.stdout
    assert "journalctl --user -u switchyard.service" in res.stdout
