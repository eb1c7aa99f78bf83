"""Guesses offered as choices: where the LiteLLM config is, and how LiteLLM is restarted.

All read-only: ``/proc`` command lines, ``docker``/``podman ps``, ``systemctl list-units``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def _litellm_cmdlines() -> list[tuple[int, list[str]]]:
    out: list[tuple[int, list[str]]] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return out
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = [a.decode("utf-8", "replace") for a in (d / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if any("litellm" in Path(a).name for a in argv[:3]):
            out.append((int(d.name), argv))
    return out


def config_candidates(home: Path, cwd: Path) -> list[Path]:
    """Existing files that are likely the LiteLLM config, most likely first."""
    found: list[Path] = []
    for pid, argv in _litellm_cmdlines():
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
                        continue
                found.append(p)
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
