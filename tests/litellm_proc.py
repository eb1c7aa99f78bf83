"""Run a real LiteLLM proxy (``litellm --config FILE --host 127.0.0.1 --port N``) for tests.

    cfg = write_config(tmp_path / "litellm.yaml", [
        anthropic_model("cloud-simple", upstream.url),                 # -> anthropic/claude-standin-...
        openai_model("strict", strict.v1_url, provider="hosted_vllm"), # -> hosted_vllm/strict-model
    ])
    with LiteLLMProcess(litellm_bin, cfg, log_path=tmp_path / "litellm.log") as llm:
        llm.url          # "http://127.0.0.1:PORT"
        llm.master_key   # the key clients must send (Bearer or x-api-key)
        llm.auth_headers # {"Authorization": "Bearer <key>"}
        llm.restart(new_cfg)  # stop, then start on the same port with another config (no hot reload)
        llm.log_text()   # the proxy's combined stdout/stderr so far (for assertion messages)

``start()`` waits until ``GET /health/liveliness`` answers 200 (about 7 s) and raises
:class:`LiteLLMStartError` with the log's tail if the process exits or the wait times out.
``stop()`` sends SIGTERM to the process group, then SIGKILL after a grace period.

The child runs offline and quietly: ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (no cost-map download),
``LITELLM_MODE=PRODUCTION`` (no ``.env`` loading from parent directories), no proxy variables,
no provider keys from the caller's environment, no feedback box; cwd is the config's directory and
HOME is ``<config dir>/litellm-home`` (an ``env={"HOME": ...}`` argument overrides it).
The master key is passed through the ``LITELLM_MASTER_KEY`` environment variable unless the config
sets ``general_settings.master_key``.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from ruamel.yaml import YAML

from tests.standins.base import free_port

DEFAULT_MASTER_KEY = "sk-switchyard-test-master-key"
LITELLM_VERSION = "1.106.2"

# Variables that would make LiteLLM reach the network, pick up a real account, or change its
# behaviour behind the test's back.
_SCRUB_PREFIXES = ("ANTHROPIC_", "OPENAI_", "LITELLM_", "SWITCHYARD_", "AZURE_", "AWS_", "GEMINI_", "VERTEX")
_SCRUB_NAMES = {
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
    "DATABASE_URL", "REDIS_URL", "REDIS_HOST",
}
QUIET_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
    "LITELLM_LOG": "INFO",
    "DISABLE_SCHEMA_UPDATE": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "PYTHONUNBUFFERED": "1",
}


class LiteLLMStartError(RuntimeError):
    """LiteLLM exited or did not become live; the message carries the tail of its log."""


def anthropic_model(name: str, api_base: str, upstream_model: str | None = None, **params: Any) -> dict[str, Any]:
    """A ``model_list`` entry forwarding ``name`` to a (stand-in) Anthropic API at ``api_base``."""
    return {
        "model_name": name,
        "litellm_params": {
            "model": f"anthropic/{upstream_model or 'claude-standin-' + name}",
            "api_base": api_base,
            "api_key": "sk-ant-standin-upstream-key",
            **params,
        },
    }


def openai_model(
    name: str, api_base_v1: str, upstream_model: str = "strict-model", provider: str = "hosted_vllm", **params: Any
) -> dict[str, Any]:
    """A ``model_list`` entry for an OpenAI-compatible server; ``api_base_v1`` ends in ``/v1``."""
    return {
        "model_name": name,
        "litellm_params": {
            "model": f"{provider}/{upstream_model}",
            "api_base": api_base_v1,
            "api_key": "sk-standin-upstream-key",
            **params,
        },
    }


def render_config(
    models: Sequence[Mapping[str, Any]],
    *,
    litellm_settings: Mapping[str, Any] | None = None,
    general_settings: Mapping[str, Any] | None = None,
    router_settings: Mapping[str, Any] | None = None,
) -> str:
    """A LiteLLM config YAML.  By default LiteLLM's own retries are off (``num_retries: 0``) so the
    test sees every upstream error the stand-in is scripted to give."""
    doc: dict[str, Any] = {"model_list": [dict(m) for m in models]}
    doc["litellm_settings"] = {"num_retries": 0, "request_timeout": 600, **(litellm_settings or {})}
    doc["router_settings"] = {"num_retries": 0, **(router_settings or {})}
    if general_settings:
        doc["general_settings"] = dict(general_settings)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def write_config(path: Path, models: Sequence[Mapping[str, Any]], **kw: Any) -> Path:
    """Write :func:`render_config` output to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_config(models, **kw), encoding="utf-8")
    return path


def child_env(
    master_key: str | None, extra: Mapping[str, str] | None = None, home: Path | None = None
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SCRUB_PREFIXES) and k not in _SCRUB_NAMES
    }
    env.update(QUIET_ENV)
    if home is not None:
        env["HOME"] = str(home)
    if master_key is not None:
        env["LITELLM_MASTER_KEY"] = master_key
    env.update(extra or {})
    return env


class LiteLLMProcess:
    """A LiteLLM proxy child process; see the module docstring."""

    def __init__(
        self,
        binary: str | Path,
        config: Path,
        *,
        port: int | None = None,
        master_key: str = DEFAULT_MASTER_KEY,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.binary = str(binary)
        self.config = Path(config)
        self.port = port or free_port()
        self.master_key = master_key
        self.log_path = log_path or self.config.with_suffix(".log")
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"}

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _home(self) -> Path:
        # LiteLLM and its libraries may write caches under HOME: keep them next to the config.
        home = self.config.parent / "litellm-home"
        home.mkdir(parents=True, exist_ok=True)
        return home

    def log_text(self) -> str:
        """Everything LiteLLM wrote so far (all starts, appended)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def start(self) -> Self:
        if self.running:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [self.binary, "--config", str(self.config), "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            log.write(f"\n===== switchyard tests: starting {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self.config.parent),
                env=child_env(self.master_key, self.extra_env, home=self._home()),
                start_new_session=True,  # its own process group, so stop() reaches any workers
            )
        self._wait_live()
        return self

    def _wait_live(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    code = self._proc.returncode
                    self._proc = None
                    raise LiteLLMStartError(
                        f"litellm exited with code {code} during start; log {self.log_path}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/health/liveliness").status_code == 200:
                        return
                time.sleep(0.2)
        self.stop()
        raise LiteLLMStartError(
            f"litellm not live after {self.start_timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, grace: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Workers that ignored SIGTERM die with the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def restart(self, config: Path | None = None) -> Self:
        """Stop and start again on the same port, optionally with another config file."""
        self.stop()
        if config is not None:
            self.config = Path(config)
        self._wait_port_free()
        return self.start()

    def _wait_port_free(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", self.port))
                    return
                except OSError:
                    time.sleep(0.1)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
