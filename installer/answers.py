"""The installer's answers: one object per run, layered flags > answers file > previous answers > defaults.

Field names are the answers-file keys and (with ``-`` for ``_``) the CLI flags.  Secrets are never
answers: the LiteLLM key comes from ``LITELLM_MASTER_KEY`` or the variable named by
``litellm_key_env``, and the saved ``answers.yml`` holds no key.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from proxy.config import LOCAL_APIS

DEFAULT_LITELLM_URL = "http://127.0.0.1:4000"
DEFAULT_PORT = 3456
DEFAULT_LAUNCHER = "claude-routed"
DEFAULT_LONG_CONTEXT = 60000
DEFAULT_CLASSIFY_TIMEOUT = 15.0
DEFAULT_CLASSIFY_MAX_TOKENS = 8192
DEFAULT_LITELLM_KEY_ENV = "LITELLM_MASTER_KEY"

_LAUNCHER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL_RE = re.compile(r"^https?://[^/\s]+")


class AnswersError(Exception):
    """Problems with the answers; ``problems`` lists every one (the message joins them)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class Answers:
    local_url: str | None = None
    local_model: str | None = None
    litellm_url: str | None = None
    litellm_config: str | None = None
    cloud_simple_model: str | None = None
    cloud_complex_model: str | None = None
    cloud_entries: list[str] | None = None
    litellm_restart: str | None = None  # "none" or a shell command
    port: int | None = None
    launcher_name: str | None = None
    long_context_threshold: int | None = None
    classify_timeout_s: float | None = None
    classify_max_tokens: int | None = None
    # The context one local request gets, when the server cannot say (0: ask the server).
    local_context_tokens: int | None = None
    # The dialect spoken to the local server (local.api); None: proposed from the probe.
    local_api: str | None = None
    litellm_key_env: str | None = None
    # Where each value came from (flag, file, previous, default, prompt): shown in the plan.
    origin: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "origin"]

    def get(self, key: str) -> Any:
        return getattr(self, key)

    def set(self, key: str, value: Any, origin: str) -> None:
        setattr(self, key, value)
        self.origin[key] = origin

    def to_saved(self) -> dict[str, Any]:
        """What goes to answers.yml: every answer, no secret (there are none among the fields)."""
        return {k: self.get(k) for k in self.field_names() if self.get(k) is not None}


DEFAULTS: dict[str, Any] = {
    "litellm_url": DEFAULT_LITELLM_URL,
    "port": DEFAULT_PORT,
    "launcher_name": DEFAULT_LAUNCHER,
    "long_context_threshold": DEFAULT_LONG_CONTEXT,
    "classify_timeout_s": DEFAULT_CLASSIFY_TIMEOUT,
    "classify_max_tokens": DEFAULT_CLASSIFY_MAX_TOKENS,
    "local_context_tokens": 0,
    "litellm_key_env": DEFAULT_LITELLM_KEY_ENV,
}


def _yaml() -> YAML:
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.width = 1 << 16  # a long restart command stays on one line
    return y


def read_answers_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnswersError([f"answers file {path} does not exist"]) from None
    except OSError as exc:
        raise AnswersError([f"cannot read answers file {path}: {exc.strerror}"]) from None
    try:
        data = _yaml().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise AnswersError([f"answers file {path}{where} is not valid YAML"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AnswersError([f"answers file {path} must be a mapping of key: value"])
    unknown = sorted(str(k) for k in data if k not in Answers.field_names())
    if unknown:
        raise AnswersError(
            [f"answers file {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(Answers.field_names())}"]
        )
    return {str(k): v for k, v in data.items()}


def dump_answers(answers: Answers) -> bytes:
    buf = io.StringIO()
    buf.write("# Switchyard installer answers (no secrets). Re-running the installer offers these as defaults.\n")
    _yaml().dump(answers.to_saved(), buf)
    return buf.getvalue().encode()


def layer(
    flags: Mapping[str, Any], file_values: Mapping[str, Any], previous: Mapping[str, Any], *, use_defaults: bool = True
) -> tuple[Answers, list[str]]:
    """Combine the layers, coercing types; returns the answers and every type problem found."""
    ans = Answers()
    problems: list[str] = []
    sources: list[tuple[str, Mapping[str, Any]]] = [("flag", flags), ("answers file", file_values)]
    sources.append(("previous run", previous))
    if use_defaults:
        sources.append(("default", DEFAULTS))
    for key in Answers.field_names():
        for origin, layer_values in sources:
            if layer_values.get(key) is None:
                continue
            try:
                value = coerce(key, layer_values[key])
            except ValueError as exc:
                problems.append(f"{key} ({origin}): {exc}")
                break
            ans.set(key, value, origin)
            break
    return ans, problems


_INT_KEYS = {"port", "long_context_threshold", "classify_max_tokens", "local_context_tokens"}
_FLOAT_KEYS = {"classify_timeout_s"}


def coerce(key: str, value: Any) -> Any:
    if key in _INT_KEYS:
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number, got {value!r}")
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError(f"must be a whole number, got {value!r}") from None
    if key in _FLOAT_KEYS:
        if isinstance(value, bool):
            raise ValueError(f"must be a number, got {value!r}")
        try:
            return float(str(value).strip())
        except ValueError:
            raise ValueError(f"must be a number, got {value!r}") from None
    if key == "cloud_entries":
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ValueError("must be a list of model names")
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"must be text, got {value!r}")
    return str(value).strip()


def static_problems(ans: Answers, *, require_all: bool) -> list[str]:
    """Format checks that need no live service; ``require_all`` lists missing required answers too."""
    problems: list[str] = []
    required = [
        "local_url",
        "local_model",
        "litellm_url",
        # litellm_config is not required: without it, the config of the LiteLLM at litellm_url is used.
        "cloud_simple_model",
        "cloud_complex_model",
        "litellm_restart",
    ]
    if require_all:
        for key in required:
            if ans.get(key) in (None, ""):
                problems.append(f"{key} is missing (add it to the answers file or pass --{key.replace('_', '-')})")
    for key in ("local_url", "litellm_url"):
        v = ans.get(key)
        if v and not _URL_RE.match(v):
            problems.append(f"{key} must be an http:// or https:// URL, got {v!r}")
    if ans.port is not None and not 1 <= ans.port <= 65535:
        problems.append(f"port must be between 1 and 65535, got {ans.port}")
    if ans.launcher_name is not None and not _LAUNCHER_RE.match(ans.launcher_name):
        problems.append(
            f"launcher_name must be a plain file name (letters, digits, . _ -), got {ans.launcher_name!r}"
        )
    if ans.launcher_name == "claude":
        problems.append("launcher_name must not be 'claude': the launcher runs your own claude")
    for key in ("long_context_threshold", "classify_max_tokens"):
        v = ans.get(key)
        if v is not None and v <= 0:
            problems.append(f"{key} must be greater than 0, got {v}")
    if ans.local_context_tokens is not None and ans.local_context_tokens < 0:
        problems.append(f"local_context_tokens must be 0 (ask the server) or more, got {ans.local_context_tokens}")
    if ans.local_api is not None and ans.local_api not in LOCAL_APIS:
        problems.append(f"local_api must be one of {', '.join(LOCAL_APIS)}, got {ans.local_api!r}")
    if ans.classify_timeout_s is not None and ans.classify_timeout_s <= 0:
        problems.append(f"classify_timeout_s must be greater than 0, got {ans.classify_timeout_s}")
    if ans.litellm_key_env is not None and not _ENV_RE.match(ans.litellm_key_env):
        problems.append(f"litellm_key_env must be an environment variable name, got {ans.litellm_key_env!r}")
    cfg_path = ans.litellm_config
    if cfg_path and not Path(cfg_path).expanduser().is_absolute():
        problems.append(f"litellm_config must be an absolute path, got {cfg_path!r}")
    return problems


def replace(ans: Answers, **changes: Any) -> Answers:
    out = dataclasses.replace(ans, **changes)
    out.origin = dict(ans.origin)
    return out
