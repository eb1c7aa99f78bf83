"""uninstall.py against hand-made journals: the systemd branch (with a recording `systemctl` on PATH, since
build machines have no user manager), a pidfile naming a process that is not Switchyard, a corrupt journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from installer.journal import empty_state, sha256_bytes
from proxy.host.paths import UNIT_NAME, Paths
from tests.test_installer_support import REPO, snapshot

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "{log}"
case "$*" in
  *is-system-running*) echo running ;;
esac
exit 0
"""


def run_uninstall(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    e.update(env or {})
    return subprocess.run([sys.executable, str(REPO / "uninstall.py"), "--no-color", *args], capture_output=True,
                          text=True, env=e, cwd="/", timeout=120, check=False, input="")


def write_journal(p: Paths, state: dict[str, Any]) -> None:
    p.journal_file.parent.mkdir(parents=True, exist_ok=True)
    p.journal_file.write_text(json.dumps(state, indent=2) + "\n")


def own_file(state: dict[str, Any], path: Path, data: bytes, role: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    state["files_created"][str(path)] = {"sha256": sha256_bytes(data), "mode": "0644", "step": "render", "role": role}


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_systemd_service_is_disabled_unit_removed_then_reloaded(tmp_path: Path) -> None:
    p = Paths.from_env()
    before = snapshot(p.home)
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    log = tmp_path / "systemctl.log"
    (bindir / "systemctl").write_text(FAKE_SYSTEMCTL.format(log=log))
    (bindir / "systemctl").chmod(0o755)
    state = empty_state()
    state["dirs_created"] = [str(p.unit_dir.parent), str(p.unit_dir), str(p.state_dir)]
    own_file(state, p.unit_file, b"[Unit]\nDescription=Switchyard\n", "unit")
    state["dirs_created"] += [str(p.data_dir)]
    own_file(state, p.uninstall_script, (REPO / "uninstaller" / "bootstrap.py").read_bytes(), "uninstaller")
    state["service"] = {"manager": "systemd", "unit_name": UNIT_NAME, "unit_file": str(p.unit_file), "enabled": True,
                        "started": True, "pidfile": str(p.pidfile),
                        "undo": [["systemctl", "--user", "disable", "--now", UNIT_NAME]]}
    state["status"] = "installed"
    write_journal(p, state)

    r = run_uninstall("--yes", env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert r.returncode == 0, r.stdout + r.stderr
    calls = log.read_text().splitlines()
    assert calls.index(f"--user disable --now {UNIT_NAME}") < calls.index("--user daemon-reload")
    assert f"stopped and disabled {UNIT_NAME}" in r.stdout and "reloaded the systemd user manager" in r.stdout
    assert f"removed the uninstaller script {p.uninstall_script}" in r.stdout  # nothing failed: it goes too
    assert snapshot(p.home) == before  # unit, its directories, journal and state dir all gone


def test_pidfile_of_a_stranger_is_not_signalled(sleeper: subprocess.Popen[bytes]) -> None:
    # After a reboot the PID in a stale pidfile may belong to anything: only the stale file goes.
    p = Paths.from_env()
    state = empty_state()
    p.pidfile.parent.mkdir(parents=True, exist_ok=True)
    p.pidfile.write_text(f"{sleeper.pid}\n")
    state["service"] = {"manager": "background", "unit_name": UNIT_NAME, "unit_file": str(p.unit_file),
                        "enabled": False, "started": True, "pidfile": str(p.pidfile),
                        "undo": [["kill", "-TERM", str(sleeper.pid)]]}
    write_journal(p, state)
    r = run_uninstall("--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sleeper.poll() is None
    assert not p.pidfile.exists() and f"removed the pidfile {p.pidfile}" in r.stdout


def test_corrupt_journal_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    p = Paths.from_env()
    p.journal_file.parent.mkdir(parents=True)
    p.journal_file.write_text("{not json")
    before = snapshot(p.home)
    r = run_uninstall("--yes")
    assert r.returncode == 2
    assert r.stderr.startswith(f"uninstall: cannot read the journal {p.journal_file}")
    assert len(r.stderr.strip().splitlines()) == 1
    assert snapshot(p.home) == before


def test_a_failed_step_does_not_stop_the_others_and_exits_nonzero(tmp_path: Path) -> None:
    p = Paths.from_env()
    state = empty_state()
    state["dirs_created"] = [str(p.config_dir)]
    own_file(state, p.config_file, b"x = 1\n", "config")
    own_file(state, p.env_file, b"K=v\n", "env")
    own_file(state, p.uninstall_script, (REPO / "uninstaller" / "bootstrap.py").read_bytes(), "uninstaller")
    # The user's LiteLLM config was patched, with a restart command that fails.
    user_cfg = tmp_path / "litellm.yaml"
    original, patched = b"model_list: []\n", b"model_list: []\nlitellm_settings:\n  drop_params: true\n"
    backup = p.backups_dir / "stamp" / "litellm.yaml.prev"
    backup.parent.mkdir(parents=True)
    backup.write_bytes(original)
    user_cfg.write_bytes(patched)
    state["files_modified"][str(user_cfg)] = {
        "backup": str(backup), "sha256_before": sha256_bytes(original), "sha256_after": sha256_bytes(patched),
        "restore_exact": True, "step": "litellm_yaml",
        "yaml_changes": [{"file": str(user_cfg), "locator": {"section": "/"}, "key": "litellm_settings",
                          "action": "section_added", "value": {"drop_params": True}}],
    }
    state["litellm"] = {"config": str(user_cfg), "url": "http://127.0.0.1:9", "restart_command": "exit 3"}
    write_journal(p, state)
    r = run_uninstall("--yes")
    assert r.returncode == 1
    assert "FAILED" in r.stdout and "the LiteLLM restart command 'exit 3' exited 3" in r.stdout
    assert "finish by hand: run `exit 3`" in r.stdout
    assert user_cfg.read_bytes() == original
    assert not p.config_file.exists() and not p.env_file.exists() and not p.config_dir.exists()
    assert backup.read_bytes() == original  # kept (no --purge)
    # Something failed: the deployed uninstaller stays, so the user can run it again to finish.
    assert p.uninstall_script.exists()
    assert f"run it again to finish: python3 {p.uninstall_script}" in r.stdout


def test_interrupted_run_actions_are_undone_too(tmp_path: Path) -> None:
    """Killed mid-step: a file created but not yet recorded as ours, a venv being built, directories."""
    p = Paths.from_env()
    before = snapshot(p.home)
    state = empty_state()
    for d in (p.config_dir, p.data_dir, p.venv_dir / "bin"):
        d.mkdir(parents=True, exist_ok=True)
    half = p.config_dir / "config.toml"
    half.write_bytes(b"half-writ")
    (p.venv_dir / "bin" / "python").write_bytes(b"")
    state["dirs_created"] = [str(p.state_dir)]
    state["runs"] = [{"started_at": "t", "finished_at": None, "status": "running", "actions": [
        {"op": "mkdir", "path": str(p.config_dir)},
        {"op": "create", "path": str(half)},
        {"op": "mkdir", "path": str(p.data_dir)},
        {"op": "venv", "path": str(p.venv_dir), "previous": None},
    ]}]
    write_journal(p, state)
    r = run_uninstall("--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the last install was interrupted" in r.stdout
    assert snapshot(p.home) == before


def test_changed_file_is_deleted_only_when_the_user_says_so(tmp_path: Path) -> None:
    p = Paths.from_env()
    state = empty_state()
    own_file(state, p.config_file, b"x = 1\n", "config")
    own_file(state, p.answers_file, b"port: 1\n", "answers")
    p.config_file.write_bytes(b"x = 2  # mine\n")
    p.answers_file.write_bytes(b"port: 2\n")
    write_journal(p, state)
    plan = run_uninstall("--dry-run")
    assert f"router config {p.config_file}: CHANGED since Switchyard wrote it (you will be asked)" in plan.stdout
    # Files step: yes; delete the changed config: yes; delete the changed answers file: no.
    r = subprocess.run(
        [sys.executable, str(REPO / "uninstall.py"), "--no-color"], capture_output=True, text=True, timeout=120,
        check=False, input="y\ny\nn\n", cwd="/", env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert not p.config_file.exists()
    assert p.answers_file.read_bytes() == b"port: 2\n"
    assert f"answers file {p.answers_file}: changed since Switchyard wrote it, so kept" in r.stdout


def test_yaml_the_user_broke_fails_that_step_only(tmp_path: Path) -> None:
    p = Paths.from_env()
    state = empty_state()
    own_file(state, p.env_file, b"K=v\n", "env")
    user_cfg = tmp_path / "litellm.yaml"
    original, patched = b"model_list: []\n", b"model_list: []\nlitellm_settings:\n  drop_params: true\n"
    user_cfg.write_bytes(patched + b"oops: [\n")
    state["files_modified"][str(user_cfg)] = {
        "backup": None, "sha256_before": sha256_bytes(original), "sha256_after": sha256_bytes(patched),
        "restore_exact": True, "step": "litellm_yaml",
        "yaml_changes": [{"file": str(user_cfg), "locator": {"section": "/"}, "key": "litellm_settings",
                          "action": "section_added", "value": {"drop_params": True}}],
    }
    write_journal(p, state)
    r = run_uninstall("--yes")
    assert r.returncode == 1
    assert f"{user_cfg}:5: not valid YAML" in r.stdout
    assert f"finish by hand: remove Switchyard's litellm_settings settings from {user_cfg} by hand" in r.stdout
    assert user_cfg.read_bytes() == patched + b"oops: [\n"
    assert not p.env_file.exists()
    # The failed part stays in the journal for a later run.
    assert str(user_cfg) in json.loads(p.journal_file.read_text())["files_modified"]


def test_a_copy_without_libraries_or_venv_says_what_to_do(tmp_path: Path) -> None:
    bare = "/usr/bin/python3"
    if not Path(bare).exists() or subprocess.run([bare, "-c", "import ruamel.yaml"],
                                                 capture_output=True, check=False).returncode == 0:
        pytest.skip("needs a python3 without ruamel.yaml")
    copy = tmp_path / "elsewhere" / "uninstall.py"
    copy.parent.mkdir()
    copy.write_bytes((REPO / "uninstaller" / "bootstrap.py").read_bytes())
    r = subprocess.run([bare, str(copy), "--yes"], capture_output=True, text=True, timeout=60, check=False,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 2
    assert "uninstall: cannot import" in r.stderr and "no Switchyard virtual environment was found" in r.stderr


def test_litellm_config_behind_a_symlink_keeps_its_link(tmp_path: Path) -> None:
    p = Paths.from_env()
    state = empty_state()
    real = tmp_path / "dotfiles" / "litellm.yaml"
    real.parent.mkdir()
    link = tmp_path / "litellm.yaml"
    link.symlink_to(real)
    original, patched = b"model_list: []\n", b"model_list: []\nlitellm_settings:\n  drop_params: true\n"
    backup = p.backups_dir / "stamp" / "litellm.yaml.prev"
    backup.parent.mkdir(parents=True)
    backup.write_bytes(original)
    real.write_bytes(patched)
    state["files_modified"][str(link)] = {
        "backup": str(backup), "sha256_before": sha256_bytes(original), "sha256_after": sha256_bytes(patched),
        "restore_exact": True, "step": "litellm_yaml", "yaml_changes": [],
    }
    write_journal(p, state)
    r = run_uninstall("--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert link.is_symlink() and real.read_bytes() == original


def test_uninstall_py_runs_under_an_isolated_python_without_site_packages() -> None:
    """``python3 -I -S uninstall.py``: no third-party package, no PYTHONPATH, not even the script's own
    directory on the path; it hands over to the deployed venv's Python, or says in one line what to do."""
    from tests.test_ops_support import deployed_venv

    argv = [sys.executable, "-I", "-S", str(REPO / "uninstall.py"), "--dry-run"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "uninstall: cannot import" in r.stderr and "no Switchyard virtual environment was found" in r.stderr
    # An inherit-style venv where the installer deploys one: the script re-runs itself with it.
    deployed_venv(Paths.from_env())
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "No Switchyard journal" in r.stdout
