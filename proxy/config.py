"""Switchyard's router config: one TOML file, loaded and validated at start.

The file is rendered by the installer from ``templates/config.toml.j2``.  Validation is strict on
purpose: an unknown key is almost always a typo that would otherwise silently fall back to a
default, and a relative path or a literal ``$HOME`` would resolve differently under systemd than in
the user's shell.  Secrets never live here: the file names the environment variables that hold them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 3456
DEFAULT_ROUTER_KEY_ENV = "SWITCHYARD_ROUTER_KEY"
DEFAULT_CLOUD_KEY_ENV = "SWITCHYARD_LITELLM_KEY"


class ConfigError(Exception):
    """A config problem, phrased as one line that says what is wrong and how to fix it."""


@dataclass(frozen=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Name of the environment variable holding the router key (never the key itself).
    key_env: str = DEFAULT_ROUTER_KEY_ENV
    max_body_bytes: int = 32 * 1024 * 1024
    pidfile: str = ""
    # Seconds in-flight streams get to finish after SIGTERM.
    shutdown_grace_s: float = 20.0
    # A client that stops sending its body half-way gets 408 after this long.
    body_read_timeout_s: float = 30.0
    # Client connections accepted at once (kept below the descriptor limit, which is raised to its
    # hard limit at start); over it, idle keep-alive connections are closed first.
    max_connections: int = 1000
    # An idle keep-alive connection is closed after this long.
    idle_timeout_s: float = 75.0


@dataclass(frozen=True)
class LocalConfig:
    base_url: str = "http://127.0.0.1:1234/v1"
    model: str = ""
    max_output_tokens: int = 8192
    connect_timeout_s: float = 3.0
    # No first content within this time: fall back to the cloud.
    first_token_timeout_s: float = 60.0
    # Longest silence tolerated between two chunks once the stream is flowing.
    read_timeout_s: float = 120.0
    health_timeout_s: float = 1.0
    # Optional: variable holding a key for servers that want one (vLLM --api-key).
    key_env: str = ""
    # Tokens kept free for the answer when checking that a request fits the local context.
    output_reserve_tokens: int = 2048
    # The context one request gets, when the server cannot be asked (0: read it from the server).
    context_tokens: int = 0
    # The dialect spoken to the local server: "openai" (/v1/chat/completions, translated), "anthropic"
    # (its own /v1/messages) or "auto" (anthropic where the capability probe found /v1/messages).
    api: str = "openai"

    @property
    def answer_reserve(self) -> int:
        """Tokens the context check keeps free for the answer (a request's own max_tokens may lower it)."""
        return min(self.output_reserve_tokens, self.max_output_tokens)


@dataclass(frozen=True)
class CloudConfig:
    base_url: str = "http://127.0.0.1:4000"
    key_env: str = DEFAULT_CLOUD_KEY_ENV
    simple_model: str = ""
    complex_model: str = ""
    # The longest silence once an answer is flowing, and the whole wait for a non-streaming answer
    # (which arrives at once, when it is done).
    timeout_s: float = 600.0
    # The longest wait for a streamed answer to start (headers and message_start), retries included:
    # a cloud that stalls before its first byte fails in minutes, not in max_attempts × timeout_s.
    first_byte_timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    max_attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0


@dataclass(frozen=True)
class RoutingConfig:
    long_context_threshold: int = 60000
    classify_timeout_s: float = 15.0
    classify_max_tokens: int = 8192
    health_cache_s: float = 5.0
    verdict_cache_size: int = 4096
    # Empty: the built-in prompt.  Otherwise an absolute path to a prompt file.
    classifier_prompt_file: str = ""


@dataclass(frozen=True)
class LogConfig:
    decisions: str = ""
    max_bytes: int = 20 * 1024 * 1024
    backups: int = 5
    # The server log: empty means stderr (journald, a terminal).  A path: the proxy writes it
    # itself, rotated at server_max_bytes with server_backups old files, and its stdout/stderr
    # follow the current file (the installer points it at the proxy.log systemd appends to).
    server: str = ""
    server_max_bytes: int = 10 * 1024 * 1024
    server_backups: int = 3


@dataclass(frozen=True)
class Config:
    listen: ListenConfig = field(default_factory=ListenConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    cloud: CloudConfig = field(default_factory=CloudConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    log: LogConfig = field(default_factory=LogConfig)
    # Where this config was read from; not a key in the file.
    source: str = ""

    def router_key(self, environ: typing.Mapping[str, str] | None = None) -> str:
        return (environ if environ is not None else os.environ).get(self.listen.key_env, "")

    def cloud_key(self, environ: typing.Mapping[str, str] | None = None) -> str:
        return (environ if environ is not None else os.environ).get(self.cloud.key_env, "")

    def local_key(self, environ: typing.Mapping[str, str] | None = None) -> str:
        if not self.local.key_env:
            return ""
        return (environ if environ is not None else os.environ).get(self.local.key_env, "")


_SECTIONS: dict[str, type[Any]] = {
    "listen": ListenConfig,
    "local": LocalConfig,
    "cloud": CloudConfig,
    "routing": RoutingConfig,
    "log": LogConfig,
}

# Keys holding filesystem paths: must be absolute, no `~`, no `$VAR`.
_PATH_KEYS = {
    ("listen", "pidfile"),
    ("routing", "classifier_prompt_file"),
    ("log", "decisions"),
    ("log", "server"),
}
# Keys holding environment variable *names*: a value that looks like a secret is refused.
_ENV_NAME_KEYS = {("listen", "key_env"), ("cloud", "key_env"), ("local", "key_env")}
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL_KEYS = {("local", "base_url"), ("cloud", "base_url")}
_REQUIRED = {("local", "model"), ("cloud", "simple_model"), ("cloud", "complex_model")}
_POSITIVE = {
    ("listen", "port"),
    ("listen", "max_body_bytes"),
    ("listen", "body_read_timeout_s"),
    ("listen", "max_connections"),
    ("listen", "idle_timeout_s"),
    ("local", "max_output_tokens"),
    ("local", "connect_timeout_s"),
    ("local", "first_token_timeout_s"),
    ("local", "read_timeout_s"),
    ("local", "health_timeout_s"),
    ("local", "output_reserve_tokens"),
    ("cloud", "timeout_s"),
    ("cloud", "first_byte_timeout_s"),
    ("cloud", "connect_timeout_s"),
    ("cloud", "max_attempts"),
    ("routing", "long_context_threshold"),
    ("routing", "classify_timeout_s"),
    ("routing", "classify_max_tokens"),
    ("routing", "verdict_cache_size"),
    ("log", "max_bytes"),
    ("log", "server_max_bytes"),
    ("log", "server_backups"),
}


_NON_NEGATIVE = {("local", "context_tokens")}
LOCAL_APIS = ("openai", "anthropic", "auto")
_CHOICES = {("local", "api"): LOCAL_APIS}


def local_dialect(local: LocalConfig, speaks_anthropic: bool | None) -> str:
    """The dialect the local path speaks: ``local.api``, with "auto" resolved by the capability
    probe (``LocalCapabilities.anthropic``) — "anthropic" only where it found /v1/messages."""
    if local.api == "auto":
        return "anthropic" if speaks_anthropic else "openai"
    return local.api


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _check_value(section: str, key: str, value: Any, tp: Any) -> Any:
    name = f"{section}.{key}"
    if tp is float:
        # TOML distinguishes 15 from 15.0; a user should not have to.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config key '{name}' must be {_type_name(tp)}, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{name}' must be {_type_name(tp)}, got {value!r}")
        return value
    if not isinstance(value, tp):
        raise ConfigError(f"config key '{name}' must be {_type_name(tp)}, got {value!r}")
    return value


def _check_path(name: str, value: str) -> None:
    if not value:
        return
    if "$" in value or value.startswith("~"):
        raise ConfigError(
            f"config key '{name}' holds {value!r}: variables and '~' are not expanded here; "
            "write the absolute path (e.g. /home/you/...)"
        )
    if not Path(value).is_absolute():
        raise ConfigError(f"config key '{name}' must be an absolute path, got {value!r}")


def _validate(section: str, key: str, value: Any) -> None:
    name = f"{section}.{key}"
    if (section, key) in _PATH_KEYS:
        _check_path(name, value)
    if (section, key) in _ENV_NAME_KEYS and value and not _ENV_NAME_RE.match(value):
        raise ConfigError(
            f"config key '{name}' must name an environment variable (like SWITCHYARD_ROUTER_KEY), "
            "not hold the secret itself"
        )
    if (section, key) in _URL_KEYS and not re.match(r"^https?://[^/\s]+", value):
        raise ConfigError(f"config key '{name}' must be an http:// or https:// URL, got {value!r}")
    if (section, key) in _REQUIRED and not value:
        raise ConfigError(f"config key '{name}' is required and empty; set it (the installer fills it in)")
    if (section, key) in _CHOICES and value not in _CHOICES[section, key]:
        raise ConfigError(f"config key '{name}' must be one of {', '.join(_CHOICES[section, key])}, got {value!r}")
    if (section, key) in _NON_NEGATIVE and value < 0:
        raise ConfigError(f"config key '{name}' must be 0 or more, got {value!r}")
    if (section, key) in _POSITIVE and value <= 0:
        raise ConfigError(f"config key '{name}' must be greater than 0, got {value!r}")


def _build_section(section: str, cls: type[Any], raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"config key '{section}' must be a table ([{section}])")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(
                f"unknown config key '{section}.{key}'; known keys in [{section}]: {', '.join(sorted(known))}"
            )
        tp = hints[key]
        if isinstance(tp, types.UnionType):  # pragma: no cover - no optional fields today
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        checked = _check_value(section, key, value, tp)
        _validate(section, key, checked)
        kwargs[key] = checked
    obj = cls(**kwargs)
    # Defaults must pass the same checks (e.g. a required key left out entirely).
    for f in dataclasses.fields(cls):
        if f.name not in kwargs:
            _validate(section, f.name, getattr(obj, f.name))
    return obj


def config_from_dict(data: dict[str, Any], source: str = "") -> Config:
    sections: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in _SECTIONS:
            raise ConfigError(f"unknown config section '{key}'; known sections: {', '.join(sorted(_SECTIONS))}")
        sections[key] = _build_section(key, _SECTIONS[key], raw)
    for key, cls in _SECTIONS.items():
        if key not in sections:
            sections[key] = _build_section(key, cls, {})
    return Config(**sections, source=source)


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist; run 'python -m installer' to create it") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    return config_from_dict(data, source=str(p.resolve()))


def load_prompt(cfg: Config) -> str:
    """The classifier prompt: the file named in the config, else the built-in one."""
    from proxy.classifier import DEFAULT_PROMPT

    path = cfg.routing.classifier_prompt_file
    if not path:
        return DEFAULT_PROMPT
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read routing.classifier_prompt_file {path}: {exc.strerror}") from None
    if not text.strip():
        raise ConfigError(f"routing.classifier_prompt_file {path} is empty")
    return text
