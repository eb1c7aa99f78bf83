"""What every ops command does first: find the config, load the env file, load the config."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from proxy.config import Config, ConfigError, load_config
from proxy.host.envfile import apply_env_file
from proxy.host.paths import Paths

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    """``--config PATH``, defaulting to ``$XDG_CONFIG_HOME/switchyard/config.toml`` (resolved at run time)."""
    decorator = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Router config file (TOML).  [default: $XDG_CONFIG_HOME/switchyard/config.toml]",
    )
    return decorator(func)


def host_paths() -> Paths:
    """The host layer's paths for this environment (read at call time: tests point HOME elsewhere)."""
    return Paths.from_env(strict=False)


def pidfile_path(cfg: Config) -> Path:
    """The configured pidfile; without one, ``switchyard start`` keeps its own at the default path."""
    return host_paths().pidfile_for(cfg.listen.pidfile)


def decisions_path(cfg: Config) -> Path | None:
    """The decision log, or None: the proxy logs decisions only when ``[log] decisions`` is set."""
    return Path(cfg.log.decisions) if cfg.log.decisions else None


def resolve_config_path(config_path: str | None) -> Path:
    return Path(config_path) if config_path else host_paths().config_file


def env_file_for(config: Path) -> Path:
    """The env file: the installer puts it beside the config; else the XDG default."""
    beside = config.parent / "env"
    return beside if beside.exists() else host_paths().env_file


def load(config_path: str | None) -> Config:
    """Load env file and config, or stop with a one-line error that says how to fix it."""
    path = resolve_config_path(config_path)
    apply_env_file(env_file_for(path), os.environ)
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(f"{exc}\n  (run 'switchyard doctor' for a full check)") from None


def require_router_key(cfg: Config) -> str:
    key = cfg.router_key()
    if not key:
        raise click.ClickException(
            f"the router key variable {cfg.listen.key_env} is not set and not in "
            f"{env_file_for(Path(cfg.source or host_paths().config_file))}; "
            "re-run the installer or add it to the env file"
        )
    return key


def base_url(cfg: Config) -> str:
    host = cfg.listen.host
    if host in ("0.0.0.0", "", "::"):  # a wildcard bind is reached over loopback
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{cfg.listen.port}"
