"""Every path the installer touches, derived from HOME and the XDG base-directory variables.

Nothing here reads the real home implicitly: callers pass the environment (tests pass a temporary
one), so the same code computes the same tree for the installer, the uninstaller and the tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP = "switchyard"
UNIT_NAME = "switchyard.service"


class PathsError(Exception):
    """HOME is unusable; phrased as one line."""


def _xdg(environ: Mapping[str, str], var: str, home: Path, default: str) -> Path:
    value = environ.get(var, "")
    # The XDG spec says relative values are invalid and must be ignored.
    if value and Path(value).is_absolute():
        return Path(value)
    return home / default


@dataclass(frozen=True)
class Paths:
    home: Path
    config_home: Path
    data_home: Path
    state_home: Path
    runtime_dir: Path | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        home_s = env.get("HOME", "")
        if not home_s or not Path(home_s).is_absolute():
            raise PathsError("HOME is not set to an absolute path; set HOME and run the installer again")
        home = Path(home_s)
        runtime = env.get("XDG_RUNTIME_DIR", "")
        return cls(
            home=home,
            config_home=_xdg(env, "XDG_CONFIG_HOME", home, ".config"),
            data_home=_xdg(env, "XDG_DATA_HOME", home, ".local/share"),
            state_home=_xdg(env, "XDG_STATE_HOME", home, ".local/state"),
            runtime_dir=Path(runtime) if runtime and Path(runtime).is_absolute() else None,
        )

    # --- configuration -------------------------------------------------------------------------
    @property
    def config_dir(self) -> Path:
        return self.config_home / APP

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def env_file(self) -> Path:
        return self.config_dir / "env"

    @property
    def answers_file(self) -> Path:
        return self.config_dir / "answers.yml"

    @property
    def unit_dir(self) -> Path:
        return self.config_home / "systemd" / "user"

    @property
    def unit_file(self) -> Path:
        return self.unit_dir / UNIT_NAME

    # --- data ----------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.data_home / APP

    @property
    def venv_dir(self) -> Path:
        return self.data_dir / "venv"

    @property
    def venv_python(self) -> Path:
        return self.venv_dir / "bin" / "python"

    @property
    def uninstall_script(self) -> Path:
        """The deployed copy of ``uninstall.py``: it runs with ``venv_python`` (beside it), no checkout needed."""
        return self.data_dir / "uninstall.py"

    @property
    def bin_dir(self) -> Path:
        return self.home / ".local" / "bin"

    def launcher(self, name: str) -> Path:
        return self.bin_dir / name

    # --- state ---------------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.state_home / APP

    @property
    def journal_file(self) -> Path:
        return self.state_dir / "journal.json"

    @property
    def backups_dir(self) -> Path:
        return self.state_dir / "backups"

    @property
    def decisions_log(self) -> Path:
        return self.state_dir / "decisions.jsonl"

    @property
    def proxy_log(self) -> Path:
        return self.state_dir / "proxy.log"

    @property
    def pid_dir(self) -> Path:
        if self.runtime_dir is not None:
            return self.runtime_dir / APP
        return self.state_dir

    @property
    def pidfile(self) -> Path:
        return self.pid_dir / "switchyard.pid"
