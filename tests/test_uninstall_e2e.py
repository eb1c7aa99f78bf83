"""uninstall.py end to end: the real installer (`python -m installer --answers FILE --yes`) under a temporary HOME
against a stand-in local server and a real LiteLLM, then `python uninstall.py` as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from installer import probes
from installer.cli import STEPS
from proxy.host import http_probe
from proxy.host.paths import Paths
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


@pytest.fixture
def no_leaks() -> Iterator[None]:
    yield
    stop_installed_proxy(Path(os.environ["XDG_RUNTIME_DIR"]))
    stop_installed_proxy(Path(os.environ["XDG_STATE_HOME"]))


def run_uninstall(*args: str, script: Path = REPO / "uninstall.py", python: str = sys.executable,
                  stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # must not need the checkout on the path
    e.update(env or {})
    return subprocess.run(
        [python, str(script), "--no-color", *args], capture_output=True, text=True, env=e, cwd="/",
        timeout=300, check=False, input=stdin if stdin is not None else "",
    )


def tree(*extra: Path) -> dict[str, Any]:
    p = Paths.from_env()
    return snapshot(p.home, *(r for r in [p.runtime_dir] if r), *extra)


def kept_aside(snap: dict[str, Any]) -> dict[str, Any]:
    """The tree without what a non-purge uninstall keeps: logs, backups and the journal that lists them."""
    p = Paths.from_env()
    keep = {p.state_dir, p.backups_dir, p.journal_file, p.proxy_log, p.decisions_log}
    return {k: v for k, v in snap.items() if Path(k) not in keep and p.backups_dir not in Path(k).parents}


def user_copy(lab: Lab, tmp_path: Path) -> Path:
    dest = tmp_path / "user-litellm" / "config.yaml"
    dest.parent.mkdir(parents=True)
    shutil.copy2(lab.litellm_config, dest)
    return dest


def install(lab: Lab, tmp_path: Path, **over: Any) -> dict[str, Any]:
    values = answers_for(lab, **over)
    answers = write_answers(tmp_path / "answers.yml", values)
    r = run_installer("--answers", str(answers), *INSTALL, env={"LITELLM_MASTER_KEY": lab.key})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return values


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    return r.stdout


def test_no_journal_means_nothing_to_undo(tmp_path: Path) -> None:
    before = tree()
    out = ok(run_uninstall("--yes"))
    assert "nothing of Switchyard's found, nothing to undo" in out
    assert tree() == before


def test_install_then_uninstall_restores_everything(lab: Lab, tmp_path: Path, no_leaks: None) -> None:
    original = lab.litellm_config.read_bytes()
    lab.litellm_config.chmod(0o640)
    before = tree()
    assert http_probe.messages_probe(lab.litellm_url, lab.key, "cloud-simple").status == 400
    values = install(lab, tmp_path, litellm_restart=lab.restart_cmd)
    assert http_probe.messages_probe(lab.litellm_url, lab.key, "cloud-simple").ok
    p = Paths.from_env()
    assert p.venv_python.exists() and probes.router_health(values["port"], "x").status in (401, 403)

    # A dry run shows the plan and changes nothing.
    installed = tree()
    out = ok(run_uninstall("--dry-run"))
    assert "Dry run: nothing was changed." in out
    assert f"restore {lab.litellm_config} byte for byte" in out and "-      drop_params: true" in out
    assert f"remove the launcher {p.launcher('claude-routed')}" in out
    assert f"remove the uninstaller script {p.uninstall_script} (last;" in out
    assert tree() == installed
    assert not probes.port_free(values["port"])

    out = ok(run_uninstall("--yes"))
    assert "Switchyard is uninstalled." in out and "FAILED" not in out
    assert lab.litellm_config.read_bytes() == original
    assert stat.S_IMODE(lab.litellm_config.stat().st_mode) == 0o640
    # LiteLLM was restarted on the restored file: it answers, and the strict upstream rejects the fields again.
    probes.litellm_live(lab.litellm_url)
    assert http_probe.messages_probe(lab.litellm_url, lab.key, "cloud-simple").status == 400
    assert probes.port_free(values["port"])
    after = tree()
    assert kept_aside(after) == kept_aside(before)
    assert f"logs kept (delete with --purge): {p.proxy_log}" in out
    assert f"backups kept under {p.backups_dir}" in out
    journal = json.loads(p.journal_file.read_text())
    assert journal["status"] == "uninstalled" and not journal["files_created"] and journal["venv"] is None

    # A second run has nothing to undo and changes nothing.
    out = ok(run_uninstall("--yes"))
    assert "Nothing to undo" in out and str(p.proxy_log) in out
    assert tree() == after

    # --purge takes the logs, backups and journal too: the tree is exactly as before the install.
    out = ok(run_uninstall("--yes", "--purge"))
    assert tree() == before
    out = ok(run_uninstall("--yes"))
    assert "nothing of Switchyard's found" in out


def test_user_edit_to_the_litellm_yaml_survives(shared_lab: Lab, tmp_path: Path, no_leaks: None) -> None:
    cfg = user_copy(shared_lab, tmp_path)
    original = cfg.read_text()
    before = tree(cfg)
    install(shared_lab, tmp_path, litellm_config=str(cfg))
    patched = cfg.read_text()
    assert "additional_drop_params" in patched
    edited = patched.replace("request_timeout: 600", "request_timeout: 900   # the user's edit")
    edited = edited.replace("router_settings:", "# routing, added by the user\nrouter_settings:")
    cfg.write_text(edited)

    out = ok(run_uninstall("--yes", "--purge"))
    assert "your edits stay" in out
    assert "-      drop_params: true" in out  # the diff is shown before writing
    got = cfg.read_text()
    assert "request_timeout: 900   # the user's edit" in got and "# routing, added by the user" in got
    assert "drop_params" not in got
    assert got == original.replace("request_timeout: 600", "request_timeout: 900   # the user's edit").replace(
        "router_settings:", "# routing, added by the user\nrouter_settings:")
    assert "restart it yourself" in out  # the installer was told the user restarts LiteLLM
    assert {k: v for k, v in tree(cfg).items() if k != str(cfg)} == {k: v for k, v in before.items() if k != str(cfg)}


@pytest.mark.parametrize("step", STEPS)
def test_interrupted_install_then_uninstall(shared_lab: Lab, tmp_path: Path, no_leaks: None, step: str) -> None:
    cfg = user_copy(shared_lab, tmp_path)
    original = cfg.read_bytes()
    values = answers_for(shared_lab, litellm_config=str(cfg))
    answers = write_answers(tmp_path / "answers.yml", values)
    before = tree(cfg)
    # SIGKILLed right after STEP did its work: a partial journal, no rollback.
    r = run_installer("--answers", str(answers), *INSTALL,
                      env={"LITELLM_MASTER_KEY": shared_lab.key, "SWITCHYARD_INSTALL_FAIL_AT": f"kill:{step}"})
    assert r.returncode == -9, r.stdout[-2000:] + r.stderr[-2000:]
    p = Paths.from_env()
    journal = json.loads(p.journal_file.read_text())
    assert journal["runs"][-1]["status"] == "running"  # a partial journal, no rollback happened
    if STEPS.index(step) >= STEPS.index("service"):
        assert not probes.port_free(values["port"])  # the proxy the killed installer started

    out = ok(run_uninstall("--yes", "--purge"))
    assert "the last install was interrupted" in out
    assert cfg.read_bytes() == original
    assert tree(cfg) == before
    assert probes.port_free(values["port"])
    assert "nothing of Switchyard's found" in ok(run_uninstall("--yes"))


def test_rolled_back_install_leaves_nothing_to_undo(shared_lab: Lab, tmp_path: Path, no_leaks: None) -> None:
    answers = write_answers(tmp_path / "answers.yml", answers_for(shared_lab, litellm_config=str(
        user_copy(shared_lab, tmp_path))))
    r = run_installer("--answers", str(answers), *INSTALL,
                      env={"LITELLM_MASTER_KEY": shared_lab.key, "SWITCHYARD_INSTALL_FAIL_AT": "deploy"})
    assert r.returncode == 1 and "Rolled back" in r.stdout
    assert "nothing of Switchyard's found" in ok(run_uninstall("--yes"))


def test_files_removed_or_changed_by_hand(shared_lab: Lab, tmp_path: Path, no_leaks: None) -> None:
    cfg = user_copy(shared_lab, tmp_path)
    install(shared_lab, tmp_path, litellm_config=str(cfg))
    p = Paths.from_env()
    p.launcher("claude-routed").unlink()
    p.answers_file.unlink()
    shutil.rmtree(p.venv_dir)
    p.env_file.write_text(p.env_file.read_text() + "MY_OWN=1\n")

    out = ok(run_uninstall("--yes"))
    assert f"launcher {p.launcher('claude-routed')}: already gone" in out
    assert f"answers file {p.answers_file}: already gone" in out
    assert f"secrets file {p.env_file}: changed since Switchyard wrote it, so kept" in out
    assert p.env_file.exists() and "MY_OWN=1" in p.env_file.read_text()
    for gone in (p.config_file, p.unit_file, p.pidfile):
        assert not gone.exists()
    assert "drop_params" not in cfg.read_text()
    # The kept file is still listed (it is Switchyard's file, changed): asked about again, kept again.
    out = ok(run_uninstall("--yes"))
    assert "changed since Switchyard wrote it, so kept" in out


def test_each_step_asks_and_a_no_is_kept_for_later(shared_lab: Lab, tmp_path: Path, no_leaks: None) -> None:
    cfg = user_copy(shared_lab, tmp_path)
    values = install(shared_lab, tmp_path, litellm_config=str(cfg))
    p = Paths.from_env()
    # Service, LiteLLM config, unit, files: yes; virtual environment: no.
    r = run_uninstall(stdin="y\ny\ny\ny\nn\n")
    out = ok(r)
    assert out.count("[Y/n]") == 5
    assert "Virtual environment: skipped at your request" in out
    assert p.venv_dir.exists() and not p.config_file.exists()
    # Not everything was undone: the deployed uninstaller stays so it can be run again.
    assert p.uninstall_script.exists() and "kept because not everything was undone" in out
    assert probes.port_free(values["port"])
    out = ok(run_uninstall("--yes", "--purge"))
    assert f"removed the virtual environment {p.venv_dir}" in out
    assert not p.venv_dir.exists() and not p.state_dir.exists() and not p.data_dir.exists()


def test_runs_from_a_deployed_copy_with_its_venv_python(shared_lab: Lab, tmp_path: Path, no_leaks: None) -> None:
    """The copy the installer deployed, started by an interpreter without the libraries, re-runs itself with the
    deployed venv's Python, which imports the uninstaller from the venv, not from the checkout; then both go."""
    cfg = user_copy(shared_lab, tmp_path)
    original = cfg.read_bytes()
    install(shared_lab, tmp_path, litellm_config=str(cfg))
    p = Paths.from_env()
    bare = shutil.which("python3", path="/usr/bin:/bin")
    if bare is None or subprocess.run([bare, "-c", "import ruamel.yaml"], capture_output=True).returncode == 0:
        pytest.skip("needs a python3 without ruamel.yaml to show the hand-over")
    assert p.uninstall_script.is_file()
    # The venv's own copies are what the deployed script runs with (inherit mode: no path to the checkout).
    site = next((p.venv_dir / "lib").glob("python3*/site-packages"))
    where = subprocess.run([str(p.venv_python), "-c", "import installer, uninstaller; print(uninstaller.__file__)"],
                           capture_output=True, text=True, cwd="/", check=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert Path(where.stdout.strip()).is_relative_to(site)
    out = ok(run_uninstall("--yes", script=p.uninstall_script, python=bare))
    assert "Switchyard is uninstalled." in out and "FAILED" not in out
    assert f"removed the uninstaller script {p.uninstall_script}" in out
    assert not p.venv_dir.exists() and not p.config_file.exists() and not p.uninstall_script.exists()
    assert not p.data_dir.exists()
    assert cfg.read_bytes() == original
