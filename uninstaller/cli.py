"""``python uninstall.py``: take the machine back to how it was before Switchyard (issue 5).

Replays the installer's journal (``installer/journal.py`` documents it) in the manner of certbot's
reverter: only what the journal records as Switchyard's is touched.  The plan is shown first, each
step asks before it runs (``--yes`` skips the questions), ``--dry-run`` changes nothing.  One step
failing does not stop the others; the summary lists what was undone, kept and failed (with how to
finish by hand) and the exit status is 1 when anything failed.

Decisions:
- A file we created whose bytes differ from what we wrote is the user's now: asked about
  (default no), kept under ``--yes``, reported either way.
- The LiteLLM YAML is restored from the backup only when it is byte-identical to what we wrote;
  otherwise only our edits are taken out (``uninstaller.yaml_revert``), after showing the diff.
  A LiteLLM config that is gone is not recreated (the backup is named instead).
- What remains afterwards (kept logs and backups, anything kept or failed) stays recorded in a
  reduced journal (status ``uninstalled``), so a second run can say where it is and ``--purge`` can
  still remove it; when nothing remains the journal and the directories we created go too.
- The deployed ``uninstall.py`` (role ``uninstaller``; possibly the script running now, which Linux
  lets us unlink) goes last, without a question of its own: it is kept when any earlier step failed,
  was skipped or was cancelled, so that the user can run it again to finish.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from installer import journal as journal_mod
from installer.litellm_yaml import LiteLLMConfigError, load_yaml_file, render, unified_diff
from installer.plan import colour_diff
from installer.probes import ProbeError, litellm_live
from installer.service_start import ServiceError, restart_waiter
from proxy.host import procs, systemd
from proxy.host.atomic import atomic_write, write_through
from proxy.host.paths import Paths, PathsError
from proxy.host.pidfile import live_pid
from uninstaller.inventory import CreatedFile, Inventory, ModifiedFile, from_state
from uninstaller.yaml_revert import revert_changes

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130
STOP_WAIT_S = 20.0

ROLE_NAMES = {
    "env": "secrets file", "config": "router config", "unit": "systemd unit", "launcher": "launcher",
    "answers": "answers file", "uninstaller": "uninstaller script", "file": "file",
}


class Cancelled(Exception):
    pass


@dataclass
class Report:
    undone: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    changed_anything: bool = False
    # A step was skipped or cancelled: something of Switchyard's is left for a later run.
    incomplete: bool = False


@dataclass
class Step:
    title: str
    question: str
    lines: list[str]
    run: Callable[[], None]
    diffs: list[str] = field(default_factory=list)
    # Asked and run only when this says so at that point (e.g. restart LiteLLM only if its config was written).
    when: Callable[[], bool] = lambda: True


@dataclass
class YamlPlan:
    mod: ModifiedFile
    current_sha: str | None
    new: bytes | None  # None: nothing to write
    how: str
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def diff(self) -> str:
        if self.new is None:
            return ""
        return unified_diff(self.mod.path, self.mod.path.read_bytes(), self.new)


def _exists(p: Path) -> bool:
    return p.exists() or p.is_symlink()


def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o7777


def plan_yaml(mod: ModifiedFile) -> YamlPlan:
    """Decide how to take Switchyard's edits out of one LiteLLM YAML (reads, never writes)."""
    if not mod.path.exists():
        note = f"the pre-Switchyard original is kept at {mod.backup}" if mod.backup else "no backup recorded"
        return YamlPlan(mod, None, None, f"{mod.path} no longer exists; not recreated ({note})")
    cur = journal_mod.sha256_file(mod.path)
    if cur == mod.sha256_before:
        return YamlPlan(mod, cur, None, f"{mod.path} is already as it was before Switchyard")
    backup_ok = mod.backup is not None and journal_mod.sha256_file(mod.backup) == mod.sha256_before
    if cur == mod.sha256_after and mod.restore_exact and backup_ok and mod.backup is not None:
        return YamlPlan(mod, cur, mod.backup.read_bytes(),
                        f"restore {mod.path} byte for byte from the backup {mod.backup} (unchanged since Switchyard)")
    why = "you edited it since Switchyard patched it" if cur != mod.sha256_after else (
        "the backup is missing or altered" if not backup_ok else "it was edited between two installer runs")
    try:
        yf = load_yaml_file(mod.path)
        res = revert_changes(yf, mod.changes)
        new = render(yf) if res.changed else None
    except LiteLLMConfigError as exc:
        return YamlPlan(mod, cur, None, f"take Switchyard's settings out of {mod.path}", error=str(exc))
    except Exception as exc:  # a surprise in ruamel must not stop the other steps
        return YamlPlan(mod, cur, None, f"take Switchyard's settings out of {mod.path}",
                        error=f"{type(exc).__name__}: {exc}")
    notes = [*res.kept, *(f"already gone: {g}" for g in res.already_gone)]
    if new is None or new == mod.path.read_bytes():
        return YamlPlan(mod, cur, None, f"{mod.path}: none of Switchyard's edits remain", notes)
    return YamlPlan(mod, cur, new, f"remove only Switchyard's edits from {mod.path} ({why}; your edits stay)", notes)


def _manual_yaml(mod: ModifiedFile) -> str:
    keys = sorted({str(c.get("key")) for c in mod.changes})
    return (f"remove Switchyard's {', '.join(keys)} settings from {mod.path} by hand"
            + (f" (the pre-Switchyard original is {mod.backup})" if mod.backup else ""))


class Uninstaller:
    def __init__(self, paths: Paths, state: dict[str, Any], *, yes: bool, dry_run: bool, purge: bool,
                 color: bool | None) -> None:
        self.paths = paths
        self.state = state
        self.inv: Inventory = from_state(state, paths.backups_dir)
        self.yes = yes
        self.dry_run = dry_run
        self.purge = purge
        self.color = color
        self.report = Report()
        self.manager = systemd.user_manager_answers() if self.inv.systemd_unit else False
        self.yaml_plans = [plan_yaml(m) for m in self.inv.modified]
        self.yaml_written = False
        self.yaml_done: set[str] = set()
        self.service_ok = False

    # ---- output ---------------------------------------------------------------------------------
    def say(self, text: str = "", **style: Any) -> None:
        click.echo(click.style(text, **style) if style else text, color=self.color)

    def confirm(self, question: str, default: bool = True) -> bool:
        if self.yes:
            return True
        try:
            return click.confirm(question, default=default)
        except (click.Abort, EOFError, KeyboardInterrupt):
            raise Cancelled() from None

    def ask_delete_changed(self, f: CreatedFile) -> bool:
        """A file of ours the user has changed: delete only if they say so (never under --yes)."""
        if self.yes or self.dry_run:
            return False
        try:
            return click.confirm(f"{f.path} was changed since Switchyard wrote it. Delete it anyway?", default=False)
        except (click.Abort, EOFError, KeyboardInterrupt):
            raise Cancelled() from None

    # ---- the steps ------------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        return [s for s in (
            self.service_step(), *self.yaml_steps(), self.restart_step(), self.unit_step(), self.files_step(),
            # The venv and then the deployed uninstall.py last: this very uninstaller may be running from them.
            self.purge_step(), self.venv_step(), self.script_step(),
        ) if s is not None]

    def _live(self) -> list[tuple[Path, int]]:
        found = []
        for pf in self.inv.pidfiles:
            pid = live_pid(pf)
            if pid is not None:
                found.append((pf, pid))
        return found

    def service_step(self) -> Step | None:
        lines: list[str] = []
        unit = self.inv.systemd_unit
        if unit and self.manager:
            lines.append(f"systemctl --user disable --now {unit}")
        elif unit:
            lines.append(f"(no systemd user manager answers here: {unit} cannot be disabled now)")
        live = self._live()
        for pf, pid in live:
            lines.append(f"stop the Switchyard proxy running in the background (PID {pid}, pidfile {pf})")
        if not (unit and self.manager) and not live:
            self.service_ok = True
            if unit:
                self.report.kept.append(f"{unit}: no systemd user manager answers here; if it is enabled on another "
                                        f"session, run `systemctl --user disable --now {unit}`")
            return None
        return Step("Service", "Stop and disable the Switchyard service?", lines, self.stop_service)

    def stop_service(self) -> None:
        ok = True
        unit = self.inv.systemd_unit
        if unit and self.manager:
            argv = ["systemctl", "--user", "disable", "--now", unit]
            proc = _run(argv)
            if proc is not None and proc.returncode == 0:
                self.report.undone.append(f"stopped and disabled {unit}")
            else:
                # The unit file may already be gone by hand: a loaded unit can still be stopped.
                stop = _run(["systemctl", "--user", "stop", unit])
                if stop is not None and stop.returncode == 0 and not self._unit_present():
                    self.report.undone.append(f"stopped {unit} (its unit file was already gone)")
                else:
                    ok = False
                    err = (proc.stderr.strip() if proc is not None else "systemctl did not run")[:200]
                    self.report.failed.append(f"could not disable {unit} ({err}); finish by hand: "
                                              f"systemctl --user disable --now {unit}")
        for pf, pid in self._live():
            if procs.stop(pid, STOP_WAIT_S).ok:
                self.report.undone.append(f"stopped the Switchyard proxy (PID {pid})")
            else:
                ok = False
                self.report.failed.append(f"the Switchyard proxy (PID {pid}) did not stop; finish by hand: "
                                          f"kill {pid} && rm -f {pf}")
        self.service_ok = ok

    def _unit_present(self) -> bool:
        return any(_exists(p) for p in self.inv.unit_files)

    def yaml_steps(self) -> list[Step]:
        steps = []
        for yp in self.yaml_plans:
            if yp.error:
                steps.append(Step("LiteLLM config", "", [f"{yp.how}: cannot ({yp.error})"],
                                  functools.partial(self.yaml_failed, yp)))
                continue
            for n in yp.notes:
                self.report.kept.append(f"{yp.mod.path}: {n}")
            if yp.new is None:
                self.yaml_done.add(str(yp.mod.path))
                if not yp.mod.path.exists():
                    self.report.kept.append(yp.how)
                continue
            steps.append(Step("LiteLLM config", f"Write {yp.mod.path} as shown?", [yp.how],
                              functools.partial(self.write_yaml, yp), diffs=[yp.diff]))
        return steps

    def yaml_failed(self, yp: YamlPlan) -> None:
        self.report.failed.append(f"{yp.mod.path}: {yp.error}; finish by hand: {_manual_yaml(yp.mod)}")

    def write_yaml(self, yp: YamlPlan) -> None:
        assert yp.new is not None
        path = yp.mod.path
        if journal_mod.sha256_file(path) != yp.current_sha:
            self.report.failed.append(f"{path} changed while the uninstaller ran; run it again")
            return
        try:
            # Through a symlink (a dotfiles checkout, say): replace the file it points to, keep the link.
            write_through(path, yp.new)
        except OSError as exc:
            self.report.failed.append(
                f"could not write {path} ({exc.strerror}); finish by hand: {_manual_yaml(yp.mod)}")
            return
        self.yaml_written = True
        self.yaml_done.add(str(path))
        what = "restored from the backup" if yp.how.startswith("restore") else "Switchyard's edits removed, yours kept"
        self.report.undone.append(f"{path}: {what}")

    def restart_step(self) -> Step | None:
        if not any(yp.new is not None for yp in self.yaml_plans):
            return None
        cmd, url = self.inv.litellm_restart, self.inv.litellm_url
        if not cmd:
            self.report.kept.append("LiteLLM still runs with Switchyard's drop settings in memory: restart it yourself "
                                    "(the installer was told you restart it)")
            return None
        return Step("LiteLLM restart", f"Restart LiteLLM with `{cmd}`?",
                    [f"run `{cmd}`, then check {url}/health/liveliness"], self.restart_litellm,
                    when=lambda: self.yaml_written)

    def restart_litellm(self) -> None:
        cmd, url = self.inv.litellm_restart, (self.inv.litellm_url or "").rstrip("/")
        assert cmd is not None
        try:
            restart_waiter(url)(cmd)
            litellm_live(url)
        except (ServiceError, ProbeError, OSError, subprocess.SubprocessError) as exc:
            self.report.failed.append(f"LiteLLM restart: {exc}; finish by hand: run `{cmd}` and check "
                                      f"{url}/health/liveliness")
            return
        self.report.undone.append(f"restarted LiteLLM (`{cmd}`); {url}/health/liveliness answers")

    def _files_plan(self, files: list[CreatedFile]) -> tuple[list[str], list[CreatedFile]]:
        lines: list[str] = []
        todo: list[CreatedFile] = []
        for f in files:
            name = ROLE_NAMES.get(f.role, f.role)
            if not _exists(f.path):
                self.report.kept.append(f"{name} {f.path}: already gone")
                continue
            todo.append(f)
            if f.sha256 is not None and journal_mod.sha256_file(f.path) != f.sha256:
                lines.append(f"{name} {f.path}: CHANGED since Switchyard wrote it "
                             f"({'kept' if self.yes else 'you will be asked'})")
            else:
                lines.append(f"remove the {name} {f.path}")
        return lines, todo

    def remove_files(self, files: list[CreatedFile]) -> None:
        for f in files:
            name = ROLE_NAMES.get(f.role, f.role)
            try:
                if f.sha256 is not None and journal_mod.sha256_file(f.path) != f.sha256 \
                        and not self.ask_delete_changed(f):
                    self.report.kept.append(f"{name} {f.path}: changed since Switchyard wrote it, so kept; "
                                            f"delete it by hand if you do not need it: rm {f.path}")
                    continue
                f.path.unlink()
                self.report.undone.append(f"removed the {name} {f.path}")
            except FileNotFoundError:
                self.report.kept.append(f"{name} {f.path}: already gone")
            except OSError as exc:
                self.report.failed.append(f"could not remove {f.path} ({exc.strerror}); finish by hand: rm {f.path}")

    def unit_step(self) -> Step | None:
        units = self.inv.file("unit")
        lines, todo = self._files_plan(units)
        if not todo:
            return None
        if self.manager:
            lines.append("systemctl --user daemon-reload")

        def run() -> None:
            self.remove_files(todo)
            if self.manager:
                proc = _run(["systemctl", "--user", "daemon-reload"])
                if proc is None or proc.returncode != 0:
                    self.report.failed.append("systemctl --user daemon-reload failed; finish by hand: "
                                              "systemctl --user daemon-reload")
                else:
                    self.report.undone.append("reloaded the systemd user manager")

        return Step("Systemd unit", "Remove the systemd unit?", lines, run)

    def files_step(self) -> Step | None:
        files = [f for f in self.inv.created if f.role not in ("unit", "uninstaller")]
        lines, todo = self._files_plan(files)
        stale = [pf for pf in self.inv.pidfiles if _exists(pf)]
        lines += [f"remove the pidfile {pf}" for pf in stale]
        if not todo and not stale:
            return None

        def run() -> None:
            self.remove_files(todo)
            for pf in stale:
                pid = live_pid(pf)
                if pid is not None:
                    self.report.failed.append(f"pidfile {pf}: the proxy (PID {pid}) still runs; finish by hand: "
                                              f"kill {pid} && rm -f {pf}")
                    continue
                try:
                    pf.unlink()
                except FileNotFoundError:
                    continue  # the stopped proxy removed its own
                except OSError as exc:
                    self.report.failed.append(f"could not remove {pf} ({exc.strerror}); finish by hand: rm -f {pf}")
                    continue
                self.report.undone.append(f"removed the pidfile {pf}")

        return Step("Files", "Remove the launcher, router config, secrets file and answers file?", lines, run)

    def venv_step(self) -> Step | None:
        venvs = [v for v in self.inv.venvs if _exists(v)]
        if not venvs:
            return None

        def run() -> None:
            for v in venvs:
                try:
                    # Safe even when this uninstaller runs from that venv: every module is imported.
                    shutil.rmtree(v)
                    self.report.undone.append(f"removed the virtual environment {v}")
                except OSError as exc:
                    self.report.failed.append(f"could not remove {v} ({exc.strerror}); finish by hand: rm -rf {v}")

        return Step("Virtual environment", "Remove the proxy's virtual environment?",
                    [f"remove the virtual environment {v}" for v in venvs], run)

    def script_step(self) -> Step | None:
        lines, todo = self._files_plan(self.inv.file("uninstaller"))
        if not todo:
            return None
        lines = [f"{line} (last; kept if any step above fails or is skipped, to run it again)" for line in lines]

        def run() -> None:
            if self.report.failed or self.report.incomplete:
                for f in todo:
                    self.report.kept.append(f"uninstaller script {f.path}: kept because not everything was undone; "
                                            f"run it again to finish: python3 {f.path}")
                return
            self.remove_files(todo)

        # No question of its own: whether everything else went is what decides.
        return Step("Uninstaller script", "", lines, run)

    def _kept_data(self) -> tuple[list[Path], list[Path]]:
        logs = [x for log in self.inv.logs for x in _with_rotations(log)]
        backups = [b for b in self.inv.backups if _exists(b)]
        return logs, backups

    def purge_step(self) -> Step | None:
        logs, backups = self._kept_data()
        if not self.purge or not (logs or backups):
            return None
        targets = logs + backups

        def run() -> None:
            for t in targets:
                try:
                    if t.is_dir() and not t.is_symlink():
                        shutil.rmtree(t)
                    else:
                        t.unlink()
                    self.report.undone.append(f"removed {t}")
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    self.report.failed.append(f"could not remove {t} ({exc.strerror}); finish by hand: rm -rf {t}")

        return Step("Logs and backups (--purge)", "Remove the logs and the backups too?",
                    [f"remove {t}" for t in targets], run)

    # ---- the end ----------------------------------------------------------------------------------
    def residual(self) -> dict[str, Any]:
        st = copy.deepcopy(self.state)
        created = {p: r for p, r in (st.get("files_created") or {}).items() if _exists(Path(p))}
        for f in self.inv.created:
            if f.sha256 is None and _exists(f.path):
                created[str(f.path)] = {"sha256": None, "mode": None, "step": "interrupted", "role": f.role}
        st["files_created"] = created
        st["files_modified"] = {p: r for p, r in (st.get("files_modified") or {}).items() if p not in self.yaml_done}
        st["logs"] = [str(x) for x in self.inv.logs if _exists(x)]
        venv = st.get("venv")
        if isinstance(venv, dict) and not _exists(Path(str(venv.get("path")))):
            st["venv"] = None
        if self.service_ok and not self._unit_present():
            st["service"] = None
        if not st["files_modified"]:
            st["litellm"] = None
        st["dirs_created"] = [d for d in st.get("dirs_created") or [] if Path(d).is_dir()]
        for run in st.get("runs") or []:
            if run.get("status") == "running":
                run["status"] = "failed"
        st["status"] = "uninstalled"
        return st

    @staticmethod
    def _holds_something(st: dict[str, Any], backups: list[Path]) -> bool:
        return bool(st["files_created"] or st["files_modified"] or st["logs"] or st.get("venv")
                    or st.get("service") or backups)

    def finish(self) -> None:
        """Rewrite the journal to what remains, or remove it; then the empty directories we made."""
        st = self.residual()
        _logs, backups = self._kept_data()
        journal = self.paths.journal_file
        keep_journal = self._holds_something(st, backups)
        try:
            if keep_journal:
                atomic_write(journal, (json.dumps(st, indent=2) + "\n").encode(), 0o600)
            else:
                with contextlib.suppress(FileNotFoundError):
                    journal.unlink()
        except OSError as exc:
            self.report.failed.append(f"could not update the journal {journal} ({exc.strerror})")
        removed = []
        for d in sorted(self.inv.dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
                removed.append(d)
        if removed:
            self.report.undone.append(f"removed {len(removed)} empty director{'y' if len(removed) == 1 else 'ies'} "
                                      "Switchyard had created")
        if keep_journal and removed:
            st["dirs_created"] = [d for d in st["dirs_created"] if Path(d).is_dir()]
            with contextlib.suppress(OSError):
                atomic_write(journal, (json.dumps(st, indent=2) + "\n").encode(), 0o600)

    def kept_data_lines(self) -> list[str]:
        logs, backups = self._kept_data()
        out = []
        if logs:
            out.append("logs kept (delete with --purge): " + ", ".join(str(x) for x in logs))
        if backups:
            out.append(f"backups kept under {self.paths.backups_dir} (delete with --purge): "
                       + ", ".join(str(b) for b in backups))
        if logs or backups:
            out.append(f"the journal {self.paths.journal_file} keeps track of them")
        return out


def _with_rotations(log: Path) -> list[Path]:
    out = [log] if _exists(log) else []
    if log.parent.is_dir():
        out += sorted(p for p in log.parent.glob(f"{log.name}.*") if p.name[len(log.name) + 1:].isdigit())
    return out


def _run(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=90)
    except (OSError, subprocess.SubprocessError):
        return None


def _summary(u: Uninstaller) -> None:
    r = u.report
    u.say("")
    u.say("Summary", bold=True)
    for title, items, colour in (("undone", r.undone, "green"), ("kept", r.kept, "yellow"),
                                 ("FAILED", r.failed, "red")):
        if items:
            u.say(f"  {title}:", fg=colour)
            for it in items:
                u.say(f"    - {it}")
    for line in u.kept_data_lines():
        u.say(f"  {line}")
    if r.failed:
        u.say("Some steps failed; finish them by hand as shown above, or fix the cause and run uninstall.py again.",
              fg="red")
    else:
        u.say("Switchyard is uninstalled.", bold=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--yes", "-y", is_flag=True, help="Do not ask before each step.")
@click.option("--dry-run", is_flag=True, help="Show what would be undone; change nothing.")
@click.option("--purge", is_flag=True, help="Also remove the decision log, the proxy log and the backups.")
@click.option("--color/--no-color", default=None, help="Colour the output (default: when a terminal).")
def main(yes: bool, dry_run: bool, purge: bool, color: bool | None) -> None:
    """Undo exactly what Switchyard's installer did, keeping everything you did since."""
    def err(text: str) -> None:
        click.echo(click.style(f"uninstall: {text}", fg="red"), err=True, color=color)

    try:
        paths = Paths.from_env()
    except PathsError as exc:
        err(str(exc).replace("installer", "uninstaller"))
        raise SystemExit(EXIT_USAGE) from None
    try:
        state = journal_mod.load(paths.journal_file)
    except (journal_mod.JournalError, ValueError, OSError) as exc:
        err(f"cannot read the journal {paths.journal_file}: {exc}; nothing was changed")
        raise SystemExit(EXIT_USAGE) from None
    if state is None:
        click.echo(f"No Switchyard journal at {paths.journal_file}: nothing of Switchyard's found, nothing to undo.")
        return
    u = Uninstaller(paths, state, yes=yes, dry_run=dry_run, purge=purge, color=color)
    steps = u.steps()
    leftover_dirs = [d for d in u.inv.dirs if d.is_dir() and not any(d.iterdir())]
    if not steps:
        if not dry_run and (leftover_dirs or not u._holds_something(u.residual(), u._kept_data()[1])):
            u.finish()  # only an empty journal or empty directories of ours were left: tidy them
        u.say("Nothing to undo: Switchyard is not installed here.", bold=True)
        for line in [*u.report.kept, *u.kept_data_lines()]:
            u.say(f"  {line}")
        return

    u.say("Plan", bold=True)
    if u.inv.interrupted:
        u.say("  the last install was interrupted; undoing everything its journal recorded", fg="yellow")
    for s in steps:
        u.say(f"  {s.title}:")
        for line in s.lines:
            u.say(f"    - {line}")
        for d in s.diffs:
            click.echo(colour_diff(d), nl=False, color=color)
    u.say("  then remove the empty directories Switchyard created")
    if u.report.kept:
        u.say("  left alone:")
        for line in u.report.kept:
            u.say(f"    - {line}")
    for line in u.kept_data_lines() if not purge else []:
        u.say(f"  {line}")
    if dry_run:
        u.say("")
        u.say("Dry run: nothing was changed.", bold=True)
        return

    cancelled = False
    for s in steps:
        if cancelled:
            u.report.kept.append(f"{s.title}: not done (cancelled)")
            u.report.incomplete = True
            continue
        if not s.when():
            continue
        try:
            if s.question and not u.confirm(s.question):
                u.report.kept.append(f"{s.title}: skipped at your request ({'; '.join(s.lines)})")
                u.report.incomplete = True
                continue
            s.run()
        except (Cancelled, KeyboardInterrupt):
            cancelled = True
            u.report.kept.append(f"{s.title}: not done (cancelled)")
            u.report.incomplete = True
        except Exception as exc:  # one step failing must not stop the others
            u.report.failed.append(f"{s.title}: {type(exc).__name__}: {exc}")
    u.finish()
    _summary(u)
    if u.report.failed:
        raise SystemExit(EXIT_FAILED)
    if cancelled:
        raise SystemExit(EXIT_CANCELLED)


def run() -> None:
    main(prog_name="uninstall.py")


if __name__ == "__main__":  # pragma: no cover
    run()
