"""Where Switchyard keeps its files, following the XDG base directory spec.

Every function reads the environment at call time (not import time) so tests that point HOME and
XDG_* at a temporary directory see their own paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from proxy.config import Config

APP = "switchyard"
UNIT_NAME = "switchyard.service"
DEFAULT_LAUNCHER = "claude-routed"


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return environ if environ is not None else os.environ


def home(environ: Mapping[str, str] | None = None) -> Path:
    env = _env(environ)
    return Path(env.get("HOME") or Path.home())


def _xdg(var: str, fallback: str, environ: Mapping[str, str] | None) -> Path:
    value = _env(environ).get(var, "")
    # The spec says relative values are invalid and must be ignored.
    if value and Path(value).is_absolute():
        return Path(value)
    return home(environ) / fallback


def config_home(environ: Mapping[str, str] | None = None) -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config", environ)


def state_home(environ: Mapping[str, str] | None = None) -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state", environ)


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    return config_home(environ) / APP


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    return config_dir(environ) / "config.toml"


def env_file_path(environ: Mapping[str, str] | None = None) -> Path:
    return config_dir(environ) / "env"


def answers_path(environ: Mapping[str, str] | None = None) -> Path:
    return config_dir(environ) / "answers.yml"


def unit_path(environ: Mapping[str, str] | None = None) -> Path:
    return config_home(environ) / "systemd" / "user" / UNIT_NAME


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    return state_home(environ) / APP


def proxy_log_path(environ: Mapping[str, str] | None = None) -> Path:
    """stdout/stderr of a detached proxy (``switchyard start`` without systemd)."""
    return state_dir(environ) / "proxy.log"


def default_pidfile_path(environ: Mapping[str, str] | None = None) -> Path:
    return state_dir(environ) / "switchyard.pid"


def decisions_path(cfg: Config) -> Path | None:
    """The decision log, or None: the proxy logs decisions only when ``[log] decisions`` is set."""
    return Path(cfg.log.decisions) if cfg.log.decisions else None


def pidfile_path(cfg: Config, environ: Mapping[str, str] | None = None) -> Path:
    """The configured pidfile; without one, ``switchyard start`` keeps its own at the default path."""
    return Path(cfg.listen.pidfile) if cfg.listen.pidfile else default_pidfile_path(environ)


def launcher_name(environ: Mapping[str, str] | None = None) -> str:
    """The launcher's name from the installer's answers file (a flat YAML mapping), else the default.

    Read with a line scan rather than a YAML parser: the key is a plain scalar on its own line and
    this keeps every ops command free of a ruamel import.
    """
    try:
        text = answers_path(environ).read_text(encoding="utf-8")
    except OSError:
        return DEFAULT_LAUNCHER
    for line in text.splitlines():
        if line.startswith("launcher_name:"):
            value = line.split(":", 1)[1].split(" #", 1)[0].strip().strip("'\"")
            if value and "/" not in value:
                return value
    return DEFAULT_LAUNCHER


def launcher_path(environ: Mapping[str, str] | None = None) -> Path:
    return home(environ) / ".local" / "bin" / launcher_name(environ)
