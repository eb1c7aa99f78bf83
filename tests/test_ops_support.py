"""Helpers shared by the ops toolkit tests (test_ops_*.py), and tests of the small shared pieces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from proxy.host.envfile import apply_env_file, parse_env_text, render_env
from proxy.host.paths import Paths
from proxy.host.pidfile import ChildLock
from proxy.ops.checks import Check, exit_code, failed, passed, render, skipped
from tests.conftest import UserPaths

REPO = Path(__file__).resolve().parents[1]
ROUTER_KEY = "ops-test-router-key-1f2e3d"
CLOUD_KEY = "ops-test-litellm-key-9a8b7c"


def write_setup(
    up: UserPaths,
    *,
    port: int,
    local_url: str = "http://127.0.0.1:9/v1",
    cloud_url: str = "http://127.0.0.1:9",
    model: str = "local-model",
    pidfile: bool = True,
    decisions: bool = True,
    extra: str = "",
    routing_extra: str = "",
    env_mode: int = 0o600,
) -> Path:
    """The installer's layout in the test's HOME: its real render of config.toml, and the env file beside it.

    ``pidfile``/``decisions`` False leave those lines out; ``routing_extra`` goes into ``[routing]``,
    ``extra`` at the end (in ``[log]``).
    """
    from installer import render

    cfg_dir = up.config / "switchyard"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    ri = render.RenderInput(
        paths=Paths.from_env(), local_base_url=local_url, local_model=model, litellm_url=cloud_url,
        cloud_simple_model="cloud-simple", cloud_complex_model="cloud-complex", port=port,
        launcher_name="claude-routed", long_context_threshold=60000, classify_timeout_s=5.0, classify_max_tokens=8192,
        router_key_env="SWITCHYARD_ROUTER_KEY", litellm_key_env="SWITCHYARD_LITELLM_KEY",
    )  # fmt: skip
    lines: list[str] = []
    for line in render.render_config(ri).decode().splitlines():
        if (line.startswith("pidfile =") and not pidfile) or (line.startswith("decisions =") and not decisions):
            continue
        lines.append(line)
        if line == "[listen]":
            lines.append("shutdown_grace_s = 2.0")  # the tests' stops need not wait the default grace
        elif line == "[routing]" and routing_extra:
            lines.append(routing_extra)
    lines.append(extra)
    config = cfg_dir / "config.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = cfg_dir / "env"
    env.write_bytes(render_env({"SWITCHYARD_ROUTER_KEY": ROUTER_KEY, "SWITCHYARD_LITELLM_KEY": CLOUD_KEY}))
    env.chmod(env_mode)
    return config


def deployed_venv(paths: Paths) -> Path:
    """An inherit-style venv where the installer deploys one (this checkout and this interpreter's libraries)."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(paths.venv_dir)], check=True, timeout=120)
    site = next((paths.venv_dir / "lib").glob("python3*/site-packages"))
    (site / "switchyard-deps.pth").write_text(f"{REPO}\n{sysconfig.get_paths()['purelib']}\n", encoding="utf-8")
    return paths.venv_python


def stale_pidfile(path: Path, pid: int) -> None:
    """A pidfile naming ``pid`` that no process holds the lock of (as a crash or a reboot leaves it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n", encoding="ascii")


def spawn_holding(path: Path, *argv: str, **kw: Any) -> subprocess.Popen[str]:
    """Start ``argv`` holding the lock of the pidfile ``path``, which names it: a live pidfile."""
    lock = ChildLock(path)
    proc = subprocess.Popen(list(argv), pass_fds=(lock.fd,), text=True, **kw)
    lock.publish(proc.pid)
    return proc


# Commands that start nothing that outlives them: run in this process (click's CliRunner), faster
# and with the real code under the test's monkeypatches.  start/stop/restart spawn and signal
# processes, so they run as a user runs them, in a child.
IN_PROCESS = frozenset({"status", "doctor", "env", "stats", "classify"})


def run_cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """``switchyard ARGS`` in the test's isolated HOME: in process for IN_PROCESS commands, else ``python -m proxy``."""
    if args and args[0] in IN_PROCESS and not kw:
        return _invoke(list(args), env)
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=str(REPO),
        stdin=subprocess.DEVNULL,
        check=False,
        **kw,
    )


def _invoke(args: list[str], env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    from click.testing import CliRunner

    from proxy.cli import cli

    saved = dict(os.environ)  # the commands apply the env file to os.environ: undone after
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["switchyard", *args], result.exit_code, result.stdout, result.stderr)


# ---------------------------------------------------------------- tests of the shared pieces


def test_env_file_parsing_follows_systemd_simple_rules() -> None:
    text = "# secrets\nexport A=1\nB='two words'\nC=\"q\"\n\nnot a line\n1X=bad\nD=a=b\n"
    assert parse_env_text(text) == {"A": "1", "B": "two words", "C": "q", "D": "a=b"}


def test_apply_env_file_never_overrides_what_is_set(tmp_path: Path) -> None:
    f = tmp_path / "env"
    f.write_text("A=from-file\nB=from-file\n")
    environ = {"A": "already"}
    assert apply_env_file(f, environ) == ["B"]
    assert environ == {"A": "already", "B": "from-file"}
    assert apply_env_file(tmp_path / "missing", environ) == []


def test_paths_follow_xdg_and_the_answers_file(user_paths: UserPaths) -> None:
    paths = Paths.from_env()
    assert paths.config_file == user_paths.config / "switchyard" / "config.toml"
    assert paths.unit_file == user_paths.config / "systemd" / "user" / "switchyard.service"
    assert paths.proxy_log == user_paths.state / "switchyard" / "proxy.log"
    assert paths.pidfile == user_paths.runtime / "switchyard" / "switchyard.pid"
    assert paths.saved_launcher == user_paths.home / ".local" / "bin" / "claude-routed"
    (user_paths.config / "switchyard").mkdir()
    paths.answers_file.write_text("port: 3456\nlauncher_name: 'claude-local'  # chosen\n")
    assert paths.saved_launcher == user_paths.home / ".local" / "bin" / "claude-local"
    # A relative XDG value is invalid per the spec and ignored; without a runtime dir the pidfile is state.
    other = Paths.from_env({"HOME": "/h", "XDG_CONFIG_HOME": "rel"})
    assert other.config_home == Path("/h/.config")
    assert other.pidfile == Path("/h/.local/state/switchyard/switchyard.pid")


def test_check_rendering_and_exit_code() -> None:
    ok = passed("a", "fine")
    bad = failed("b", "broken", "do this")
    na = skipped("c", "not here")
    assert render(ok) == "✓ a: fine"
    assert render(bad) == "✗ b: broken\n    fix: do this"
    assert render(bad, ascii_only=True).startswith("FAIL b")
    assert render(na) == "- c: not here"
    assert exit_code([ok, na]) == 0
    assert exit_code([ok, bad, na]) == 1
    assert not Check("x", False, skipped=True).failed
