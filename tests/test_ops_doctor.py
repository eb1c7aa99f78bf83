"""``switchyard doctor``: each known fault, made on purpose in a temporary HOME, is found and explained."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.capabilities import UNKNOWN, LocalCapabilities
from proxy.config import LocalConfig
from proxy.host.envfile import render_env
from proxy.host.http_probe import HttpResult
from proxy.host.paths import Paths
from proxy.host.procs import listeners
from proxy.ops import doctor as d
from proxy.ops.checks import Check, from_finding, render
from proxy.ops.status import Listener
from tests.conftest import LiteLLMCloud, UserPaths
from tests.litellm_proc import LiteLLMProcess, openai_model, write_config
from tests.llama_server import LlamaOptions, LlamaPool
from tests.standins import OllamaLocal, OpenAILocal, StrictOpenAIUpstream
from tests.test_ops_support import CLOUD_KEY, REPO, ROUTER_KEY, run_cli, stale_pidfile, write_setup


def lines_for(output: str, name: str) -> str:
    """The line of one check (with its fix line, if any)."""
    out = output.splitlines()
    for i, line in enumerate(out):
        if line[2:].startswith(name):
            return "\n".join(
                out[i : i + 2] if i + 1 < len(out) and out[i + 1].startswith("    fix:") else out[i : i + 1]
            )
    raise AssertionError(f"no check named {name!r} in:\n{output}")


@pytest.fixture
def stop_proxy() -> Iterator[None]:
    yield
    run_cli("stop", "--force", "--timeout", "5")


# ---------------------------------------------------------------- pure checks


def test_literal_home_and_tilde_are_found_only_in_values() -> None:
    text = '# a comment with $HOME is fine\n[log]\ndecisions = "$HOME/x.jsonl"\npidfile = "~/s.pid"\nok = "/a~b"\n'
    c = d.check_literal_home(Path("/c.toml"), text, "/home/u")
    assert c.failed
    assert "decisions (line 3)" in c.detail and "pidfile (line 4)" in c.detail and "ok" not in c.detail
    assert "/home/u/" in c.fix
    assert not d.check_literal_home(Path("/c.toml"), '[log]\ndecisions = "/h/x"\n', "/h").failed


def test_unit_cleanup_check() -> None:
    pid = Path("/s/switchyard.pid")
    good = "[Service]\nExecStartPre=-/bin/rm -f /s/switchyard.pid\nExecStart=/x -m proxy serve\n"
    assert d.check_unit_cleanup(Path("/u"), good, pid).ok
    bad = d.check_unit_cleanup(Path("/u"), "[Service]\nExecStart=/x -m proxy serve\n", pid)
    assert bad.failed and "re-run the installer" in bad.fix
    assert d.check_unit_cleanup(Path("/u"), None, pid).skipped


def test_port_holder_check() -> None:
    assert d.check_port_holder(1, False, []).ok
    assert d.check_port_holder(1, True, [Listener(5, True, "python -m proxy serve")]).ok
    c = d.check_port_holder(1, True, [Listener(6, False, "nginx: master")])
    assert c.failed and "nginx: master (PID 6)" in c.detail
    assert d.check_port_holder(1, True, []).failed


def test_launcher_key_is_what_the_rendered_launcher_hands_to_claude(tmp_path: Path) -> None:
    """doctor runs the installer's real launcher (stand-in claude) instead of parsing it."""
    from installer import render
    from proxy.host.paths import Paths
    from tests.test_installer_units import render_input

    key = 'k $HOME "q" \\x'
    p = Paths.from_env()
    p.env_file.parent.mkdir(parents=True, exist_ok=True)
    p.env_file.write_bytes(render_env({"SWITCHYARD_ROUTER_KEY": key}))
    launcher = tmp_path / "claude-routed"
    launcher.write_bytes(render.render_launcher(render_input(4567)))
    found = d.launcher_key(launcher)
    assert found.key == key, found.source
    literal = tmp_path / "literal"
    literal.write_text("#!/bin/sh\nexport ANTHROPIC_AUTH_TOKEN='zzz'\nexec claude \"$@\"\n")
    assert d.launcher_key(literal).key == "zzz"
    p.env_file.write_bytes(render_env({"OTHER": "x"}))
    missing = d.launcher_key(launcher)
    assert missing.key is None and "no SWITCHYARD_ROUTER_KEY" in missing.source
    assert d.check_launcher_key(Path("/l"), found, key, "svc").ok
    c = d.check_launcher_key(Path("/l"), found, "abd", "svc")
    assert c.failed and key not in c.detail + c.fix and "abd" not in c.detail + c.fix  # no secret printed


def test_litellm_thinking_check_judges_answers() -> None:
    ok = HttpResult(200, b"{}")
    rejected = HttpResult(400, b'{"error": {"message": "hosted_vllm: Extra inputs are not permitted: reasoning"}}')
    assert d.check_litellm_thinking({"a": ok}, "u").ok
    c = d.check_litellm_thinking({"a": ok, "b": rejected}, "u")
    assert c.failed and "model b" in c.detail and "additional_drop_params" in c.fix
    assert d.check_litellm_thinking({"a": HttpResult(None, error="Connection refused")}, "u").failed
    assert d.check_litellm_thinking(None, "u").skipped


def test_log_check_judgement() -> None:
    assert d.check_log_growing(d.LogProbe(configured=False, running=True)).failed
    assert d.check_log_growing(d.LogProbe(configured=True, running=False)).skipped
    assert d.check_log_growing(d.LogProbe(True, True, 200, grew=True, path="/l")).ok
    assert d.check_log_growing(d.LogProbe(True, True, 200, grew=False, path="/l")).failed
    assert d.check_log_growing(d.LogProbe(True, True, 200, grew=True, deleted_fd=True, path="/l")).failed
    assert d.check_log_growing(d.LogProbe(True, True, None, path="/l")).skipped


# ---------------------------------------------------------------- faults made on purpose, end to end


def test_a_decision_log_that_recovered_is_writable() -> None:
    assert d.log_writable({"written": 5, "failed": 2, "ok": True, "last_error": None})
    assert not d.log_writable({"written": 5, "failed": 2, "ok": False, "last_error": "No space left on device"})
    # A proxy from before "ok" was reported: any failure means trouble.
    assert not d.log_writable({"written": 5, "failed": 2})
    assert d.log_writable({"written": 5, "failed": 0})


def test_config_that_does_not_load_and_literal_home(user_paths: UserPaths) -> None:
    config = write_setup(user_paths, port=1)
    text = config.read_text().replace(str(user_paths.state), "$HOME/.local/state")
    lines = [('pidfile = "~/switchyard.pid"' if ln.startswith("pidfile =") else ln) for ln in text.splitlines()]
    config.write_text("\n".join(lines) + "\n")
    pid_line = next(n for n, ln in enumerate(lines, 1) if ln.startswith("pidfile ="))
    res = run_cli("doctor", "--no-cloud")
    assert res.returncode == 1
    assert "variables and '~' are not expanded" in lines_for(res.stdout, "config loads")
    home_line = lines_for(res.stdout, "no literal $HOME")
    assert home_line.startswith("✗") and f"pidfile (line {pid_line})" in home_line and "decisions" in home_line
    assert "the rest: needs a config that loads" in res.stdout


def test_env_file_readable_by_others(user_paths: UserPaths) -> None:
    config = write_setup(user_paths, port=1, env_mode=0o644)
    res = run_cli("doctor", "--no-cloud")
    line = lines_for(res.stdout, "env file")
    assert line.startswith("✗") and "mode 0644" in line and f"chmod 600 {config.parent / 'env'}" in line
    assert ROUTER_KEY not in res.stdout + res.stderr and CLOUD_KEY not in res.stdout + res.stderr
    assert res.returncode == 1


def test_stale_pidfile_and_unit_without_cleanup(user_paths: UserPaths) -> None:
    write_setup(user_paths, port=1)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        pid_path = Paths.from_env().pidfile
        stale_pidfile(pid_path, sleeper.pid)
        unit = user_paths.config / "systemd" / "user" / "switchyard.service"
        unit.parent.mkdir(parents=True)
        unit.write_text("[Service]\nExecStart=/usr/bin/python3 -m proxy serve --config /x\n")
        res = run_cli("doctor", "--no-cloud")
        assert res.returncode == 1
        stale = lines_for(res.stdout, "pidfile")
        assert stale.startswith("✗") and f"names PID {sleeper.pid}" in stale and f"rm {pid_path}" in stale
        assert lines_for(res.stdout, "unit cleans up the pidfile").startswith("✗")
        assert sleeper.poll() is None
        unit.write_text(f"[Service]\nExecStartPre=-/bin/rm -f {pid_path}\nExecStart=/x\n")
        res = run_cli("doctor", "--no-cloud")
        assert lines_for(res.stdout, "unit cleans up the pidfile").startswith("✓")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_port_held_by_another_program(user_paths: UserPaths, free_port: Callable[[], int]) -> None:
    port = free_port()
    write_setup(user_paths, port=port)
    holder = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not listeners(port)[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        res = run_cli("doctor", "--no-cloud")
        line = lines_for(res.stdout, "port")
        assert line.startswith("✗") and "http.server" in line and f"PID {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()


def test_local_model_not_loaded(user_paths: UserPaths) -> None:
    with OpenAILocal(models=("some-other-model",)) as local:
        write_setup(user_paths, port=1, local_url=local.v1_url, model="qwen3-coder")
        res = run_cli("doctor", "--no-cloud")
    line = lines_for(res.stdout, "local model")
    assert line.startswith("✗") and "qwen3-coder is not loaded" in line and "some-other-model" in line
    assert "lms load qwen3-coder" in line


def test_lingering_off_is_reported(user_paths: UserPaths, tmp_path: Path) -> None:
    # No login manager runs here, so loginctl is replaced by a script that answers as logind would.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "loginctl"
    fake.write_text('#!/bin/sh\necho "Linger=no"\n')
    fake.chmod(0o755)
    write_setup(user_paths, port=1)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    res = run_cli("doctor", "--no-cloud", env=env)
    line = lines_for(res.stdout, "lingering")
    assert line.startswith("✗") and "loginctl enable-linger $USER" in line
    fake.write_text('#!/bin/sh\necho "Linger=yes"\n')
    assert lines_for(run_cli("doctor", "--no-cloud", env=env).stdout, "lingering").startswith("✓")


def _write_launcher(up: UserPaths, env_file: Path) -> Path:
    """The installer's real launcher, reading ``env_file`` (the installer's place for it)."""
    from installer import render
    from proxy.host.paths import Paths
    from tests.test_installer_units import render_input

    assert env_file == Paths.from_env().env_file
    launcher = up.home / ".local" / "bin" / "claude-routed"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_bytes(render.render_launcher(render_input(1)))
    launcher.chmod(0o755)
    return launcher


def test_launcher_key_differs_from_the_running_service(
    user_paths: UserPaths, free_port: Callable[[], int], stop_proxy: None
) -> None:
    config = write_setup(user_paths, port=free_port())
    env_file = config.parent / "env"
    _write_launcher(user_paths, env_file)
    assert run_cli("start", "--timeout", "20").returncode == 0
    res = run_cli("doctor", "--no-cloud")
    assert lines_for(res.stdout, "launcher key matches").startswith("✓")
    # The key is rotated in the env file, but the service still runs with the old one.
    env_file.write_bytes(render_env({"SWITCHYARD_ROUTER_KEY": "rotated-key", "SWITCHYARD_LITELLM_KEY": CLOUD_KEY}))
    res = run_cli("doctor", "--no-cloud")
    line = lines_for(res.stdout, "launcher key matches")
    assert line.startswith("✗") and "running PID" in line and "switchyard restart" in line
    assert "rotated-key" not in res.stdout and ROUTER_KEY not in res.stdout


def test_decision_log_that_cannot_grow(user_paths: UserPaths, free_port: Callable[[], int], stop_proxy: None) -> None:
    write_setup(user_paths, port=free_port())
    log = user_paths.state / "switchyard" / "decisions.jsonl"
    log.mkdir(parents=True)  # a directory where the log should be: every write fails
    assert run_cli("start", "--timeout", "20").returncode == 0
    res = run_cli("doctor", "--no-cloud")
    line = lines_for(res.stdout, "decision log grows")
    assert line.startswith("✗") and "did not grow" in line and "Is a directory" in line


def test_decision_log_that_grows(user_paths: UserPaths, free_port: Callable[[], int], stop_proxy: None) -> None:
    write_setup(user_paths, port=free_port())
    assert run_cli("start", "--timeout", "20").returncode == 0
    res = run_cli("doctor", "--no-cloud")
    assert lines_for(res.stdout, "decision log grows").startswith("✓"), res.stdout


def test_litellm_check_asks_first_and_is_skipped_without_a_terminal(user_paths: UserPaths) -> None:
    with OpenAILocal() as fake_cloud:
        write_setup(user_paths, port=1, cloud_url=fake_cloud.url)
        res = run_cli("doctor")
        assert "use --yes to run it" in res.stderr
        assert lines_for(res.stdout, "LiteLLM accepts").startswith("-")
        pexpect = pytest.importorskip("pexpect")
        child = pexpect.spawn(
            sys.executable, ["-m", "proxy", "doctor"], cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)},
            encoding="utf-8", timeout=30,
        )  # fmt: skip
        child.expect(r"Run it\? \[y/N\]")
        child.sendline("n")
        child.expect(pexpect.EOF)
        assert "not checked" in child.before
        assert fake_cloud.requests == [] or all(r.path != "/v1/messages" for r in fake_cloud.requests)


def test_litellm_model_whose_backend_rejects_the_thinking_fields(
    user_paths: UserPaths, tmp_path: Path, start_litellm: Callable[..., LiteLLMProcess]
) -> None:
    drop: dict[str, Any] = {"additional_drop_params": ["reasoning", "thinking", "enable_thinking"]}
    with StrictOpenAIUpstream() as strict:
        # The simple tier is left unpatched; the complex tier already has the fix.
        llm = start_litellm(
            write_config(
                tmp_path / "litellm.yaml",
                [openai_model("cloud-simple", strict.v1_url), openai_model("cloud-complex", strict.v1_url, **drop)],
            )
        )
        config = write_setup(user_paths, port=1, cloud_url=llm.url)
        (config.parent / "env").write_text(
            f"SWITCHYARD_ROUTER_KEY={ROUTER_KEY}\nSWITCHYARD_LITELLM_KEY={llm.master_key}\n"
        )
        res = run_cli("doctor", "--yes")
    line = lines_for(res.stdout, "LiteLLM accepts")
    assert line.startswith("✗"), line + "\n" + llm.log_tail()
    assert "model cloud-simple: its backend rejects the thinking fields (HTTP 400" in line
    assert "cloud-complex" not in line
    assert "litellm_params of cloud-simple: additional_drop_params: [reasoning, thinking, enable_thinking]" in line
    assert llm.master_key not in res.stdout + res.stderr
    assert res.returncode == 1


def test_litellm_that_accepts_the_thinking_fields(user_paths: UserPaths, cloud: LiteLLMCloud) -> None:
    # anthropic/ entries strip the fields by themselves (LiteLLM 1.106.2).
    config = write_setup(user_paths, port=1, cloud_url=cloud.url)
    (config.parent / "env").write_text(
        f"SWITCHYARD_ROUTER_KEY={ROUTER_KEY}\nSWITCHYARD_LITELLM_KEY={cloud.master_key}\n"
    )
    res = run_cli("doctor", "--yes")
    line = lines_for(res.stdout, "LiteLLM accepts")
    assert line.startswith("✓"), line
    sent = [r for r in cloud.upstream.requests if r.path == "/v1/messages"]
    assert len(sent) == 2 and all(r.json["max_tokens"] == 1 for r in sent)


# ---------------------------------------------------------------- what the local server can take


def test_findings_become_checks_in_their_own_words() -> None:
    from proxy.local_advice import OK, PROBLEM, UNKNOWN, Finding

    assert from_finding(Finding(PROBLEM, "t", "d", "f")) == Check("t", False, "d", "f")
    assert from_finding(Finding(UNKNOWN, "t", "d", "f")) == Check("t", False, "d; f", skipped=True)
    assert from_finding(Finding(UNKNOWN, "t", "d")).detail == "d"
    assert from_finding(Finding(OK, "t", "d")) == Check("t", True, "d")


def test_local_capability_checks() -> None:
    llama = LocalCapabilities(kind="llama.cpp", version="b1-x", context_per_request=8192, slots=4, tools=False,
                              notes=("per-slot context 8,192 from /slots",))  # fmt: skip
    checks = d.check_local_capabilities(llama, LocalConfig())
    assert [(c.name, c.failed) for c in checks] == [
        ("local context fits Claude Code", True), ("local chat template takes tools", True)
    ]
    assert checks[0].fix == "restart llama-server with `-np 1` or a larger `-c` (e.g. `-c 65536 -np 1`)"
    # The config's reserve and context are the ones judged.
    small_reserve = d.check_local_capabilities(llama, LocalConfig(output_reserve_tokens=512))
    assert "plus 512 for the answer" in small_reserve[0].detail
    assert d.check_local_capabilities(llama, LocalConfig(context_tokens=32768))[0].ok
    server = d.check_local_server(llama, "probed directly")
    assert server is not None and server.ok
    assert render(server) == (
        "✓ local server: llama.cpp b1-x, 8,192 tokens per request (4 slots), its chat template takes no tools "
        "(probed directly)\n    - per-slot context 8,192 from /slots"
    )

    ollama = LocalCapabilities(kind="ollama", context_per_request=65536, tools=True, truncates_silently=True)
    assert [(c.name, c.ok) for c in d.check_local_capabilities(ollama, LocalConfig())] == [
        ("local context fits Claude Code", True), ("local chat template takes tools", True),
        ("local server does not cut prompts silently", True),
    ]
    (unknown,) = d.check_local_capabilities(UNKNOWN, LocalConfig())
    assert unknown.skipped and unknown.name == "local server capabilities"
    assert d.check_local_server(UNKNOWN) is None


def test_doctor_says_what_ollama_takes(user_paths: UserPaths) -> None:
    with OllamaLocal(models=("qwen3",)) as ollama:
        write_setup(user_paths, port=1, local_url=ollama.v1_url, model="qwen3:latest")
        res = run_cli("doctor", "--no-cloud")
    assert res.returncode == 1
    server = lines_for(res.stdout, "local server:")
    assert server.startswith("✓ local server: Ollama 0.14.2, 4,096 tokens per request, takes tools")
    assert "(probed directly)" in server  # no proxy runs
    assert "    - Ollama's default context of 4,096 tokens assumed" in res.stdout
    fits = lines_for(res.stdout, "local context fits Claude Code")
    assert fits.startswith("✗") and "Ollama: 4,096 tokens per request" in fits
    assert "fix: set OLLAMA_CONTEXT_LENGTH=65536 for the Ollama server" in fits
    assert lines_for(res.stdout, "local chat template takes tools").startswith("✓")
    cut = lines_for(res.stdout, "local server does not cut prompts silently")
    assert cut.startswith("✗") and "without an error" in cut


def test_doctor_against_a_real_llama_server(user_paths: UserPaths, llama: LlamaPool) -> None:
    server = llama.get(LlamaOptions(ctx=8192, parallel=-1))
    write_setup(user_paths, port=1, local_url=server.v1_url, model=server.model)
    res = run_cli("doctor", "--no-cloud")
    assert res.returncode == 1
    line = lines_for(res.stdout, "local server:")
    assert line.startswith("✓ local server: llama.cpp b1-"), res.stdout
    assert "8,192 tokens per request (4 slots), its chat template takes no tools" in line
    fits = lines_for(res.stdout, "local context fits Claude Code")
    assert fits.startswith("✗ local context fits Claude Code: llama.cpp: 8,192 tokens per request (4 slots)")
    # SmolLM2 was trained for 8,192 tokens: a larger -c would not help.
    assert "fix: the model itself was trained for 8,192 tokens" in fits
    tools = lines_for(res.stdout, "local chat template takes tools")
    assert tools.startswith("✗ local chat template takes tools: llama.cpp would drop every tool definition")
    assert "fix: use a model whose chat template supports tools (llama.cpp: `--jinja`" in tools
