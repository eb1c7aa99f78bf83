"""Test isolation and shared fixtures for Switchyard.

Every test runs with HOME and all XDG base directories inside its own ``tmp_path`` (autouse
fixture ``user_paths``), and without ``LITELLM_MASTER_KEY``, ``ANTHROPIC_*`` or ``SWITCHYARD_*``
in the environment.  Nothing a test does can reach the developer's real files or accounts.

Fixtures:

- ``user_paths`` (autouse) -> :class:`UserPaths` with ``home``, ``config``, ``data``, ``state``,
  ``cache``, ``runtime`` (``XDG_RUNTIME_DIR``, mode 0700).
- ``free_port`` -> a callable returning an unused loopback port.
- ``anthropic_upstream`` / ``openai_local`` / ``strict_upstream`` -> a fresh, started stand-in
  server (:mod:`tests.standins`) per test; ``upstream`` and ``local`` are the same two under the
  names the server tests use.
- ``litellm_bin`` / ``claude_bin`` (session) -> path of the real executable, found through
  ``SWITCHYARD_TEST_LITELLM`` / ``SWITCHYARD_TEST_CLAUDE``, then ``.ci-cache/``, then PATH.
  Missing: the test is skipped locally, but fails loudly when ``CI`` is set.
- ``litellm_cloud`` (session) -> :class:`LiteLLMCloud`: a stand-in Anthropic upstream behind a
  real LiteLLM proxy exposing ``cloud-simple`` and ``cloud-complex``.  ``cloud`` is the same
  object, reset (scripts, responder and recorded requests cleared) before the test.
- ``llama`` (session) -> :class:`tests.llama_server.LlamaPool`: a real llama.cpp ``llama-server``
  with a real small model (SmolLM2-135M), ``llama.get(LlamaOptions(ctx=..., parallel=...))``
  starting one per set of options and sharing it across the session.  Built by ``.ci/llama.sh``;
  missing, the test is skipped locally and fails in CI.
- ``start_litellm`` -> ``start_litellm(config_path, **LiteLLMProcess kwargs)``: starts a LiteLLM
  proxy with your config (stopped after the test); call ``.restart(new_config)`` on it to reload.

Tests that use the LiteLLM, Claude CLI or llama.cpp fixtures are marked ``litellm`` / ``claude_cli`` /
``llama`` automatically, so ``pytest -m "not litellm and not claude_cli"`` gives a fast inner loop.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.litellm_proc import LiteLLMProcess, anthropic_model, write_config
from tests.llama_server import LlamaPool, find_llama
from tests.standins import AnthropicUpstream, OpenAILocal, StrictOpenAIUpstream
from tests.standins.base import free_port as _free_port

if TYPE_CHECKING:
    from tests.test_installer_support import Lab

REPO_ROOT = Path(__file__).resolve().parents[1]
CI_CACHE = REPO_ROOT / ".ci-cache"
# Captured at import, before any test's monkeypatching removes SWITCHYARD_* variables.
_ORIG_ENV = dict(os.environ)
_SCRUBBED_PREFIXES = ("ANTHROPIC_", "SWITCHYARD_")
_SCRUBBED_NAMES = ("LITELLM_MASTER_KEY",)


@dataclass(frozen=True)
class UserPaths:
    home: Path
    config: Path
    data: Path
    state: Path
    cache: Path
    runtime: Path


def isolate_user_env(root: Path, monkeypatch: pytest.MonkeyPatch) -> UserPaths:
    """Point HOME and the XDG directories into ``root`` and drop account variables (see module doc)."""
    home = root / "home"
    paths = UserPaths(
        home=home,
        config=home / ".config",
        data=home / ".local" / "share",
        state=home / ".local" / "state",
        cache=home / ".cache",
        runtime=root / "run",
    )
    for p in (paths.home, paths.config, paths.data, paths.state, paths.cache):
        p.mkdir(parents=True, exist_ok=True)
    paths.runtime.mkdir(mode=0o700, exist_ok=True)
    paths.runtime.chmod(stat.S_IRWXU)  # mkdir's mode is filtered by the umask
    monkeypatch.setenv("HOME", str(paths.home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(paths.config))
    monkeypatch.setenv("XDG_DATA_HOME", str(paths.data))
    monkeypatch.setenv("XDG_STATE_HOME", str(paths.state))
    monkeypatch.setenv("XDG_CACHE_HOME", str(paths.cache))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(paths.runtime))
    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES) or name in _SCRUBBED_NAMES:
            monkeypatch.delenv(name)
    return paths


@pytest.fixture(autouse=True)
def user_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UserPaths:
    return isolate_user_env(tmp_path, monkeypatch)


@pytest.fixture
def free_port() -> Callable[[], int]:
    return _free_port


# ----- real executables ---------------------------------------------------------------------------
def find_executable(
    env_var: str, cached: Path, name: str, environ: Mapping[str, str] = _ORIG_ENV
) -> str | None:
    """``$env_var`` if set (it must be executable), else ``cached`` if it exists, else ``name`` on PATH."""
    explicit = environ.get(env_var)
    if explicit:
        if not os.access(explicit, os.X_OK):
            pytest.fail(f"{env_var}={explicit} is not an executable file; fix or unset it", pytrace=False)
        return explicit
    if os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which(name, path=environ.get("PATH"))


def require_executable(path: str | None, what: str, env_var: str, how: str, in_ci: bool) -> str:
    """``path``, or skip the test (fail it when running in CI, where everything must be installed)."""
    if path:
        return path
    msg = f"{what} not found: set {env_var} or run .ci/run ({how})"
    if in_ci:
        pytest.fail(f"CI is set but {msg}", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def litellm_bin() -> str:
    found = find_executable("SWITCHYARD_TEST_LITELLM", CI_CACHE / "litellm-venv" / "bin" / "litellm", "litellm")
    how = "pip install 'litellm[proxy]==1.106.2'"
    return require_executable(found, "litellm", "SWITCHYARD_TEST_LITELLM", how, bool(_ORIG_ENV.get("CI")))


@pytest.fixture(scope="session")
def claude_bin() -> str:
    found = find_executable(
        "SWITCHYARD_TEST_CLAUDE", CI_CACHE / "node" / "node_modules" / ".bin" / "claude", "claude"
    )
    how = "npm install @anthropic-ai/claude-code@2.1.197"
    return require_executable(found, "claude", "SWITCHYARD_TEST_CLAUDE", how, bool(_ORIG_ENV.get("CI")))


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaPool]:
    server, model = find_llama(_ORIG_ENV)
    how = "bash .ci/llama.sh builds it"
    in_ci = bool(_ORIG_ENV.get("CI"))
    server = require_executable(server, "llama-server", "SWITCHYARD_TEST_LLAMA_SERVER", how, in_ci)
    model = require_executable(model, "the SmolLM2 GGUF model", "SWITCHYARD_TEST_LLAMA_MODEL", how, in_ci)
    pool = LlamaPool(server, model, tmp_path_factory.mktemp("llama-logs"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty working directory for a Claude Code run."""
    p = tmp_path / "project"
    p.mkdir()
    return p


# ----- stand-ins ----------------------------------------------------------------------------------
@pytest.fixture
def anthropic_upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as srv:
        yield srv


@pytest.fixture
def openai_local() -> Iterator[OpenAILocal]:
    with OpenAILocal() as srv:
        yield srv


@pytest.fixture
def local(openai_local: OpenAILocal) -> OpenAILocal:
    """What server tests call the fresh stand-in local server (a module may define its own)."""
    return openai_local


@pytest.fixture
def upstream(anthropic_upstream: AnthropicUpstream) -> AnthropicUpstream:
    """What server tests call the fresh stand-in cloud (a module may define its own)."""
    return anthropic_upstream


@pytest.fixture
def strict_upstream() -> Iterator[StrictOpenAIUpstream]:
    with StrictOpenAIUpstream() as srv:
        yield srv


# ----- LiteLLM ------------------------------------------------------------------------------------
@dataclass
class LiteLLMCloud:
    """A stand-in Anthropic upstream behind a real LiteLLM proxy."""

    upstream: AnthropicUpstream
    proc: LiteLLMProcess
    simple_model: str = "cloud-simple"
    complex_model: str = "cloud-complex"

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def master_key(self) -> str:
        return self.proc.master_key

    def reset(self) -> None:
        self.upstream.reset_script()
        self.upstream.responder = None
        self.upstream.clear()


@pytest.fixture(scope="session")
def litellm_cloud(litellm_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMCloud]:
    workdir = tmp_path_factory.mktemp("litellm-cloud")
    with AnthropicUpstream() as upstream:
        cfg = write_config(
            workdir / "litellm.yaml",
            [anthropic_model("cloud-simple", upstream.url), anthropic_model("cloud-complex", upstream.url)],
        )
        with LiteLLMProcess(litellm_bin, cfg, log_path=workdir / "litellm.log") as proc:
            yield LiteLLMCloud(upstream=upstream, proc=proc)


@pytest.fixture
def cloud(litellm_cloud: LiteLLMCloud) -> Iterator[LiteLLMCloud]:
    litellm_cloud.reset()
    if not litellm_cloud.proc.running:  # a previous test killed it: bring it back
        litellm_cloud.proc.start()
    yield litellm_cloud
    litellm_cloud.reset()


# ----- installer lab: stand-ins + a real LiteLLM (tests/test_installer_support.py) -------------
@pytest.fixture(scope="module")
def shared_lab(litellm_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab per test module: starting LiteLLM costs ~7 s."""
    from tests.test_installer_support import make_lab

    with make_lab(tmp_path_factory.mktemp("lab"), litellm_bin) as lab:
        yield lab


@pytest.fixture
def lab(litellm_bin: str, tmp_path: Path) -> Iterator[Lab]:
    """A private lab, for tests that restart or break LiteLLM."""
    from tests.test_installer_support import make_lab

    with make_lab(tmp_path / "lab", litellm_bin) as lab:
        yield lab


@pytest.fixture
def start_litellm(litellm_bin: str, tmp_path: Path) -> Iterator[Callable[..., LiteLLMProcess]]:
    started: list[LiteLLMProcess] = []

    def start(config: Path, **kw: Any) -> LiteLLMProcess:
        kw.setdefault("log_path", tmp_path / f"litellm-{len(started)}.log")
        proc = LiteLLMProcess(litellm_bin, config, **kw)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "litellm_bin" in names:
            item.add_marker(pytest.mark.litellm)
        if "claude_bin" in names:
            item.add_marker(pytest.mark.claude_cli)
        if "llama" in names:
            item.add_marker(pytest.mark.llama)
