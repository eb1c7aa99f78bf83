"""The installer end to end (`python -m installer` as a subprocess) under a temporary HOME,
against a stand-in local server and a real LiteLLM in front of a strict upstream."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from installer import probes
from installer.cli import STEPS, TAKES_NOTHING
from proxy.config import load_config
from proxy.host import http_probe
from proxy.host.envfile import read_env_file
from proxy.host.paths import Paths
from tests.standins import OllamaLocal
from tests.test_installer_support import (
    REPO,
    Lab,
    answers_for,
    run_installer,
    snapshot,
    stop_installed_proxy,
    write_answers,
)

LOGS = ("proxy.log", "decisions.jsonl")


@pytest.fixture
def env_for(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    yield {}
    stop_installed_proxy(Path(os.environ["XDG_RUNTIME_DIR"]))
    stop_installed_proxy(Path(os.environ["XDG_STATE_HOME"]))


def user_copy(lab: Lab, tmp_path: Path) -> Path:
    """A private copy of the lab's LiteLLM config (for tests that do not restart LiteLLM)."""
    dest = tmp_path / "user-litellm" / "config.yaml"
    dest.parent.mkdir(parents=True)
    shutil.copy2(lab.litellm_config, dest)
    return dest


def tree(tmp_path: Path, *extra: Path) -> dict[str, Any]:
    p = Paths.from_env()
    roots = [p.home, *(r for r in [p.runtime_dir] if r), *extra]
    return snapshot(*roots)


def without_logs(snap: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snap.items() if Path(k).name not in LOGS}


def test_noninteractive_install_then_rerun_is_noop(shared_lab: Lab, tmp_path: Path, env_for: dict[str, str]) -> None:
    cfg_copy = user_copy(shared_lab, tmp_path)
    original = cfg_copy.read_bytes()
    values = answers_for(shared_lab, litellm_config=str(cfg_copy))
    answers = write_answers(tmp_path / "answers.yml", values)
    env = {"LITELLM_MASTER_KEY": shared_lab.key}
    r = run_installer("--answers", str(answers), "--yes", "--venv-mode", "inherit", "--no-classifier-check", env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    p = Paths.from_env()

    # Router config: loads with the proxy's own loader, absolute paths, names the key variables.
    cfg = load_config(p.config_file)
    assert cfg.listen.port == values["port"]
    assert cfg.local.base_url == shared_lab.local.v1_url and cfg.local.model == "qwen-local"
    assert (cfg.cloud.simple_model, cfg.cloud.complex_model) == ("cloud-simple", "cloud-complex")
    assert cfg.listen.pidfile == str(p.pidfile) and cfg.log.decisions == str(p.decisions_log)
    # Secrets: 0600, both keys, nowhere else.
    assert stat.S_IMODE(p.env_file.stat().st_mode) == 0o600
    env_values = read_env_file(p.env_file)
    assert env_values["SWITCHYARD_LITELLM_KEY"] == shared_lab.key
    router_key = env_values["SWITCHYARD_ROUTER_KEY"]
    assert len(router_key) >= 32
    # The key for prompt hashes: generated once, kept by the re-run below (the tree stays identical).
    hash_key = env_values["SWITCHYARD_HASH_KEY"]
    assert len(hash_key) == 64 and int(hash_key, 16) >= 0 and cfg.log.hash_key_env == "SWITCHYARD_HASH_KEY"
    for f in (p.config_file, p.unit_file, p.answers_file, p.launcher("claude-routed"), p.journal_file):
        text = f.read_text()
        assert shared_lab.key not in text and router_key not in text and hash_key not in text, f
    assert shared_lab.key not in r.stdout + r.stderr and router_key not in r.stdout + r.stderr
    # Unit and launcher.
    unit = p.unit_file.read_text()
    assert f"ExecStart={p.venv_python} -m proxy serve --config {p.config_file}" in unit
    assert stat.S_IMODE(p.launcher("claude-routed").stat().st_mode) == 0o755
    assert 'exec claude "$@"' in p.launcher("claude-routed").read_text()
    # The venv runs the proxy, and the uninstaller is deployed beside it (with the packages it imports).
    assert p.venv_python.exists()
    assert p.uninstall_script.read_bytes() == (REPO / "uninstaller" / "bootstrap.py").read_bytes()
    assert stat.S_IMODE(p.uninstall_script.stat().st_mode) == 0o755
    assert f"undo everything: python3 {p.uninstall_script}" in r.stdout
    # The service answers /health in full with the key, with liveness only without it.
    health = probes.router_health(values["port"], router_key)
    assert health.status == 200, health.body
    with httpx.Client(trust_env=False) as c:
        bare = c.get(f"http://127.0.0.1:{values['port']}/health")
        assert bare.status_code == 200 and "local_up" not in bare.json()  # liveness only without the key
    assert "no systemd user manager answers here" in r.stdout
    # LiteLLM YAML: only added lines; the backup is the byte-identical original.
    journal = json.loads(p.journal_file.read_text())
    rec = journal["files_modified"][str(cfg_copy)]
    assert Path(rec["backup"]).read_bytes() == original
    new_lines = cfg_copy.read_text().splitlines()
    for line in original.decode().splitlines():
        assert line in new_lines
    assert journal["status"] == "installed" and journal["runs"][-1]["status"] == "complete"
    assert journal["service"]["manager"] == "background"
    assert journal["files_created"][str(p.uninstall_script)]["role"] == "uninstaller"
    saved = p.answers_file.read_text()
    assert "litellm_restart: none" in saved and f"port: {values['port']}" in saved

    # Second run, no answers file: previous answers are the defaults; nothing changes.
    before = without_logs(tree(tmp_path, cfg_copy))
    r2 = run_installer("--yes", "--venv-mode", "inherit", "--no-classifier-check", env=env)
    assert r2.returncode == 0, r2.stdout[-3000:] + r2.stderr[-3000:]
    assert "Nothing to change" in r2.stdout
    assert without_logs(tree(tmp_path, cfg_copy)) == before
    assert len(list(p.backups_dir.iterdir())) == 1


def test_dry_run_leaves_tree_byte_identical(shared_lab: Lab, tmp_path: Path, env_for: dict[str, str]) -> None:
    cfg_copy = user_copy(shared_lab, tmp_path)
    answers = write_answers(tmp_path / "answers.yml", answers_for(shared_lab, litellm_config=str(cfg_copy)))
    before = tree(tmp_path, cfg_copy)
    r = run_installer("--answers", str(answers), "--yes", "--dry-run", "--venv-mode", "inherit",
                      env={"LITELLM_MASTER_KEY": shared_lab.key})
    assert r.returncode == 0, r.stderr
    assert "+      drop_params: true" in r.stdout
    assert "Dry run: nothing was changed." in r.stdout
    assert tree(tmp_path, cfg_copy) == before


def test_missing_and_invalid_answers_listed_at_once(shared_lab: Lab, tmp_path: Path, env_for: dict[str, str]) -> None:
    values = answers_for(shared_lab, cloud_simple_model="not-a-model", launcher_name="bad/name")
    del values["local_model"]
    del values["litellm_restart"]
    answers = write_answers(tmp_path / "answers.yml", values)
    before = tree(tmp_path)
    r = run_installer("--answers", str(answers), "--yes", "--venv-mode", "inherit",
                      env={"LITELLM_MASTER_KEY": shared_lab.key})
    assert r.returncode == 2
    for needle in ("local_model is missing", "litellm_restart is missing", "launcher_name must be",
                   "cloud_simple_model: LiteLLM does not expose 'not-a-model'"):
        assert needle in r.stderr
    assert tree(tmp_path) == before


def test_missing_litellm_key_and_bad_flag_override(shared_lab: Lab, tmp_path: Path, env_for: dict[str, str]) -> None:
    answers = write_answers(tmp_path / "answers.yml", answers_for(shared_lab))
    r = run_installer("--answers", str(answers), "--yes", "--local-model", "not-loaded", "--venv-mode", "inherit")
    assert r.returncode == 2
    assert "LITELLM_MASTER_KEY" in r.stderr
    assert "local_model: 'not-loaded' is not loaded" in r.stderr


# The run ends by the signal that stopped it (Popen: -signum), after the rollback.
SIGNAL_SPECS = {"sigterm:deploy": -signal.SIGTERM, "sighup:secrets": -signal.SIGHUP, "sigquit:render": -signal.SIGQUIT,
                # A second signal during the rollback is deferred: the rollback finishes, the exit is the first's.
                "sigint:deploy,sigint:rollback": -signal.SIGINT, "sigterm:service,sigint:rollback": -signal.SIGTERM}


@pytest.mark.parametrize("spec", [*STEPS, *SIGNAL_SPECS])
def test_failure_at_each_step_rolls_back(shared_lab: Lab, tmp_path: Path, env_for: dict[str, str], spec: str) -> None:
    cfg_copy = user_copy(shared_lab, tmp_path)
    values = answers_for(shared_lab, litellm_config=str(cfg_copy))
    answers = write_answers(tmp_path / "answers.yml", values)
    before = tree(tmp_path, cfg_copy)
    r = run_installer("--answers", str(answers), "--yes", "--venv-mode", "inherit", "--no-classifier-check",
                      env={"LITELLM_MASTER_KEY": shared_lab.key, "SWITCHYARD_INSTALL_FAIL_AT": spec})
    assert r.returncode == SIGNAL_SPECS.get(spec, 1), r.stdout[-2000:] + r.stderr[-2000:]
    assert "Rolled back" in r.stdout
    assert "Aborted" not in r.stderr + r.stdout
    assert r.stderr.count("rolling back, please wait") == (1 if ":rollback" in spec else 0)
    assert tree(tmp_path, cfg_copy) == before
    assert probes.port_free(values["port"])


def test_restart_proves_the_fix(lab: Lab, tmp_path: Path, env_for: dict[str, str], litellm_bin: str) -> None:
    before = http_probe.messages_probe(lab.litellm_url, lab.key, "cloud-simple")
    assert before.status == 400 and "Extra inputs" in before.message()
    answers = write_answers(tmp_path / "answers.yml", answers_for(lab, litellm_restart=lab.restart_cmd))
    path = f"{Path(litellm_bin).parent}:{os.environ['PATH']}"
    r = run_installer("--answers", str(answers), "--yes", "--venv-mode", "inherit", "--no-classifier-check",
                      env={"LITELLM_MASTER_KEY": lab.key, "PATH": path})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "litellm --validate_config accepts the patched config" in r.stdout
    assert "now succeeds" in r.stdout
    assert http_probe.messages_probe(lab.litellm_url, lab.key, "cloud-simple").ok
    journal = json.loads(Paths.from_env().journal_file.read_text())
    assert journal["litellm"]["restart_command"] == lab.restart_cmd


def test_probe_failure_restores_backup_and_names_field(lab: Lab, tmp_path: Path, env_for: dict[str, str]) -> None:
    original = lab.litellm_config.read_bytes()
    # Only the complex entry gets the drop list, so the check request to the simple one still fails.
    values = answers_for(lab, litellm_restart=lab.restart_cmd, cloud_entries=["cloud-complex"])
    answers = write_answers(tmp_path / "answers.yml", values)
    before = tree(tmp_path)
    r = run_installer("--answers", str(answers), "--yes", "--venv-mode", "inherit", "--no-classifier-check",
                      env={"LITELLM_MASTER_KEY": lab.key})
    assert r.returncode == 1
    assert "field(s) getting through the entry" in r.stderr and ": reasoning, enable_thinking." in r.stderr
    assert lab.litellm_config.read_bytes() == original
    assert tree(tmp_path) == before
    # LiteLLM was restarted on the restored file and answers again.
    probes.litellm_live(lab.litellm_url)


def test_interrupted_restart_leaves_litellm_answering(lab: Lab, tmp_path: Path, env_for: dict[str, str]) -> None:
    """SIGTERM between the restart command and LiteLLM answering: the rollback restarts it on the restored
    file and waits, so right after "Rolled back" it answers (and rejects the thinking fields again)."""
    original = lab.litellm_config.read_bytes()
    values = answers_for(lab, litellm_restart=lab.restart_cmd)
    answers = write_answers(tmp_path / "answers.yml", values)
    r = run_installer("--answers", str(answers), "--yes", "--venv-mode", "inherit", "--no-classifier-check",
                      env={"LITELLM_MASTER_KEY": lab.key,
                           "SWITCHYARD_INSTALL_FAIL_AT": "sigterm:litellm_restart_command"})
    assert r.returncode == -signal.SIGTERM, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Rolled back" in r.stdout
    assert lab.litellm_config.read_bytes() == original
    probes.litellm_live(lab.litellm_url)  # one probe, no waiting: it must answer now
    after = http_probe.messages_probe(lab.litellm_url, lab.key, "cloud-simple")
    assert after.status == 400 and "Extra inputs" in after.message()  # running the restored config


def test_reconfigure_changes_only_what_differs(shared_lab: Lab, tmp_path: Path, env_for: dict[str, str]) -> None:
    cfg_copy = user_copy(shared_lab, tmp_path)
    values = answers_for(shared_lab, litellm_config=str(cfg_copy))
    answers = write_answers(tmp_path / "answers.yml", values)
    env = {"LITELLM_MASTER_KEY": shared_lab.key}
    r = run_installer("--answers", str(answers), "--yes", "--venv-mode", "inherit", "--no-classifier-check", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    p = Paths.from_env()
    yaml_after_first = cfg_copy.read_bytes()
    env_before = p.env_file.read_bytes()
    first_journal = json.loads(p.journal_file.read_text())
    new_port = values["port"] + 1 if probes.port_free(values["port"] + 1) else values["port"] + 2
    # A flag wins over the saved answers.
    r2 = run_installer("--yes", "--port", str(new_port), "--venv-mode", "inherit", "--no-classifier-check", env=env)
    assert r2.returncode == 0, r2.stdout[-3000:] + r2.stderr[-3000:]
    assert "unchanged " + str(p.env_file) in r2.stdout and "update " + str(p.config_file) in r2.stdout
    assert p.env_file.read_bytes() == env_before  # the router key is kept
    assert cfg_copy.read_bytes() == yaml_after_first  # LiteLLM YAML untouched, no new backup
    assert load_config(p.config_file).listen.port == new_port
    assert f"port: {new_port}" in p.answers_file.read_text()
    router_key = read_env_file(p.env_file)["SWITCHYARD_ROUTER_KEY"]
    assert probes.router_health(new_port, router_key).status == 200
    assert probes.port_free(values["port"])
    journal = json.loads(p.journal_file.read_text())
    assert [run["status"] for run in journal["runs"]] == ["complete", "complete"]
    assert journal["files_modified"] == first_journal["files_modified"]
    from installer.journal import sha256_file

    assert journal["files_created"][str(p.config_file)]["sha256"] == sha256_file(p.config_file)
    assert len(list(p.backups_dir.iterdir())) == 1


def test_local_server_that_takes_nothing_is_shown_and_yes_goes_on(
    shared_lab: Lab, tmp_path: Path, env_for: dict[str, str]
) -> None:
    cfg_copy = user_copy(shared_lab, tmp_path)
    with OllamaLocal(models=("qwen3",)) as ollama:  # Ollama's default 4,096-token context
        values = answers_for(shared_lab, litellm_config=str(cfg_copy), local_url=ollama.url, local_model="qwen3:latest")
        answers = write_answers(tmp_path / "answers.yml", values)
        r = run_installer("--answers", str(answers), "--yes", "--venv-mode", "inherit", "--no-classifier-check",
                          env={"LITELLM_MASTER_KEY": shared_lab.key})
        asked = [q.path for q in ollama.requests]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    plan = r.stdout.split("\nPlan\n", 1)[1]
    assert plan.startswith("  Local server: Ollama 0.14.2, 4,096 tokens per request, takes tools, no images")
    assert ("  ! local context fits Claude Code: Ollama: 4,096 tokens per request; Claude Code's requests need about "
            "19,000 plus 2,048 for the answer, so every one goes to the cloud\n"
            "      fix: set OLLAMA_CONTEXT_LENGTH=65536 for the Ollama server (or `PARAMETER num_ctx 65536` in a "
            "Modelfile) and restart it\n") in plan
    assert "  ! local server does not cut prompts silently: Ollama truncates prompts" in plan
    assert f"  ! {TAKES_NOTHING}; continuing as --yes asks\n" in plan
    # It went on: everything is installed, and the summary says it again.
    p = Paths.from_env()
    assert load_config(p.config_file).local.model == "qwen3:latest"
    done = r.stdout.split("\nDone.\n", 1)[1]
    assert TAKES_NOTHING in done and "-m proxy doctor" in done
    # The probe asked Ollama's own endpoints (and so did the proxy, once started).
    assert {"/api/version", "/api/ps", "/api/show"} <= set(asked)


def test_classifier_check_without_a_verdict_keeps_the_install(
    shared_lab: Lab, tmp_path: Path, env_for: dict[str, str]
) -> None:
    # The check once raised on a request without a verdict and rolled back the finished install.
    cfg_copy = user_copy(shared_lab, tmp_path)
    answers = write_answers(tmp_path / "answers.yml", answers_for(shared_lab, litellm_config=str(cfg_copy)))
    shared_lab.local.script_classifier("Hard to say.", "Hard to say.", "Hard to say.")
    try:
        r = run_installer("--answers", str(answers), "--yes", "--venv-mode", "inherit", "--classifier-check",
                          env={"LITELLM_MASTER_KEY": shared_lab.key})
    finally:
        shared_lab.local.reset_script()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Rolled back" not in r.stdout
    assert r.stdout.count("no verdict (empty: reply of 12 characters)") == 3
    assert "classify-empty" in r.stdout
    assert Paths.from_env().config_file.exists()
