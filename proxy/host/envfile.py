"""The secrets file: one format, one writer, one reader, for systemd, the POSIX-sh launcher and Python.

Format: ``NAME='value'`` lines (mode 0600) and ``#`` comments.  A single-quoted value is taken
verbatim by POSIX sh (the launcher sources the file in a subshell), by systemd's ``EnvironmentFile=``
("may contain any character verbatim other than single quote") and by :func:`parse_env_text`, so a
value holding ``$``, ``"``, ``\\`` or a space comes back as written everywhere.  A value holding a
single quote, a line break or a NUL cannot be written that way and is refused.

python-dotenv was judged and left: its parser expands ``${VAR}`` inside double quotes and follows
its own escape rules, neither of which sh or systemd share; what matters here is that all three
readers agree, which a deliberately small format gives.  The reader also takes the two forms the
previous installer wrote (a bare safe value, a double-quoted one with ``\\`` escapes), so an
existing install keeps working until the installer rewrites the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

HEADER = "# Switchyard secrets (mode 0600). Read by the systemd unit, the launcher and switchyard."
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DQ_ESCAPES = re.compile(r'\\([\\"$`])')


class EnvFileError(Exception):
    """A value or a line the format cannot hold; one line."""


def render_env(values: Mapping[str, str]) -> bytes:
    lines = [HEADER]
    for name, value in values.items():
        if not _NAME.fullmatch(name):
            raise EnvFileError(f"{name!r} is not an environment variable name")
        if any(c in value for c in "'\n\r\0"):
            raise EnvFileError(
                f"the value of {name} holds a single quote or a line break, which the env file cannot store; "
                "choose a key without them"
            )
        lines.append(f"{name}='{value}'")
    return ("\n".join(lines) + "\n").encode()


def _value(raw: str) -> str:
    v = raw.strip()
    if len(v) >= 2 and v[0] == v[-1] == "'":
        return v[1:-1]
    if len(v) >= 2 and v[0] == v[-1] == '"':
        return _DQ_ESCAPES.sub(r"\1", v[1:-1])
    return v


def parse_env_text(text: str) -> dict[str, str]:
    """The variables of an env file; blank lines, ``#``/``;`` comments and malformed lines are skipped."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if sep and _NAME.fullmatch(name):
            values[name] = _value(value)
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
