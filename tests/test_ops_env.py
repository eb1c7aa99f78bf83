"""``switchyard env``: lines a real shell can eval, pointing Claude Code at the router."""

from __future__ import annotations

import os
import subprocess
import sys

from proxy.config import config_from_dict
from proxy.ops.envcmd import env_vars, render
from tests.conftest import UserPaths
from tests.test_ops_support import REPO, ROUTER_KEY, run_cli, write_setup


def test_env_vars() -> None:
    cfg = config_from_dict(
        {
            "listen": {"port": 4567, "host": "0.0.0.0"},
            "local": {"model": "m"},
            "cloud": {"simple_model": "a", "complex_model": "b", "timeout_s": 900},
        }
    )
    v = env_vars(cfg, "k")
    assert v["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4567"  # a wildcard bind is reached over loopback
    assert v["ANTHROPIC_AUTH_TOKEN"] == "k"
    assert v["API_TIMEOUT_MS"] == "900000"


def test_shell_quoting_defeats_injection() -> None:
    lines = render({"ANTHROPIC_AUTH_TOKEN": "a'b; rm -rf /"})
    assert lines[0] == "export ANTHROPIC_AUTH_TOKEN='a'\"'\"'b; rm -rf /'"
    assert lines[-1].startswith("unset ANTHROPIC_API_KEY")


def test_eval_in_a_real_shell_sets_what_claude_code_reads(user_paths: UserPaths) -> None:
    write_setup(user_paths, port=4999)
    script = (
        f'eval "$({sys.executable} -m proxy env)" && '
        'printf "%s|%s|%s|%s" "$ANTHROPIC_BASE_URL" "$ANTHROPIC_AUTH_TOKEN" "${ANTHROPIC_API_KEY-unset}" "$NO_PROXY"'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANTHROPIC_API_KEY": "would-win-over-the-token"}
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    assert out.stdout == f"http://127.0.0.1:4999|{ROUTER_KEY}|unset|127.0.0.1,localhost"


def test_fish_lines() -> None:
    assert render({"A": "x y"}, "fish")[0] == "set -gx A 'x y';"


def test_env_without_a_key_fails_with_the_fix(user_paths: UserPaths) -> None:
    config = write_setup(user_paths, port=4999)
    (config.parent / "env").write_text("")
    res = run_cli("env")
    assert res.returncode == 1
    assert res.stdout == ""
    assert "SWITCHYARD_ROUTER_KEY is not set" in res.stderr and "re-run the installer" in res.stderr


def test_env_with_a_missing_config_names_the_installer(user_paths: UserPaths) -> None:
    res = run_cli("env")
    assert res.returncode == 1
    assert "does not exist; run 'python -m installer'" in res.stderr
