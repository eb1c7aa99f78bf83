"""Every path Switchyard uses, derived from HOME and the XDG base-directory variables: the one set of defaults.

The installer, the uninstaller and every ``switchyard`` command compute their paths here, so they
agree on where the pidfile, the unit, the launcher and the env file are.  Nothing reads the real home
implicitly: callers may pass the environment (tests pass a temporary one).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP = "switchyard"
UNIT_NAME = "switchyard.service"
DEFAULT_LAUNCHER = "claude-routed"
DEFAULT_PORT = 3456


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
    def from_env(cls, environ: Mapping[str, str] | None = None, *, strict: bool = True) -> Paths:
        """The tree for this environment; ``strict=False`` falls back to the password database's home."""
        env = os.environ if environ is None else environ
        home_s = env.get("HOME", "")
        if not home_s or not Path(home_s).is_absolute():
            if strict:
                raise PathsError("HOME is not set to an absolute path; set HOME and run the command again")
            home_s = str(Path.home())
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

    def saved_launcher_name(self) -> str:
        """The launcher's name from the installer's answers file (a flat YAML mapping), else the default.

        Read with a line scan rather than a YAML parser: the key is a plain scalar on its own line and
        this keeps the host layer free of third-party imports.
        """
        try:
            text = self.answers_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return DEFAULT_LAUNCHER
        for line in text.splitlines():
            if line.startswith("launcher_name:"):
                value = line.split(":", 1)[1].split(" #", 1)[0].strip().strip("'\"")
                if value and "/" not in value:
                    return value
        return DEFAULT_LAUNCHER

    @property
    def saved_launcher(self) -> Path:
        return self.launcher(self.saved_launcher_name())

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
        """The default pidfile: in the runtime directory (cleared at boot) when there is one."""
        return self.pid_dir / "switchyard.pid"

    def pidfile_for(self, configured: str) -> Path:
        """The config's ``listen.pidfile`` when it names one, else the default."""
        return Path(configured) if configured else self.pidfile
