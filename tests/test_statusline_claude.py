"""The status line in the real Claude Code: an interactive session (in a pseudo-terminal, where Claude
Code draws its status line) given Switchyard's statusLine through --settings, as the launcher does."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shlex
import signal
import sys
import time
from pathlib import Path

from tests.claude_cli import claude_env
from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config
from tests.standins import AnthropicUpstream, OpenAILocal

REPO = Path(__file__).resolve().parents[1]


def test_claude_code_runs_the_status_line_and_its_session_matches_the_log(
    claude_bin: str, tmp_path: Path, local: OpenAILocal, upstream: AnthropicUpstream
) -> None:
    work, home = tmp_path / "work", tmp_path / "claude-home"
    work.mkdir()
    home.mkdir()
    # An onboarded user who trusts this directory: otherwise the first screen is a dialog.
    trusted = {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}
    (home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True, "projects": {str(work): trusted}}))
    cfg = make_config(tmp_path, local_url=local.v1_url, cloud_url=upstream.url)
    stdin_copy, shown = tmp_path / "statusline-stdin.json", tmp_path / "statusline-out.txt"
    command = (
        f"tee {shlex.quote(str(stdin_copy))} | PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} "
        f"-m proxy.ops.statusline --log {shlex.quote(cfg.log.decisions)} | tee {shlex.quote(str(shown))}"
    )
    settings = json.dumps({"statusLine": {"type": "command", "command": command, "padding": 0}})
    with ProxyThread(cfg) as p:
        env = claude_env(p.url, ROUTER_KEY, home, env={"TERM": "xterm-256color"})
        env.pop("CI", None)
        pid, fd = pty.fork()
        if pid == 0:  # the child: Claude Code, interactive, with a first prompt
            os.chdir(work)
            os.execve(claude_bin, [claude_bin, "--settings", settings, "--model", "cloud", "say hi"], env)
        screen = b""
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    try:
                        screen += os.read(fd, 65536)
                    except OSError:
                        break
                if shown.exists() and "cloud-complex" in shown.read_text():
                    break
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(fd)
        [rec] = p.decisions(1)
    assert shown.exists(), screen[-3000:].decode("utf-8", "replace")
    seen = json.loads(stdin_copy.read_text())
    assert seen["session_id"] == rec["session"]  # what Claude Code passes is what the proxy logs
    assert shown.read_text().startswith("switchyard: cloud cloud-complex (explicit) · today 0% local")
    # Drawn in the terminal (words placed with cursor moves between them; Claude Code redraws only
    # the cells that changed, so the prefix may have been drawn with an earlier line).
    drawn = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b" ", screen)
    assert b"switchyard:" in drawn, drawn[-2000:]
    assert re.search(rb"cloud\s+cloud-complex\s+\(explicit\)\s+\xc2\xb7\s+today\s+0%\s+local", drawn), drawn[-2000:]
