"""The install journal's actions: each kind records itself, undoes itself and says what it left behind.

Modelled on certbot's reverter: an action is written to the journal right after its change, so an
interrupted run leaves a valid list behind; a rollback undoes the run's actions in reverse order,
and the uninstaller reads the same objects (reverse order too) to learn what an interrupted run did
that the cumulative state does not mention yet.

On disk an action is ``{"op": NAME, ...fields}``, the format the installer has always written, so
journals from earlier versions read the same.  An ``op`` this version does not know is kept as an
:class:`UnknownAction`, which undoes nothing and leaves nothing (never a crash on an old journal).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from proxy.host import procs
from proxy.host.atomic import atomic_write, write_through

SPAWN_STOP_GRACE_S = 10.0


class Traces(Protocol):
    """What an action tells the uninstaller it may have left on the machine (see uninstaller.inventory)."""

    def created_file(self, path: Path) -> None: ...
    def created_dir(self, path: Path) -> None: ...
    def backup(self, path: Path) -> None: ...
    def venv(self, path: Path) -> None: ...
    def pidfile(self, path: Path) -> None: ...
    def log(self, path: Path) -> None: ...
    def systemd_undo(self, argv: list[str]) -> None: ...


@dataclass
class Undo:
    """What undoing a run collects: failures, and what is done once, after every action."""

    journal_dir: Path
    failures: list[str] = field(default_factory=list)
    deferred_dirs: list[Path] = field(default_factory=list)
    systemd_touched: bool = False
    restart_command: str | None = None


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class Action:
    """One change the installer made.  Subclasses are dataclasses whose fields are the JSON fields."""

    op: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, **{k: v for k, v in vars(self).items()}}

    def undo(self, ctx: Undo) -> None:
        """Put back what this action changed (best effort: raise OSError or SubprocessError to report)."""

    def trace(self, into: Traces, backups_root: Path, interrupted: bool) -> None:
        """Tell the uninstaller what this action left; ``interrupted``: its run never finished."""

    def describe(self) -> str:
        return self.op


@dataclass
class MakeDir(Action):
    op: ClassVar[str] = "mkdir"
    path: str

    def undo(self, ctx: Undo) -> None:
        d = Path(self.path)
        if _under(ctx.journal_dir, d):
            # Still holds the journal: removed once the journal itself is gone.
            ctx.deferred_dirs.append(d)
            return
        with contextlib.suppress(FileNotFoundError):
            d.rmdir()

    def trace(self, into: Traces, backups_root: Path, interrupted: bool) -> None:
        if interrupted:
            into.created_dir(Path(self.path))

    def describe(self) -> str:
        return f"mkdir {self.path}"


@dataclass
class CreateFile(Action):
    op: ClassVar[str] = "create"
    path: str

    def undo(self, ctx: Undo) -> None:
        p = Path(self.path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def trace(self, into: Traces, backups_root: Path, interrupted: bool) -> None:
        p = Path(self.path)
        if _under(p, backups_root):
            into.backup(p)  # whatever run made it
        elif interrupted:
            into.created_file(p)

    def describe(self) -> str:
        return f"create {self.path}"


@dataclass
class Overwrite(Action):
    op: ClassVar[str] = "overwrite"
    path: str
    backup: str

    def undo(self, ctx: Undo) -> None:
        target, backup = Path(self.path), Path(self.backup)
        if target.exists():
            # Through a symlink when it is one (a linked LiteLLM config stays a link), mode kept.
            write_through(target, backup.read_bytes())
        else:
            atomic_write(target, backup.read_bytes(), backup.stat().st_mode & 0o7777)

    def trace(self, into: Traces, backups_root: Path, interrupted: bool) -> None:
        into.backup(Path(self.backup))

    def describe(self) -> str:
        return f"overwrite {self.path}"


@dataclass
class BuildVenv(Action):
    op: ClassVar[str] = "venv"
    path: str
    previous: str | None = None  # the old venv, moved aside

    def undo(self, ctx: Undo) -> None:
        target = Path(self.path)
        shutil.rmtree(target, ignore_errors=True)
        if self.previous:
            Path(self.previous).rename(target)

    def trace(self, into: Traces, backups_root: Path, interrupted: bool) -> None:
        if self.previous:
            into.venv(Path(self.previous))
        if interrupted:
            into.venv(Path(self.path))

    def drop_previous(self) -> None:
        """After a successful run the moved-aside venv is no longer needed."""
        if self.previous:
            shutil.rmtree(self.previous, ignore_errors=True)

    def describe(self) -> str:
        return f"build the venv {self.path}"


@dataclass
class RunCommand(Action):
    op: ClassVar[str] = "command"
    argv: list[str]
    undo_argv: list[str] | None = None
    created: list[str] = field(default_factory=list)  # files the command's program may create, new this run

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "argv": self.argv, "undo": self.undo_argv, "created": self.created}

    def undo(self, ctx: Undo) -> None:
        if self.undo_argv:
            subprocess.run(self.undo_argv, check=False, capture_output=True, timeout=60)
            ctx.systemd_touched = ctx.systemd_touched or self.undo_argv[0] == "systemctl"
        for path in self.created:
            with contextlib.suppress(FileNotFoundError):
                Path(path).unlink()

    def trace(self, into: Traces, backups_root: Path, interrupted: bool) -> None:
        if interrupted and self.argv[:1] == ["systemctl"]:
            into.systemd_undo([str(a) for a in self.undo_argv or []])

    def describe(self) -> str:
        return " ".join(self.argv)


@dataclass
class SpawnProxy(Action):
    op: ClassVar[str] = "spawn"
    pid: int
    pidfile: str
    created: list[str] = field(default_factory=list)  # logs it may create, new this run

    def undo(self, ctx: Undo) -> None:
        # The installer's own child, unreaped until stopped: its PID cannot have been reused.
        procs.stop(int(self.pid), SPAWN_STOP_GRACE_S)
        for path in [self.pidfile, *self.created]:
            with contextlib.suppress(FileNotFoundError):
                Path(path).unlink()

    def trace(self, into: Traces, backups_root: Path, interrupted: bool) -> None:
        if interrupted:
            into.pidfile(Path(self.pidfile))
            for c in self.created:
                into.log(Path(c))

    def describe(self) -> str:
        return f"start the proxy (PID {self.pid})"


@dataclass
class RestartLiteLLM(Action):
    op: ClassVar[str] = "litellm_restart"
    command: str

    def undo(self, ctx: Undo) -> None:
        # Redone once, after the files are back: LiteLLM must re-read its restored config.
        ctx.restart_command = self.command

    def describe(self) -> str:
        return f"restart LiteLLM ({self.command})"


@dataclass
class UnknownAction(Action):
    """An ``op`` this version does not know (a newer installer's): undoes nothing, leaves nothing."""

    op: ClassVar[str] = "unknown"
    raw: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)

    def describe(self) -> str:
        return str(self.raw.get("op"))


KINDS: dict[str, Callable[[dict[str, Any]], Action]] = {
    "mkdir": lambda d: MakeDir(str(d["path"])),
    "create": lambda d: CreateFile(str(d["path"])),
    "overwrite": lambda d: Overwrite(str(d["path"]), str(d["backup"])),
    "venv": lambda d: BuildVenv(str(d["path"]), d.get("previous")),
    "command": lambda d: RunCommand([str(a) for a in d.get("argv") or []],
                                    [str(a) for a in d["undo"]] if d.get("undo") else None,
                                    [str(c) for c in d.get("created") or []]),
    "spawn": lambda d: SpawnProxy(int(d["pid"]), str(d["pidfile"]), [str(c) for c in d.get("created") or []]),
    "litellm_restart": lambda d: RestartLiteLLM(str(d["command"])),
}


def from_json(data: dict[str, Any]) -> Action:
    make = KINDS.get(str(data.get("op")))
    if make is None:
        return UnknownAction(dict(data))
    try:
        return make(data)
    except (KeyError, TypeError, ValueError):
        return UnknownAction(dict(data))


def parse_all(items: Iterable[dict[str, Any]]) -> list[Action]:
    return [from_json(d) for d in items if isinstance(d, dict)]
