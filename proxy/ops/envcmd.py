"""``switchyard env``: the shell lines that point Claude Code at Switchyard, for ``eval "$(switchyard env)"``.

This is the one command that prints a secret (the router key), on purpose: it is what the shell
needs.  Everything is quoted for the shell, so a key with odd characters cannot inject commands.
"""

from __future__ import annotations

import shlex

from proxy.config import Config
from proxy.ops.context import base_url

# Claude Code's own client timeout; a cloud answer may legitimately take as long as the proxy allows.
_MIN_TIMEOUT_MS = 600_000


def env_vars(cfg: Config, key: str) -> dict[str, str]:
    url = base_url(cfg)
    return {
        "ANTHROPIC_BASE_URL": url,
        # A bearer token, as the installer's launcher sends it (no API-key approval prompt in Claude Code).
        "ANTHROPIC_AUTH_TOKEN": key,
        "API_TIMEOUT_MS": str(max(_MIN_TIMEOUT_MS, int(cfg.cloud.timeout_s * 1000))),
        # Keep an HTTP(S)_PROXY in the user's shell from intercepting loopback traffic.
        "NO_PROXY": "127.0.0.1,localhost",
    }


# Set by other setups and taking precedence over ANTHROPIC_AUTH_TOKEN or the base URL.
UNSET = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")


def render(variables: dict[str, str], shell: str = "sh") -> list[str]:
    if shell == "fish":
        lines = [f"set -gx {name} {shlex.quote(value)};" for name, value in variables.items()]
        lines += [f"set -e {name};" for name in UNSET]
        return lines
    lines = [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    lines.append("unset " + " ".join(UNSET))
    return lines
