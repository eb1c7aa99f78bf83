"""Run the real Claude Code CLI headless, for end-to-end tests and traffic capture.

    result = run_claude(claude_bin, "create hello.txt", base_url=proxy_url, api_key=router_key,
                        cwd=workdir, timeout=120)
    assert result.returncode == 0, result.describe()
    result.stdout, result.stderr, result.timed_out

The CLI runs as ``claude -p PROMPT --permission-mode acceptEdits`` (root may not use
bypassPermissions) with stdin from /dev/null, in its own process group (killed whole on timeout),
and with a clean environment: HOME is a private directory (``home``, default ``<cwd>/../claude-home``),
``TERM=dumb``, ``DISABLE_TELEMETRY=1``, ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``,
``ANTHROPIC_BASE_URL=base_url`` and the key as ``ANTHROPIC_AUTH_TOKEN`` (sent as
``Authorization: Bearer``) or, with ``auth="api_key"``, ``ANTHROPIC_API_KEY`` (sent as ``x-api-key``).
No other ``ANTHROPIC_*``/``CLAUDE_*`` variable of the caller leaks in.  ``model`` sets
``--model``; ``extra_args`` are appended; ``env`` adds or overrides variables.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_KEPT_VARS = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "NODE_OPTIONS")


@dataclass(frozen=True)
class ClaudeResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    args: tuple[str, ...]

    def describe(self) -> str:
        """A compact summary for assertion messages."""
        status = "timed out" if self.timed_out else f"exit {self.returncode}"
        return f"claude {status}\n--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"


def claude_env(
    base_url: str,
    api_key: str,
    home: Path,
    auth: Literal["token", "api_key"] = "token",
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    out = {k: os.environ[k] for k in _KEPT_VARS if k in os.environ}
    out.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "TERM": "dumb",
            "NO_COLOR": "1",
            "CI": "true",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "ANTHROPIC_BASE_URL": base_url,
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    out["ANTHROPIC_AUTH_TOKEN" if auth == "token" else "ANTHROPIC_API_KEY"] = api_key
    out.update(env or {})
    return out


def run_claude(
    binary: str | Path,
    prompt: str,
    *,
    base_url: str,
    api_key: str,
    cwd: Path,
    timeout: float = 120.0,
    permission_mode: str = "acceptEdits",
    home: Path | None = None,
    auth: Literal["token", "api_key"] = "token",
    model: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ClaudeResult:
    home = home or cwd.parent / "claude-home"
    home.mkdir(parents=True, exist_ok=True)
    args = [str(binary), "-p", prompt, "--permission-mode", permission_mode]
    if model:
        args += ["--model", model]
    args += list(extra_args)
    proc = subprocess.Popen(
        args,
        cwd=str(cwd),
        env=claude_env(base_url, api_key, home, auth, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return ClaudeResult(
        returncode=proc.returncode,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        timed_out=timed_out,
        args=tuple(args),
    )
