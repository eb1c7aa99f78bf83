"""Shared helpers for the installer tests: a "lab" of real services and tree snapshots.

The lab is a stand-in local model server (OpenAILocal), a strict OpenAI-compatible upstream that
answers 400 "Extra inputs are not permitted" to reasoning/thinking/enable_thinking, and a real
LiteLLM proxy in front of it exposing ``cloud-simple`` and ``cloud-complex`` as ``hosted_vllm/``
entries (the kind that forwards those fields, see the field notes).  LiteLLM is started through a
small restart script, because the installer restarts it with a shell command, as a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.litellm_proc import DEFAULT_MASTER_KEY, child_env
from tests.standins import OpenAILocal, StrictOpenAIUpstream
from tests.standins.base import free_port

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "data" / "litellm_configs"

LAB_CONFIG = """\
# LiteLLM config used by the installer tests (a user's file: comments must survive)
model_list:
  - model_name: cloud-simple        # cheap tier
    litellm_params:
      model: hosted_vllm/strict-model
      api_base: {strict}
      api_key: os.environ/STRICT_UPSTREAM_KEY
  # the complex tier
  - model_name: cloud-complex
    litellm_params:
      model: hosted_vllm/strict-model
      api_base: {strict}
      api_key: os.environ/STRICT_UPSTREAM_KEY

litellm_settings:
  num_retries: 0
  request_timeout: 600
router_settings:
  num_retries: 0
"""

RESTART_SCRIPT = """\
import json, os, signal, subprocess, sys, time
spec = json.load(open({spec!r}))
pidfile = spec["pidfile"]
try:
    pid = int(open(pidfile).read())
except (OSError, ValueError):
    pid = 0
if pid:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
log = open(spec["log"], "ab")
proc = subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        env=spec["env"], cwd=spec["cwd"], start_new_session=True)
open(pidfile, "w").write(str(proc.pid))
"""


@dataclass
class Lab:
    root: Path
    local: OpenAILocal
    strict: StrictOpenAIUpstream
    litellm_port: int
    litellm_config: Path
    restart_cmd: str
    pidfile: Path

    @property
    def litellm_url(self) -> str:
        return f"http://127.0.0.1:{self.litellm_port}"

    @property
    def key(self) -> str:
        return DEFAULT_MASTER_KEY

    def restart(self) -> None:
        subprocess.run(self.restart_cmd, shell=True, check=True)
        wait_live(self.litellm_url)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            pid = int(self.pidfile.read_text())
            os.killpg(pid, signal.SIGTERM)
            for _ in range(200):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)


def wait_live(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as c:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if c.get(f"{url}/health/liveliness").status_code == 200:
                    return
            time.sleep(0.2)
    raise RuntimeError(f"LiteLLM at {url} not live after {timeout} s")


# A non-interactive install as most tests run it: fast venv, no classifier round trip.
INSTALL = ("--yes", "--venv-mode", "inherit", "--no-classifier-check")


@contextlib.contextmanager
def make_lab(root: Path, litellm_bin: str) -> Iterator[Lab]:
    root.mkdir(parents=True, exist_ok=True)
    with OpenAILocal(models=("qwen-local", "other-local")) as local, StrictOpenAIUpstream() as strict:
        cfg = root / "litellm" / "config.yaml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(LAB_CONFIG.format(strict=strict.v1_url), encoding="utf-8")
        port = free_port()
        home = root / "litellm-home"
        home.mkdir(exist_ok=True)
        env = child_env(DEFAULT_MASTER_KEY, {"STRICT_UPSTREAM_KEY": "sk-strict"}, home=home)
        spec = {
            "pidfile": str(root / "litellm.pid"),
            "log": str(root / "litellm.log"),
            "argv": [litellm_bin, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
            "env": env,
            "cwd": str(cfg.parent),
        }
        (root / "restart-spec.json").write_text(json.dumps(spec), encoding="utf-8")
        script = root / "restart-litellm.py"
        script.write_text(RESTART_SCRIPT.format(spec=str(root / "restart-spec.json")), encoding="utf-8")
        lab = Lab(root, local, strict, port, cfg, f"{sys.executable} {script}", root / "litellm.pid")
        lab.restart()
        try:
            yield lab
        finally:
            lab.stop()


def snapshot(*roots: Path, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every file, directory and symlink under the roots: bytes, mode, link target.

    A root may itself be a file or a symlink (the LiteLLM config, say): it is recorded as one entry,
    since ``os.walk`` on a file yields nothing and the comparison would silently cover nothing.
    """
    out: dict[str, Any] = {}

    def record(p: Path) -> None:
        if any(part in ignore for part in p.parts):
            return
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[str(p)] = ("link", os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            out[str(p)] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            out[str(p)] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes())

    for root in roots:
        if not root.is_dir() or root.is_symlink():
            if root.exists() or root.is_symlink():
                record(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                record(Path(dirpath) / name)
    return out


def run_installer(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "installer", *args],
        capture_output=True, text=True, env=e, cwd=str(REPO), timeout=timeout, check=False, stdin=subprocess.DEVNULL,
    )


def answers_for(lab: Lab, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "local_url": lab.local.url,
        "local_model": "qwen-local",
        "litellm_url": lab.litellm_url,
        "litellm_config": str(lab.litellm_config),
        "cloud_simple_model": "cloud-simple",
        "cloud_complex_model": "cloud-complex",
        "litellm_restart": "none",
        "port": free_port(),
        "launcher_name": "claude-routed",
    }
    base.update(over)
    return base


def write_answers(path: Path, values: dict[str, Any]) -> Path:
    from ruamel.yaml import YAML

    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    with path.open("w", encoding="utf-8") as fh:
        y.dump(values, fh)
    return path


def stop_installed_proxy(state_or_runtime: Path) -> None:
    """Stop a background proxy the installer started (tests must not leak processes)."""
    for pidfile in state_or_runtime.rglob("switchyard.pid"):
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
