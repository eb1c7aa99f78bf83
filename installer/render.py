"""Render Switchyard's files from ``templates/`` (Jinja2, StrictUndefined) and check them.

The router config must load with the proxy's own strict loader; the unit must pass
``systemd-analyze verify --user`` with nothing on stderr (that command exits 0 even on unknown keys).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from proxy.config import DEFAULT_HASH_KEY_ENV, ConfigError, load_config
from proxy.host.paths import UNIT_NAME, Paths


class RenderError(Exception):
    """A rendered file failed its check; one line."""


def _toml(value: Any) -> str:
    # A JSON string is a valid TOML basic string (same escapes); numbers print as numbers.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


def _systemd_path(value: Any) -> str:
    s = str(value)
    if any(c.isspace() for c in s) or '"' in s or "\\" in s:
        raise RenderError(f"path {s!r} contains spaces, quotes or backslashes, which a systemd unit cannot hold here")
    # `%` starts a unit specifier.
    return s.replace("%", "%%")


def _sh(value: Any) -> str:
    return shlex.quote(str(value))


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - TOML, unit files and shell, never HTML
        keep_trailing_newline=True,
    )
    env.filters["toml"] = _toml
    env.filters["systemd_path"] = _systemd_path
    env.filters["sh"] = _sh
    return env


def _load_template(name: str) -> str:
    return resources.files("templates").joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class RenderInput:
    paths: Paths
    local_base_url: str
    local_model: str
    litellm_url: str
    cloud_simple_model: str
    cloud_complex_model: str
    port: int
    launcher_name: str
    long_context_threshold: int
    classify_timeout_s: float
    classify_max_tokens: int
    router_key_env: str
    litellm_key_env: str
    generated_at: str = ""
    local_context_tokens: int = 0
    local_api: str = "openai"


def _context(ri: RenderInput) -> dict[str, Any]:
    p = ri.paths
    return {
        "generated_at": ri.generated_at or _dt.date.today().isoformat(),
        "host": "127.0.0.1",
        "port": ri.port,
        "router_key_env": ri.router_key_env,
        "litellm_key_env": ri.litellm_key_env,
        "hash_key_env": DEFAULT_HASH_KEY_ENV,
        "pidfile": str(p.pidfile),
        "local_base_url": ri.local_base_url,
        "local_model": ri.local_model,
        "litellm_url": ri.litellm_url,
        "cloud_simple_model": ri.cloud_simple_model,
        "cloud_complex_model": ri.cloud_complex_model,
        "long_context_threshold": ri.long_context_threshold,
        "classify_timeout_s": float(ri.classify_timeout_s),
        "classify_max_tokens": ri.classify_max_tokens,
        "local_context_tokens": ri.local_context_tokens,
        "local_api": ri.local_api,
        "decisions_log": str(p.decisions_log),
        "env_file": str(p.env_file),
        "config_file": str(p.config_file),
        "venv_python": str(p.venv_python),
        "data_dir": str(p.data_dir),
        "proxy_log": str(p.proxy_log),
        "launcher_name": ri.launcher_name,
        "base_url": f"http://127.0.0.1:{ri.port}",
        "statusline_settings": statusline_settings(p),
    }


def statusline_settings(p: Paths) -> str:
    """The --settings JSON the launcher passes to Claude Code: Switchyard's status line command."""
    # The module entry point: the same line as `switchyard statusline`, without click (run per refresh).
    command = f"{shlex.quote(str(p.venv_python))} -m proxy.ops.statusline --config {shlex.quote(str(p.config_file))}"
    return json.dumps({"statusLine": {"type": "command", "command": command, "padding": 0}})


def render_config(ri: RenderInput) -> bytes:
    text = environment().get_template("config.toml.j2").render(**_context(ri))
    check_config(text)
    return text.encode()


def render_unit(ri: RenderInput) -> bytes:
    return environment().get_template("switchyard.service.j2").render(**_context(ri)).encode()


def render_launcher(ri: RenderInput) -> bytes:
    return environment().get_template("launcher.sh.j2").render(**_context(ri)).encode()


def check_config(text: str) -> None:
    """The rendered TOML must pass the proxy's own loader (same process, same code as at start)."""
    fd, tmp = tempfile.mkstemp(suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        load_config(tmp)
    except ConfigError as exc:
        raise RenderError(f"the rendered router config does not load: {exc}") from None
    finally:
        Path(tmp).unlink()


def verify_unit(unit_text: bytes) -> str | None:
    """Run ``systemd-analyze verify --user`` on the unit; None when fine or unavailable, else the complaint.

    The unit is verified under its real name in a scratch directory; ``systemd-analyze --user`` needs
    ``XDG_RUNTIME_DIR`` to be an existing 0700 directory and writes into it (``systemd/``), so it gets
    a private scratch one: verifying must leave the user's runtime directory as it was.
    """
    exe = shutil.which("systemd-analyze")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory(prefix="switchyard-verify-") as scratch:
        unit = Path(scratch) / UNIT_NAME
        unit.write_bytes(unit_text)
        env = dict(os.environ)
        rt = Path(scratch) / "runtime"
        rt.mkdir(mode=0o700)
        rt.chmod(0o700)
        env["XDG_RUNTIME_DIR"] = str(rt)
        proc = subprocess.run(
            [exe, "verify", "--user", "--man=no", str(unit)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    err = proc.stderr.strip()
    if proc.returncode != 0 or err:
        return err or f"systemd-analyze verify exited {proc.returncode}"
    return None
