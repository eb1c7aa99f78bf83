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


def _under(path: str, root: Path) -> bool:
    return Path(path) == root or root in Path(path).parents


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
    for run in runs:
        for action in run.get("actions") or []:
            op = action.get("op")
            # Backups (and venvs moved aside) live under the backups root, whatever run made them.
            if op == "create" and _under(action["path"], backups_root):
                _add(inv.backups, action["path"])
            elif op == "overwrite" and action.get("backup"):
                _add(inv.backups, action["backup"])
            elif op == "venv" and action.get("previous"):
                _add(inv.venvs, action["previous"])
            if run.get("status") != "running":
                continue
            # The interrupted run: what it did may not be in the cumulative state yet.
            if op == "create" and not _under(action["path"], backups_root) and action["path"] not in known:
                inv.created.append(CreatedFile(Path(action["path"]), "file", None))
                known.add(action["path"])
            elif op == "mkdir":
                _add(inv.dirs, action["path"])
            elif op == "venv":
                _add(inv.venvs, action["path"])
            elif op == "spawn":
                _add(inv.pidfiles, action.get("pidfile"))
                for c in action.get("created") or []:
                    _add(inv.logs, c)
            elif op == "command":
                argv = [str(a) for a in action.get("argv") or []]
                undo = [str(a) for a in action.get("undo") or []]
                if argv[:1] == ["systemctl"]:
                    inv.systemd_unit = inv.systemd_unit or UNIT_NAME
                    if undo and undo not in inv.systemd_undo:
                        inv.systemd_undo.append(undo)
    for f in inv.created:
        if f.role == "unit":
            _add(inv.unit_files, str(f.path))
    return inv
