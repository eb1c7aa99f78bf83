"""The interactive installer driven in a real terminal (pexpect), answering every prompt."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pexpect

from installer import probes
from proxy.config import load_config
from proxy.host.paths import Paths
from tests.standins import OllamaLocal
from tests.standins.base import free_port
from tests.test_installer_support import REPO, Lab, snapshot, stop_installed_proxy

DOWN = "\x1b[B"
UP = "\x1b[A"
KILL_LINE = "\x15"  # Ctrl-U: clear the pre-filled default


def spawn(*args: str, env_extra: dict[str, str] | None = None) -> pexpect.spawn:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(REPO), "TERM": "xterm", "COLUMNS": "200", "LINES": "50"})
    env.update(env_extra or {})
    return pexpect.spawn(
        sys.executable, ["-m", "installer", *args], cwd=str(REPO), env=env, encoding="utf-8",
        timeout=60, dimensions=(50, 200),
    )


def answer_text(child: pexpect.spawn, prompt: str, value: str) -> None:
    child.expect_exact(prompt)
    child.send(KILL_LINE + value + "\r")


def test_interactive_install_end_to_end(shared_lab: Lab, tmp_path: Path) -> None:
    cfg_copy = tmp_path / "litellm.yaml"
    cfg_copy.write_bytes(shared_lab.litellm_config.read_bytes())
    cloud = probes.litellm_models(shared_lab.litellm_url, shared_lab.key)
    port = free_port()
    child = spawn("--venv-mode", "inherit")
    transcript: list[str] = []
    try:
        answer_text(child, "Local model server URL", shared_lab.local.url)
        child.expect_exact("Local model")
        child.send(DOWN + "\r")  # the second loaded model: other-local
        answer_text(child, "LiteLLM URL", shared_lab.litellm_url)
        child.expect_exact("LiteLLM key (hidden")
        child.send(shared_lab.key + "\r")
        child.expect_exact("SIMPLE tier")
        child.send(DOWN * cloud.index("cloud-simple") + "\r")
        child.expect_exact("COMPLEX tier")
        # The cursor starts on the simple model.
        child.send(DOWN * ((cloud.index("cloud-complex") - cloud.index("cloud-simple")) % len(cloud)) + "\r")
        # Running LiteLLM processes' configs are offered first; "Another path..." is last (the list wraps).
        child.expect_exact("The LiteLLM config file")
        child.send(UP + "\r")
        answer_text(child, "Path of the LiteLLM config", str(cfg_copy))
        child.expect_exact("Entries that get the drop list")
        child.send("\r")  # keep the pre-checked entries behind the two cloud names
        child.expect_exact("How is LiteLLM restarted?")
        child.send(DOWN + "\r")  # "I will restart it myself"
        answer_text(child, "Router port", str(port))
        answer_text(child, "Launcher name", "claude-sw")
        child.expect_exact("Change the advanced settings")
        child.send("n")
        child.expect_exact("Apply this plan?")
        transcript.append(child.before)
        child.send("y")
        for question in ("Patch the LiteLLM config now?", "Write the secrets file", "Write the router config",
                         "virtual environment", "Start the Switchyard service?", "Run the classifier check"):
            child.expect_exact(question, timeout=120)
            child.send("y")
        child.expect_exact("Done.", timeout=120)
        child.expect(pexpect.EOF, timeout=60)
        transcript.append(child.before)
        child.close()
        assert child.exitstatus == 0
        output = "".join(transcript)
        assert shared_lab.key not in output  # the hidden key is never echoed
        assert "+      drop_params: true" in output
        p = Paths.from_env()
        cfg = load_config(p.config_file)
        assert cfg.local.model == "other-local" and cfg.listen.port == port
        assert p.launcher("claude-sw").exists()
        saved = p.answers_file.read_text()
        assert "local_model: other-local" in saved and shared_lab.key not in saved
        assert "drop_params: true" in cfg_copy.read_text()
    finally:
        child.close(force=True)
        stop_installed_proxy(Path(os.environ["XDG_RUNTIME_DIR"]))


def test_ctrl_c_at_a_prompt_changes_nothing(shared_lab: Lab, tmp_path: Path) -> None:
    p = Paths.from_env()
    before = snapshot(p.home)
    child = spawn()
    try:
        answer_text(child, "Local model server URL", shared_lab.local.url)
        child.expect_exact("Local model")
        child.sendintr()
        child.expect_exact("nothing was changed")
        child.expect(pexpect.EOF)
        child.close()
        assert child.signalstatus == signal.SIGINT  # ends by the signal, as an uncaught Ctrl-C would
    finally:
        child.close(force=True)
    assert snapshot(p.home) == before


def test_unreachable_local_server_is_asked_again(shared_lab: Lab, tmp_path: Path) -> None:
    child = spawn()
    try:
        answer_text(child, "Local model server URL", f"http://127.0.0.1:{free_port()}")
        child.expect_exact("LM Studio")  # the hints for the common servers
        answer_text(child, "Local model server URL", shared_lab.local.url)
        child.expect_exact("qwen-local")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_local_server_that_takes_nothing_asks_and_no_stops(tmp_path: Path) -> None:
    p = Paths.from_env()
    before = snapshot(p.home)
    with OllamaLocal(models=("qwen3",)) as ollama:  # Ollama's default 4,096-token context
        child = spawn()
        try:
            answer_text(child, "Local model server URL", ollama.url)
            child.expect_exact("Local model")
            child.send("\r")  # its only model
            child.expect_exact("Continue anyway?")
            shown = child.before
            child.send("n")
            child.expect_exact("nothing was changed")
            child.expect(pexpect.EOF)
            child.close()
            assert child.exitstatus == 130
        finally:
            child.close(force=True)
    assert "Local server: Ollama 0.14.2, 4,096 tokens per request, takes tools" in shown
    assert "! local context fits Claude Code: Ollama: 4,096 tokens per request;" in shown
    assert "fix: set OLLAMA_CONTEXT_LENGTH=65536 for the Ollama server" in shown
    assert snapshot(p.home) == before


def test_local_server_that_takes_nothing_asks_and_yes_goes_on(tmp_path: Path) -> None:
    with OllamaLocal(models=("qwen3",)) as ollama:
        child = spawn()
        try:
            answer_text(child, "Local model server URL", ollama.url)
            child.expect_exact("Local model")
            child.send("\r")
            child.expect_exact("Continue anyway?")
            child.send("y")
            child.expect_exact("LiteLLM URL")  # the next question
            child.sendintr()
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
