"""What the journal says is Switchyard's, gathered into one place (read-only).

The cumulative state at the top of the journal is the main source; an interrupted run (status
``running``, e.g. after SIGKILL) may also have done things the cumulative state does not mention
yet (a file created but killed before it was recorded as ours, a venv being built, a proxy just
spawned), so the actions of such runs are read too.  Nothing outside the journal is ever listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer.journal_actions import parse_all
from proxy.host.paths import UNIT_NAME


@dataclass
class CreatedFile:
    path: Path
    role: str
    # None when an interrupted run created it but was killed before recording its hash.
    sha256: str | None


@dataclass
class ModifiedFile:
    path: Path
    backup: Path | None
    sha256_before: str
    sha256_after: str
    restore_exact: bool
    changes: list[dict[str, Any]]


@dataclass
class Inventory:
    status: str
    interrupted: bool
    created: list[CreatedFile] = field(default_factory=list)
    modified: list[ModifiedFile] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    backups: list[Path] = field(default_factory=list)
    venvs: list[Path] = field(default_factory=list)
    pidfiles: list[Path] = field(default_factory=list)
    systemd_unit: str | None = None
    systemd_undo: list[list[str]] = field(default_factory=list)
    unit_files: list[Path] = field(default_factory=list)
    litellm_url: str | None = None
    litellm_restart: str | None = None

    def file(self, role: str) -> list[CreatedFile]:
        return [f for f in self.created if f.role == role]


def _add(seq: list[Path], p: str | None) -> None:
    if p and Path(p) not in seq:
        seq.append(Path(p))


def from_state(state: dict[str, Any], backups_root: Path) -> Inventory:
    runs: list[dict[str, Any]] = list(state.get("runs") or [])
    interrupted = [r for r in runs if r.get("status") == "running"]
    inv = Inventory(status=str(state.get("status", "")), interrupted=bool(interrupted))

    for path, rec in (state.get("files_created") or {}).items():
        inv.created.append(CreatedFile(Path(path), str(rec.get("role", "file")), rec.get("sha256")))
    for path, rec in (state.get("files_modified") or {}).items():
        inv.modified.append(ModifiedFile(
            path=Path(path),
            backup=Path(rec["backup"]) if rec.get("backup") else None,
            sha256_before=str(rec.get("sha256_before", "")),
            sha256_after=str(rec.get("sha256_after", "")),
            restore_exact=bool(rec.get("restore_exact", False)),
            changes=list(rec.get("yaml_changes") or []),
        ))
        _add(inv.backups, rec.get("backup"))
    for d in state.get("dirs_created") or []:
        _add(inv.dirs, d)
    for log in state.get("logs") or []:
        _add(inv.logs, log)
    venv = state.get("venv")
    if isinstance(venv, dict):
        _add(inv.venvs, venv.get("path"))
    svc = state.get("service")
    if isinstance(svc, dict):
        _add(inv.pidfiles, svc.get("pidfile"))
        _add(inv.unit_files, svc.get("unit_file"))
        if svc.get("manager") == "systemd":
            inv.systemd_unit = str(svc.get("unit_name") or UNIT_NAME)
            inv.systemd_undo = [list(map(str, a)) for a in svc.get("undo") or [] if a and a[0] == "systemctl"]
    lit = state.get("litellm")
    if isinstance(lit, dict):
        inv.litellm_url = lit.get("url")
        inv.litellm_restart = lit.get("restart_command") or None

    known = {str(f.path) for f in inv.created} | {str(m.path) for m in inv.modified} | {str(x) for x in inv.logs}
    traces = _Traces(inv, known)
    for run in runs:
        unfinished = run.get("status") == "running"
        # In reverse, as a rollback walks them: each action says what it may have left.
        for action in reversed(parse_all(run.get("actions") or [])):
            action.trace(traces, backups_root, unfinished)
    for f in inv.created:
        if f.role == "unit":
            _add(inv.unit_files, str(f.path))
    return inv


class _Traces:
    """Collects what the journal's actions say they left (see installer.journal_actions.Traces)."""

    def __init__(self, inv: Inventory, known: set[str]) -> None:
        self.inv = inv
        self.known = known

    def created_file(self, path: Path) -> None:
        # Created by an interrupted run, maybe killed before it was recorded as ours (no hash).
        if str(path) not in self.known:
            self.inv.created.append(CreatedFile(path, "file", None))
            self.known.add(str(path))

    def created_dir(self, path: Path) -> None:
        _add(self.inv.dirs, str(path))

    def backup(self, path: Path) -> None:
        _add(self.inv.backups, str(path))

    def venv(self, path: Path) -> None:
        _add(self.inv.venvs, str(path))

    def pidfile(self, path: Path) -> None:
        _add(self.inv.pidfiles, str(path))

    def log(self, path: Path) -> None:
        _add(self.inv.logs, str(path))

    def systemd_undo(self, argv: list[str]) -> None:
        self.inv.systemd_unit = self.inv.systemd_unit or UNIT_NAME
        if argv and argv not in self.inv.systemd_undo:
            self.inv.systemd_undo.append(argv)
