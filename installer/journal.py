"""The install journal: what Switchyard did to this machine, for rollback and for ``uninstall.py``.

Modelled on certbot's reverter: back up before writing, record every file created, every backup and
every undo command, and persist the journal atomically (temp file + ``rename``) after each change so
that an interrupted install (even SIGKILL) leaves a valid, partial journal behind.

Location: ``$XDG_STATE_HOME/switchyard/journal.json`` (``installer.paths.Paths.journal_file``).
Backups live under ``$XDG_STATE_HOME/switchyard/backups/``.

Format (JSON object, UTF-8, ``format == "switchyard-journal"``, ``version == 1``)::

    {
      "format": "switchyard-journal",
      "version": 1,
      "updated_at": "2026-11-23T05:40:00Z",
      "status": "installing" | "installed" | "rolled-back",

      # Cumulative state: everything Switchyard currently owns.  This is what the uninstaller reads.
      "dirs_created": ["/abs/dir", ...],          # in creation order; each did not exist before us.
                                                   # Remove (deepest first) only if empty.
      "files_created": {                           # files that did not exist before Switchyard
        "/abs/path": {"sha256": "<hex of the bytes we last wrote>", "mode": "0600", "step": "secrets",
                       "role": "env" | "config" | "unit" | "launcher" | "answers"
                               | "uninstaller"}     # the deployed uninstall.py (beside the venv)
      },
      "logs": ["/abs/proxy.log", "/abs/decisions.jsonl"],   # written by the proxy; kept unless --purge
      "files_modified": {                          # pre-existing user files we edited (the LiteLLM YAML
        "/abs/litellm.yaml": {                     # and any file it includes)
          "backup": "/abs/backups/<stamp>/litellm.yaml",  # byte-identical copy of the PRE-SWITCHYARD file;
                                                   # never replaced by a later run
          "sha256_before": "<hex of that original>",
          "sha256_after": "<hex of the file after our last write>",
          # true when restoring the backup gives back exactly the user's file: false once the user
          # edited the file between two installer runs (then remove only our changes, below).
          "restore_exact": true,
          "step": "litellm_yaml",
          # Every edit we made, cumulative over runs (see litellm_yaml.YamlChange.to_json):
          #   {"file": path, "locator": {"section": "model_list", "index": 0, "model_name": "m",
          #                               "litellm_model": "openai/x"}
          #              or {"section": "litellm_settings"} or {"section": "/"} (top level),
          #    "key": "drop_params" | "additional_drop_params" | "litellm_settings",
          #    "action": "added"      -> "value": what we wrote (remove the key),
          #              "replaced"   -> "old", "new"  (put "old" back),
          #              "extended"   -> "added_items": [...] (remove those items from the list),
          #              "section_added" -> "value": {...} (remove the whole top-level key)}
          "yaml_changes": [...]
        }
      },
      "venv": {"path": "/abs/venv", "python": "/abs/venv/bin/python", "mode": "pip" | "inherit"} | null,
      "service": {                                 # null until the service step ran
        "manager": "systemd" | "background",
        "unit_name": "switchyard.service", "unit_file": "/abs/...service",
        "enabled": bool, "started": bool, "pidfile": "/abs/switchyard.pid",
        "undo": [["systemctl", "--user", "disable", "--now", "switchyard.service"], ...]   # argv lists
        # For "background" the undo is ["kill", "-TERM", PID] as started; PIDs are reused after a
        # reboot, so an uninstaller should rather stop the PID in "pidfile" only when
        # proxy.pidfile.live_pid() confirms it is a Switchyard proxy.
      } | null,
      "litellm": {"config": "/abs/litellm.yaml", "url": "http://127.0.0.1:4000",
                  "restart_command": "docker restart litellm" | null} | null,

      # History, for rollback of the run in progress and for humans.
      "runs": [{"started_at": ..., "finished_at": ... | null,
                "status": "running" | "complete" | "rolled-back" | "failed",
                "actions": [ ... ]}]            # see below, in execution order
    }

Run actions (the rollback log of one run; undone in reverse order on failure or SIGTERM).  Each
kind is a class in :mod:`installer.journal_actions` that records, undoes and traces itself::

    {"op": "mkdir", "path": p}                                # created a directory
    {"op": "create", "path": p}                               # created a file that did not exist
    {"op": "overwrite", "path": p, "backup": b}               # replaced a file; b holds its previous bytes
    {"op": "venv", "path": p, "previous": b | null}           # built a venv; the old one was moved to b
    {"op": "command", "argv": [...], "undo": [...] | null}    # ran a command; undo argv if any
    {"op": "spawn", "pid": n, "pidfile": p, "created": [...]}  # started the proxy in the background;
                                                              # "created": logs it may create, new this run
    {"op": "litellm_restart", "command": str}                 # restarted LiteLLM (redo after restoring)

An uninstaller should ignore ``runs`` except to notice ``status == "running"`` (an interrupted run:
the cumulative state above is still accurate, because each entry is written right after its change).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from installer.journal_actions import Action, CreateFile, MakeDir, Overwrite
from proxy.host.atomic import atomic_write, write_through

FORMAT = "switchyard-journal"
VERSION = 1


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str | None:
    try:
        return sha256_bytes(path.read_bytes())
    except OSError:
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def empty_state() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "updated_at": now_iso(),
        "status": "installing",
        "dirs_created": [],
        "files_created": {},
        "logs": [],
        "files_modified": {},
        "venv": None,
        "service": None,
        "litellm": None,
        "runs": [],
    }


class JournalError(Exception):
    pass


def load(path: Path) -> dict[str, Any] | None:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise JournalError(f"{path} is not a Switchyard journal; move it away and retry")
    return data


class Journal:
    """The cumulative state plus the current run's action log, persisted after every change.

    The journal file itself (and the state directory) may not exist before the first install: they
    are part of what a rollback removes, so a failed first install leaves the tree as it was.
    """

    def __init__(self, path: Path, backups_root: Path, *, persist: bool = True) -> None:
        self.path = path
        self.backups_root = backups_root
        self.persist = persist
        existing = load(path)
        self.existed = existing is not None
        self._before_text: bytes | None = path.read_bytes() if existing is not None else None
        self.state: dict[str, Any] = existing if existing is not None else empty_state()
        # What the state looked like before this run: a rollback puts it back.
        self._state_before = copy.deepcopy(self.state)
        self.run: dict[str, Any] = {"started_at": now_iso(), "finished_at": None, "status": "running", "actions": []}
        self.state["runs"].append(self.run)
        self._stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self._actions: list[Action] = []
        # The directories made to hold the journal itself: a rollback removes them after the journal.
        self.journal_dirs: list[Path] = []

    # --- persistence ----------------------------------------------------------------------------
    def save(self) -> None:
        if not self.persist:
            return
        self.state["updated_at"] = now_iso()
        if not self.path.parent.exists():
            self.journal_dirs.extend(_missing_parents(self.path.parent))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for d in self.journal_dirs:
                self._note_dir(d)
        atomic_write(self.path, (json.dumps(self.state, indent=2, sort_keys=False) + "\n").encode(), 0o600)

    def _note_dir(self, d: Path) -> None:
        s = str(d)
        if s not in self.state["dirs_created"]:
            self.state["dirs_created"].append(s)

    # --- recording --------------------------------------------------------------------------------
    def record(self, action: Action) -> None:
        """Journal one change, right after it was made (persisted at once: SIGKILL leaves it recorded)."""
        self._actions.append(action)
        self.run["actions"].append(action.to_json())
        self.save()

    @property
    def actions(self) -> list[Action]:
        """This run's actions, in the order they were made."""
        return list(self._actions)

    def backup_dir(self) -> Path:
        return self.backups_root / self._stamp

    def make_dirs(self, d: Path) -> None:
        """mkdir -p, journaling each directory we create."""
        for p in _missing_parents(d):
            p.mkdir()
            self._note_dir(p)
            self.record(MakeDir(str(p)))

    def backup(self, path: Path, name: str | None = None) -> Path:
        """Byte-identical copy of ``path`` under this run's backup directory."""
        dest_dir = self.backup_dir()
        self.make_dirs(dest_dir)
        dest = dest_dir / (name or path.name)
        n = 1
        while dest.exists():
            dest = dest_dir / f"{name or path.name}.{n}"
            n += 1
        shutil.copy2(path, dest)
        self.record(CreateFile(str(dest)))
        return dest

    def write_file(self, path: Path, data: bytes, mode: int, *, step: str, role: str) -> bool:
        """Create or update one of Switchyard's own files.  False when it already had these bytes."""
        current = path.read_bytes() if path.exists() else None
        if current == data and path.exists() and (path.stat().st_mode & 0o777) == mode:
            self._own(path, data, mode, step, role)
            return False
        self.make_dirs(path.parent)
        if current is None:
            self.record(CreateFile(str(path)))
        else:
            saved = self.backup(path, f"{path.name}.{role}.prev")
            self.record(Overwrite(str(path), str(saved)))
        atomic_write(path, data, mode)
        self._own(path, data, mode, step, role)
        self.save()
        return True

    def _own(self, path: Path, data: bytes, mode: int, step: str, role: str) -> None:
        created = self.state["files_created"]
        if str(path) in created or str(path) not in self.state["files_modified"]:
            created[str(path)] = {"sha256": sha256_bytes(data), "mode": f"{mode:04o}", "step": step, "role": role}

    def patch_user_file(self, path: Path, data: bytes, changes: list[dict[str, Any]], *, step: str) -> None:
        """Atomically replace a user's file (the LiteLLM YAML), keeping the pre-Switchyard original.

        ``path`` is the file as the user named it (a symlink stays a symlink: the write goes to its
        target, see :func:`write_through`); the journal records that path, not the resolved one.
        """
        before = path.read_bytes()
        record = self.state["files_modified"].get(str(path))
        run_backup = self.backup(path, f"{path.name}.prev")
        if record is None:
            # First time: this run's backup *is* the pre-Switchyard original.
            record = {
                "backup": str(run_backup),
                "sha256_before": sha256_bytes(before),
                "sha256_after": "",
                "restore_exact": True,
                "step": step,
                "yaml_changes": [],
            }
            self.state["files_modified"][str(path)] = record
        elif record.get("sha256_after") != sha256_bytes(before):
            # The user edited it since our last write: restoring the original would lose that edit.
            record["restore_exact"] = False
        self.record(Overwrite(str(path), str(run_backup)))
        write_through(path, data)
        record["sha256_after"] = sha256_bytes(data)
        record["yaml_changes"].extend(changes)
        self.save()

    def note_log(self, path: Path) -> None:
        if str(path) not in self.state["logs"]:
            self.state["logs"].append(str(path))
            self.save()

    def set(self, key: str, value: Any) -> None:
        self.state[key] = value
        self.save()

    # --- ending -----------------------------------------------------------------------------------
    def finish(self, status: str) -> None:
        self.run["status"] = status
        self.run["finished_at"] = now_iso()
        self.state["status"] = "installed" if status == "complete" else self.state["status"]
        self.save()
        if status == "complete":
            self._drop_run_backups()

    def _drop_run_backups(self) -> None:
        """Per-run safety copies of our own files are useless once the run succeeded."""
        keep = {rec["backup"] for rec in self.state["files_modified"].values()}
        d = self.backup_dir()
        if not d.exists():
            return
        for action in self._actions:
            if isinstance(action, Overwrite) and action.backup not in keep:
                with contextlib.suppress(OSError):
                    Path(action.backup).unlink()
        for child in list(d.iterdir()):
            if str(child) not in keep and child.name.endswith(".prev") and child.is_file():
                with contextlib.suppress(OSError):
                    child.unlink()
        if not any(d.iterdir()):
            d.rmdir()
            with contextlib.suppress(ValueError):
                self.state["dirs_created"].remove(str(d))
        self.save()

    def restore_previous(self) -> None:
        """After a rollback: the journal goes back to its pre-run contents (or away entirely)."""
        if not self.persist:
            return
        if self._before_text is not None:
            atomic_write(self.path, self._before_text, 0o600)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.state = copy.deepcopy(self._state_before)


def _missing_parents(d: Path) -> list[Path]:
    """The directories ``mkdir -p d`` would create, outermost first."""
    out: list[Path] = []
    p = d
    while not p.exists():
        out.append(p)
        if p.parent == p:
            break
        p = p.parent
    return list(reversed(out))
