"""The secrets file: ``NAME=value`` lines, mode 0600, read by the unit and by every ops command."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path


def parse_env_text(text: str) -> dict[str, str]:
    """Parse ``NAME=value`` lines the way systemd's EnvironmentFile= does for the simple cases.

    Blank lines and ``#`` comments are skipped; an optional ``export`` prefix and one level of
    matching single or double quotes around the value are removed.
    """
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "a").isalnum() or name[0].isdigit():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """The file's variables, or an empty mapping when it does not exist or cannot be read."""
    try:
        return parse_env_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}


def apply_env_file(path: Path, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set the file's variables that are not already set; returns the names it set."""
    env = environ if environ is not None else os.environ
    added = []
    for name, value in read_env_file(path).items():
        if not env.get(name):
            env[name] = value
            added.append(name)
    return added
