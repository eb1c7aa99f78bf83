"""Guesses offered as choices: where the LiteLLM config is, and how LiteLLM is restarted.

All read-only: ``/proc`` command lines, ``docker``/``podman ps``, ``systemctl list-units``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from proxy.host import procs


def _config_arg(pid: int, argv: list[str]) -> Path | None:
    """The ``--config``/``-c`` file on a LiteLLM command line, made absolute against the process's cwd."""
    for i, a in enumerate(argv):
        value = None
        if a in ("--config", "-c") and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith("--config="):
            value = a.split("=", 1)[1]
        if value:
            p = Path(value)
            if not p.is_absolute():
                try:
                    p = Path(f"/proc/{pid}/cwd").resolve() / p
                except OSError:
                    return None
            return p
    return None


def _is_litellm(argv: list[str]) -> bool:
    return any("litellm" in Path(a).name for a in argv[:3])


def _litellm_cmdlines() -> list[tuple[int, list[str]]]:
    out: list[tuple[int, list[str]]] = []
    for d in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if d.name.isdigit():
            argv = procs.cmdline(int(d.name)) or []
            if _is_litellm(argv):
                out.append((int(d.name), argv))
    return out


@dataclass(frozen=True)
class ServingConfig:
    """The config file of the LiteLLM that listens on the URL the user gave, or why it is not known."""

    path: Path | None
    reason: str


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "")


def config_serving(url: str) -> ServingConfig:
    """Which config the process listening on ``url``'s port runs with (loopback URLs only)."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return ServingConfig(None, f"{url} has no valid port")
    if (parts.hostname or "") not in _LOCAL_HOSTS:
        return ServingConfig(None, f"{url} is not on this machine, so its process cannot be asked for its config")
    listening, pids = procs.listeners(port)
    if not listening:
        return ServingConfig(None, f"nothing listens on port {port}")
    for pid in pids:
        argv = procs.cmdline(pid) or []
        if _is_litellm(argv):
            cfg = _config_arg(pid, argv)
            if cfg is None:
                return ServingConfig(None, f"the LiteLLM on port {port} (PID {pid}) runs without --config")
            return ServingConfig(cfg, f"the config of the LiteLLM listening on port {port} (PID {pid})")
    who = f"PID {', '.join(map(str, pids))}" if pids else "a process this user cannot see (a container?)"
    return ServingConfig(None, f"port {port} is held by {who}, not a LiteLLM started with --config here")


def config_candidates(home: Path, cwd: Path, serving: Path | None = None) -> list[Path]:
    """Existing files that are likely the LiteLLM config: the serving one first, then other LiteLLMs', then guesses."""
    found: list[Path] = [serving] if serving is not None else []
    for pid, argv in _litellm_cmdlines():
        cfg = _config_arg(pid, argv)
        if cfg is not None:
            found.append(cfg)
    for p in (
        cwd / "config.yaml",
        cwd / "litellm_config.yaml",
        cwd / "litellm.yaml",
        home / "litellm" / "config.yaml",
        home / ".config" / "litellm" / "config.yaml",
        home / ".litellm" / "config.yaml",
        Path("/etc/litellm/config.yaml"),
    ):
        found.append(p)
    out: list[Path] = []
    for p in found:
        if p.is_file() and p not in out:
            out.append(p)
    return out


def _lines(argv: list[str]) -> list[str]:
    if shutil.which(argv[0]) is None:
        return []
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def restart_options() -> list[tuple[str, str]]:
    """(label, shell command) for each way of restarting LiteLLM found on this machine."""
    opts: list[tuple[str, str]] = []
    for engine in ("docker", "podman"):
        for line in _lines([engine, "ps", "--format", "{{.Names}}\t{{.Image}}"]):
            name, _, image = line.partition("\t")
            if "litellm" in name.lower() or "litellm" in image.lower():
                opts.append((f"{engine} container {name} ({image})", f"{engine} restart {name}"))
    for scope, prefix in (("--user", "systemctl --user"), ("--system", "sudo systemctl")):
        for line in _lines(["systemctl", scope, "list-units", "--type=service", "--all", "--no-legend", "--plain"]):
            unit = line.split()[0] if line.split() else ""
            if "litellm" in unit.lower():
                opts.append((f"systemd unit {unit} ({scope[2:]})", f"{prefix} restart {unit}"))
    return opts
