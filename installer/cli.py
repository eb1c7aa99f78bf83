"""``python -m installer``: the guided installer (issue 4).

One :class:`Installer` object per run (copier-style): its fields mirror the CLI flags.  The run is
ask -> resolve (read-only probes) -> plan (render everything in memory, compare with disk) -> show
-> apply only what changed, step by step, journaled, rolled back on any failure or SIGTERM.

Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT while applying roll back; while rolling back they are
deferred (the rollback finishes), and the run exits 128+signum of the signal that stopped it.

Test hook: ``SWITCHYARD_INSTALL_FAIL_AT=<step>`` makes the run fail right after ``<step>`` did its
work, ``SWITCHYARD_INSTALL_FAIL_AT=sigterm:<step>`` (or ``sigint``, ``sighup``, ``sigquit``) sends the
installer that signal there (``rollback`` is a step too: the start of the rollback;
``litellm_restart_command`` is between the restart command and the wait for LiteLLM; several specs
may be given, comma-separated), and
``SWITCHYARD_INSTALL_FAIL_AT=kill:<step>`` SIGKILLs it there (no rollback: a partial journal, as the
uninstaller must handle).  All are honoured only while ``PYTEST_CURRENT_TEST`` is set (i.e. under
pytest).  Steps: see ``STEPS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import click

from installer import answers as answers_mod
from installer import child, probes, render, service
from installer import deploy as deploy_mod
from installer.answers import Answers, AnswersError
from installer.journal import Journal, JournalError
from installer.litellm_yaml import (
    DROP_FIELDS,
    Entry,
    FilePatch,
    LiteLLMConfig,
    LiteLLMConfigError,
    entries_for_models,
    load_litellm_config,
    plan_patch,
)
from installer.paths import UNIT_NAME, Paths, PathsError
from installer.plan import FileChange, colour_diff
from installer.rollback import rollback
from proxy import local_advice
from proxy.capabilities import UNKNOWN as UNKNOWN_CAPS
from proxy.capabilities import LocalCapabilities, probe_url
from proxy.config import DEFAULT_CLOUD_KEY_ENV, DEFAULT_ROUTER_KEY_ENV, LocalConfig
from proxy.local_advice import Finding
from proxy.ops.classify_suite import Outcome as ClassifyOutcome

STEPS = ("litellm_yaml", "litellm_restart", "secrets", "render", "deploy", "service", "classifier", "answers")
EXIT_USAGE = 2
EXIT_CANCELLED = 130
ROLLBACK_LITELLM_WAIT_S = 90.0


def _exit_code(exc: BaseException, deferred: list[int]) -> int:
    """How a rolled-back run exits: 128+signum for the signal that stopped it, else 1 (or 130 when declined)."""
    if isinstance(exc, Terminated):
        return 128 + exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_CANCELLED  # 128 + SIGINT
    return 128 + deferred[0] if deferred else 1


class StepFailed(Exception):
    pass


class Declined(Exception):
    """The user chose to stop before anything was written (exits like any other decline)."""


class Terminated(BaseException):
    """SIGTERM, SIGHUP or SIGQUIT arrived: unwinds like KeyboardInterrupt so the rollback runs."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


def _inject(step: str) -> None:
    """The test hook (see the module docstring); ``SPEC`` may list several, comma-separated."""
    if "PYTEST_CURRENT_TEST" not in os.environ:
        return
    for spec in os.environ.get("SWITCHYARD_INSTALL_FAIL_AT", "").split(","):
        kind, _, where = spec.rpartition(":")
        if where != step:
            continue
        if not kind:
            raise StepFailed(f"injected failure after step {step} (SWITCHYARD_INSTALL_FAIL_AT)")
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)
        signum = getattr(signal, kind.upper(), None)
        if isinstance(signum, signal.Signals):
            os.kill(os.getpid(), signum)
            if step != "rollback":  # during the rollback the signal is deferred: go on
                time.sleep(10)


# SIGINT raises KeyboardInterrupt (Python's default); these raise Terminated.  All four roll back.
TERMINATING = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
DEFERRED = (signal.SIGINT, *TERMINATING)
PLEASE_WAIT = b"installer: rolling back, please wait\n"


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While applying: SIGTERM, SIGHUP and SIGQUIT raise :class:`Terminated` (SIGINT: KeyboardInterrupt)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    old = {s: signal.signal(s, handler) for s in TERMINATING}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _defer_signals() -> tuple[list[int], Callable[[], None]]:
    """While rolling back: SIGINT/SIGTERM/SIGHUP/SIGQUIT are recorded, not acted on (a rollback must finish).

    The first one says "rolling back, please wait" (with ``os.write``: safe in a handler).  Returns
    the list of signals received and a function that puts the previous handlers back.
    """
    got: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if not got:
            with contextlib.suppress(OSError):
                os.write(2, PLEASE_WAIT)
        got.append(signum)

    old = {s: signal.signal(s, handler) for s in DEFERRED}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return got, restore


# ---------------------------------------------------------------------------------------------
# output


class Out:
    def __init__(self, color: bool | None) -> None:
        self.color = color

    def say(self, text: str = "", **style: Any) -> None:
        click.echo(click.style(text, **style) if style else text, color=self.color)

    def head(self, text: str) -> None:
        self.say("")
        self.say(text, bold=True)

    def ok(self, text: str) -> None:
        self.say(f"  ✓ {text}", fg="green")

    def warn(self, text: str) -> None:
        self.say(f"  ! {text}", fg="yellow")

    def err(self, text: str) -> None:
        click.echo(click.style(f"installer: {text}", fg="red"), err=True, color=self.color)

    def raw(self, text: str) -> None:
        click.echo(text, nl=False, color=self.color)


# ---------------------------------------------------------------------------------------------
# resolved answers


@dataclass
class Resolved:
    """Answers plus everything learned from the live services (read-only)."""

    ans: Answers
    litellm_key: str
    local_models: list[str]
    cloud_models: list[str]
    litellm_cfg: LiteLLMConfig
    entries: list[Entry]
    # What the local server can take, probed once the URL and model are known.
    local_caps: LocalCapabilities = UNKNOWN_CAPS

    @property
    def local_findings(self) -> list[Finding]:
        return local_findings(self.local_caps, self.ans.local_context_tokens or 0)


@dataclass
class Plan:
    files: list[FileChange]
    yaml_patches: list[FilePatch]
    deploy: deploy_mod.DeployPlan
    env_values: dict[str, str]
    router_key: str
    manager: str | None
    service_action: str  # "start", "restart" or "none"
    restart_litellm: bool
    port: int
    notes: list[str] = field(default_factory=list)

    def file(self, role: str) -> FileChange:
        return next(f for f in self.files if f.role == role)

    @property
    def yaml_changed(self) -> bool:
        return any(p.changed for p in self.yaml_patches)

    @property
    def nothing_to_do(self) -> bool:
        return (
            not self.yaml_changed
            and not any(f.changed for f in self.files)
            and not self.deploy.needed
            and self.service_action == "none"
        )


# ---------------------------------------------------------------------------------------------
# what the local server can take (proxy/local_advice.py: the same words as status and doctor)

TAKES_NOTHING = "Every Claude Code main request will go to the cloud until you fix the local server"


def probe_local(url: str, model: str) -> LocalCapabilities:
    """The local server's capabilities for ``model`` (bounded; never raises: unknown when it finds nothing)."""
    return asyncio.run(probe_url(probes.v1_base(url), model))


def local_findings(caps: LocalCapabilities, context_tokens: int = 0) -> list[Finding]:
    """The findings for the config the installer writes (its local.context_tokens, the default reserve)."""
    return local_advice.findings(caps, local_advice.reserve_for(LocalConfig()), context_tokens)


# ---------------------------------------------------------------------------------------------
# field checks (shared by the prompts and the non-interactive path)


def check_port(port: int, paths: Paths, current_key: str) -> str | None:
    if probes.port_free(port):
        return None
    from proxy.pidfile import live_pid

    if live_pid(paths.pidfile) is not None:
        return None
    if current_key and probes.router_health(port, current_key)[0] == 200:
        return None
    return f"port {port} is in use by another program; choose another port (--port)"


def existing_env(paths: Paths) -> dict[str, str]:
    try:
        return render.parse_env_file(paths.env_file.read_bytes())
    except OSError:
        return {}


def _abs(path: str) -> str:
    return str(Path(path).expanduser().absolute())


def default_cloud_entries(cfg: LiteLLMConfig, ans: Answers) -> list[Entry]:
    names = [n for n in (ans.cloud_simple_model, ans.cloud_complex_model) if n]
    return entries_for_models(cfg, names, exclude_api_base=ans.local_url or "")


def chosen_entries(cfg: LiteLLMConfig, ans: Answers) -> tuple[list[Entry], list[str]]:
    if ans.cloud_entries:
        problems = [
            f"cloud_entries: {n!r} is not a model_name in {cfg.main.path}"
            for n in ans.cloud_entries
            if not entries_for_models(cfg, [n])
        ]
        entries = entries_for_models(cfg, ans.cloud_entries)
        if ans.local_model:
            local = [e for e in entries if e.model_name == ans.local_model]
            if local:
                problems.append(
                    f"cloud_entries: {ans.local_model!r} is the local model; its entry never gets the drop list"
                )
        return entries, problems
    entries = default_cloud_entries(cfg, ans)
    if not entries:
        return [], [
            f"no entry in {cfg.main.path} serves {ans.cloud_simple_model!r} or {ans.cloud_complex_model!r} "
            "(models added through the LiteLLM UI are not in the YAML); list them with cloud_entries"
        ]
    return entries, []


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class Installer:
    paths: Paths
    flags: dict[str, Any]
    answers_file: Path | None
    yes: bool
    dry_run: bool
    venv_mode: str
    wheelhouse: Path | None
    classifier_check: bool | None
    out: Out
    interactive: bool = True

    # ---- answers ------------------------------------------------------------------------------
    def previous_answers(self) -> dict[str, Any]:
        if not self.paths.answers_file.exists():
            return {}
        try:
            return answers_mod.read_answers_file(self.paths.answers_file)
        except AnswersError as exc:
            self.out.warn(f"ignoring the previous answers: {exc}")
            return {}

    def gather(self) -> Resolved:
        file_values = answers_mod.read_answers_file(self.answers_file) if self.answers_file else {}
        if self.answers_file and file_values.get("litellm_config"):
            p = Path(str(file_values["litellm_config"])).expanduser()
            if not p.is_absolute():
                p = self.answers_file.parent / p
            file_values["litellm_config"] = str(p)
        if self.flags.get("litellm_config"):
            self.flags["litellm_config"] = _abs(self.flags["litellm_config"])
        ans, problems = answers_mod.layer(self.flags, file_values, self.previous_answers())
        if problems:
            raise AnswersError(problems)
        if self.interactive:
            from installer.prompts import ask_all

            return ask_all(self, ans)
        return self.resolve_noninteractive(ans)

    def litellm_key_from_env(self, ans: Answers) -> str:
        name = ans.litellm_key_env or answers_mod.DEFAULT_LITELLM_KEY_ENV
        return os.environ.get(name, "")

    def resolve_noninteractive(self, ans: Answers) -> Resolved:
        problems = answers_mod.static_problems(ans, require_all=True)
        local_models: list[str] = []
        cloud_models: list[str] = []
        key = self.litellm_key_from_env(ans)
        if ans.local_url and not any(p.startswith("local_url") for p in problems):
            try:
                local_models = probes.local_models(ans.local_url)
            except probes.ProbeError as exc:
                problems.append(f"local_url: {exc}")
        local_caps = UNKNOWN_CAPS
        if ans.local_model and local_models and ans.local_model not in local_models:
            problems.append(
                f"local_model: {ans.local_model!r} is not loaded on {ans.local_url} (loaded: {', '.join(local_models)})"
            )
        elif ans.local_url and ans.local_model and local_models:
            local_caps = probe_local(ans.local_url, ans.local_model)
        if ans.litellm_url and not any(p.startswith("litellm_url") for p in problems):
            try:
                probes.litellm_live(ans.litellm_url)
                if not key:
                    problems.append(
                        f"the LiteLLM key is missing: set {ans.litellm_key_env or 'LITELLM_MASTER_KEY'} "
                        "in the environment"
                    )
                else:
                    cloud_models = probes.litellm_models(ans.litellm_url, key)
            except probes.ProbeError as exc:
                problems.append(f"litellm_url: {exc}")
        for k in ("cloud_simple_model", "cloud_complex_model"):
            v = ans.get(k)
            if v and cloud_models and v not in cloud_models:
                problems.append(f"{k}: LiteLLM does not expose {v!r} (it has: {', '.join(cloud_models)})")
        cfg: LiteLLMConfig | None = None
        entries: list[Entry] = []
        if ans.litellm_config:
            try:
                cfg = load_litellm_config(Path(ans.litellm_config))
                entries, more = chosen_entries(cfg, ans)
                problems.extend(more)
            except LiteLLMConfigError as exc:
                problems.append(f"litellm_config: {exc}")
        if ans.port is not None and not any(p.startswith("port") for p in problems):
            msg = check_port(ans.port, self.paths, existing_env(self.paths).get(DEFAULT_ROUTER_KEY_ENV, ""))
            if msg:
                problems.append(f"port: {msg}")
        if problems:
            raise AnswersError(problems)
        assert cfg is not None
        return Resolved(ans, key, local_models, cloud_models, cfg, entries, local_caps)

    # ---- plan ---------------------------------------------------------------------------------
    def make_plan(self, r: Resolved) -> Plan:
        ans = r.ans
        assert ans.port is not None and ans.launcher_name is not None
        assert ans.long_context_threshold is not None and ans.classify_timeout_s is not None
        assert ans.classify_max_tokens is not None
        try:
            patches = plan_patch(r.litellm_cfg, r.entries)
        except LiteLLMConfigError as exc:
            raise AnswersError([f"litellm_config: {exc}"]) from None
        current_env = existing_env(self.paths)
        router_key = current_env.get(DEFAULT_ROUTER_KEY_ENV) or secrets.token_urlsafe(32)
        env_values = {DEFAULT_ROUTER_KEY_ENV: router_key, DEFAULT_CLOUD_KEY_ENV: r.litellm_key}
        ri = render.RenderInput(
            paths=self.paths,
            local_base_url=probes.v1_base(ans.local_url or ""),
            local_model=ans.local_model or "",
            litellm_url=(ans.litellm_url or "").rstrip("/"),
            cloud_simple_model=ans.cloud_simple_model or "",
            cloud_complex_model=ans.cloud_complex_model or "",
            port=ans.port,
            launcher_name=ans.launcher_name,
            long_context_threshold=ans.long_context_threshold,
            classify_timeout_s=ans.classify_timeout_s,
            classify_max_tokens=ans.classify_max_tokens,
            local_context_tokens=ans.local_context_tokens or 0,
            router_key_env=DEFAULT_ROUTER_KEY_ENV,
            litellm_key_env=DEFAULT_CLOUD_KEY_ENV,
            generated_at="the installer's last run",
        )
        p = self.paths
        files = [
            FileChange.of(p.env_file, render.render_env_file(env_values), 0o600, "env", "secrets", secret=True),
            FileChange.of(p.config_file, render.render_config(ri), 0o644, "config", "render"),
            FileChange.of(p.unit_file, render.render_unit(ri), 0o644, "unit", "render"),
            FileChange.of(p.launcher(ans.launcher_name), render.render_launcher(ri), 0o755, "launcher", "render"),
            # Deployed beside the venv it runs with, so undoing needs neither the checkout nor its libraries.
            FileChange.of(p.uninstall_script, deploy_mod.uninstall_script_source(), 0o755, "uninstaller", "deploy",
                          brief="a copy of the checkout's uninstall.py, to undo everything later"),
            FileChange.of(p.answers_file, answers_mod.dump_answers(ans), 0o644, "answers", "answers"),
        ]
        notes: list[str] = []
        launcher = files[3]
        if launcher.old is not None and str(launcher.path) not in self._owned_files():
            raise AnswersError([f"launcher_name: {launcher.path} exists and is not Switchyard's; choose another name"])
        dp = deploy_mod.plan(p.venv_dir, self.venv_mode)
        manager = service.user_manager_state()
        # Only what the running proxy reads makes a restart worthwhile.
        changed = any(f.changed for f in files if f.role not in ("answers", "uninstaller")) or dp.needed
        running = self._service_running(manager, ans.port, router_key)
        action = "restart" if running and changed else ("none" if running else "start")
        restart = bool(ans.litellm_restart and ans.litellm_restart != "none")
        return Plan(files, patches, dp, env_values, router_key, manager, action, restart, ans.port, notes)

    def _owned_files(self) -> set[str]:
        from installer import journal as journal_mod

        try:
            state = journal_mod.load(self.paths.journal_file)
        except (JournalError, ValueError):
            return set()
        return set(state["files_created"]) if state else set()

    def _service_running(self, manager: str | None, port: int, key: str) -> bool:
        if manager is not None:
            proc = subprocess.run(
                ["systemctl", "--user", "is-active", UNIT_NAME], capture_output=True, text=True, check=False
            )
            return proc.stdout.strip() == "active" and probes.router_health(port, key)[0] == 200
        from proxy.pidfile import live_pid

        return live_pid(self.paths.pidfile) is not None and probes.router_health(port, key)[0] == 200

    def show_local(self, caps: LocalCapabilities, notes: bool = True, context_tokens: int = 0) -> None:
        """What the local server can take, and each finding that is not OK with its fix."""
        o = self.out
        o.say(f"  Local server: {caps.describe()}")
        if notes:
            for note in caps.notes:
                o.say(f"      {note}", dim=True)
        fixes: set[str] = set()
        for f in local_findings(caps, context_tokens):
            if f.state == local_advice.PROBLEM:
                o.warn(f"{f.title}: {f.detail}")
            elif f.state == local_advice.UNKNOWN:
                o.say(f"  ? {f.title}: {f.detail}")
            else:
                continue
            if f.fix and f.fix not in fixes:  # one fix often answers two findings (Ollama's context)
                o.say(f"      fix: {f.fix}")
                fixes.add(f.fix)

    def accept_local(self, caps: LocalCapabilities, context_tokens: int = 0) -> None:
        """Ask before going on when Claude Code's main requests would all go to the cloud (Declined on no)."""
        if not local_advice.takes_nothing(local_findings(caps, context_tokens)) or self.yes:
            return
        from installer.prompts import confirm

        if not confirm(f"Continue anyway? {TAKES_NOTHING}", default=False):
            raise Declined("stopped: fix the local server as shown above, then run the installer again")

    def show_plan(self, r: Resolved, plan: Plan) -> None:
        o = self.out
        o.head("Plan")
        self.show_local(r.local_caps, context_tokens=r.ans.local_context_tokens or 0)
        if local_advice.takes_nothing(r.local_findings):
            o.warn(TAKES_NOTHING + ("; continuing as --yes asks" if self.yes and not self.dry_run else ""))
        o.say(f"  LiteLLM config: {r.litellm_cfg.main.path}")
        o.say(f"  entries that get the drop list ({', '.join(DROP_FIELDS)}):")
        for e in r.entries:
            o.say(f"    - {e.describe()}")
        for patch in plan.yaml_patches:
            if patch.changed:
                o.say(f"  change {patch.path} (a timestamped backup is taken first):")
                o.raw(colour_diff(patch.diff()))
            else:
                o.say(f"  {patch.path}: already patched, unchanged")
        if plan.yaml_changed:
            if plan.restart_litellm:
                o.say(f"  run: {r.ans.litellm_restart}   (restart LiteLLM), then a 1-token check request")
            else:
                o.say("  LiteLLM is NOT restarted by the installer: restart it yourself afterwards")
        for fc in plan.files:
            if fc.changed:
                o.say(f"  {fc.status} {fc.path}")
                o.raw(colour_diff(fc.diff()))
            else:
                o.say(f"  unchanged {fc.path}")
        o.say(f"  {plan.deploy.describe()}")
        if plan.manager:
            verb = {"start": "enable and start", "restart": "restart", "none": "leave running"}[plan.service_action]
            o.say(f"  systemd user manager ({plan.manager}): {verb} {UNIT_NAME}")
        else:
            verb = {"start": "start", "restart": "restart", "none": "leave running"}[plan.service_action]
            o.say(f"  no systemd user manager answers here: {verb} the proxy in the background "
                  f"(pidfile {self.paths.pidfile})")
        for n in plan.notes:
            o.warn(n)

    # ---- apply --------------------------------------------------------------------------------
    def confirm(self, question: str) -> bool:
        if self.yes:
            return True
        from installer.prompts import confirm

        return confirm(question)

    def apply(self, r: Resolved, plan: Plan) -> None:
        journal = Journal(self.paths.journal_file, self.paths.backups_dir)
        url = (r.ans.litellm_url or "").rstrip("/")
        restarter = service.restart_waiter(url, after_command=lambda: _inject("litellm_restart_command"))
        # After a rollback LiteLLM must answer again before "Rolled back" (bounded).
        rollback_restarter = service.restart_waiter(url, ROLLBACK_LITELLM_WAIT_S)
        try:
            with _sigterm_raises():
                self._apply_steps(r, plan, journal, restarter)
                deploy_mod.drop_previous(journal)
                journal.finish("complete")
        except (Exception, KeyboardInterrupt, Terminated) as exc:
            # First of all: a second signal must not abort the rollback.
            got, restore = _defer_signals()
            if isinstance(exc, Terminated):
                why = f"terminated ({signal.Signals(exc.signum).name})"
            else:
                why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
            try:
                self.out.err(f"install stopped: {why}")
                self.out.say("Rolling back what this run changed ...", fg="yellow")
                _inject("rollback")
                failures = rollback(journal, rollback_restarter)
                for f in failures:
                    self.out.err(f)
                if failures:
                    self.out.err("rollback incomplete; the journal is " + str(self.paths.journal_file))
                else:
                    self.out.say("Rolled back: the files are as they were before this run.", fg="yellow")
            finally:
                restore()
            raise SystemExit(_exit_code(exc, got)) from None

    def _step(self, name: str, question: str, fn: Callable[[], None]) -> None:
        if not self.confirm(question):
            raise KeyboardInterrupt()
        fn()
        _inject(name)

    def _apply_steps(self, r: Resolved, plan: Plan, journal: Journal, restarter: Callable[[str], None]) -> None:
        ans = r.ans
        o = self.out
        journal.set("litellm", {"config": str(r.litellm_cfg.main.path), "url": ans.litellm_url,
                                "restart_command": ans.litellm_restart if plan.restart_litellm else None})

        def yaml_step() -> None:
            for patch in plan.yaml_patches:
                if patch.changed:
                    journal.patch_user_file(patch.path, patch.patched, [c.to_json() for c in patch.changes],
                                            step="litellm_yaml")
                    o.ok(f"patched {patch.path}")
            self._validate_litellm(r.litellm_cfg.main.path)

        if plan.yaml_changed:
            self._step("litellm_yaml", "Patch the LiteLLM config now?", yaml_step)
        else:
            _inject("litellm_yaml")

        def restart_step() -> None:
            assert ans.litellm_restart is not None
            # Journaled first: interrupted mid-restart, the rollback restarts LiteLLM on the restored
            # config and waits for it (it may be down or still running the patched file).
            journal.action("litellm_restart", command=ans.litellm_restart)
            restarter(ans.litellm_restart)
            o.ok("LiteLLM restarted")
            self._prove_fix(r)

        if plan.yaml_changed and plan.restart_litellm:
            self._step("litellm_restart", f"Restart LiteLLM with `{ans.litellm_restart}`?", restart_step)
        else:
            if plan.yaml_changed:
                o.warn("restart LiteLLM yourself now: the new drop settings apply only after a restart")
            else:
                probe = probes.thinking_probe(ans.litellm_url or "", r.litellm_key, ans.cloud_simple_model or "")
                if not probe.ok:
                    o.warn(f"LiteLLM still rejects a request carrying {', '.join(DROP_FIELDS)} "
                           f"(HTTP {probe.status}); has it been restarted since the config was patched?")
            _inject("litellm_restart")

        for step, question, roles in (
            ("secrets", f"Write the secrets file {self.paths.env_file} (mode 0600)?", ("env",)),
            ("render", "Write the router config, the systemd unit and the launcher?", ("config", "unit", "launcher")),
        ):
            todo = [f for f in plan.files if f.role in roles and f.changed]

            def write(todo: list[FileChange] = todo, step: str = step) -> None:
                for fc in todo:
                    journal.write_file(fc.path, fc.new, fc.mode, step=step, role=fc.role)
                    o.ok(f"wrote {fc.path}")

            if todo:
                self._step(step, question, write)
            else:
                _inject(step)

        script = plan.file("uninstaller")

        def deploy_step() -> None:
            if plan.deploy.needed:
                deploy_mod.deploy(plan.deploy, journal, self.wheelhouse)
                o.ok(f"deployed the proxy into {plan.deploy.venv}")
            if script.changed:
                journal.write_file(script.path, script.new, script.mode, step="deploy", role="uninstaller")
                o.ok(f"wrote {script.path}")

        if plan.deploy.needed or script.changed:
            what = plan.deploy.describe() if plan.deploy.needed else f"write {script.path}"
            self._step("deploy", f"{what}?", deploy_step)
        else:
            _inject("deploy")

        def service_step() -> None:
            self._run_service(plan, journal)

        if plan.service_action != "none":
            self._step("service", "Start the Switchyard service?", service_step)
        else:
            _inject("service")

        self._classifier_step(r)
        _inject("classifier")

        ans_file = plan.file("answers")
        if ans_file.changed:
            journal.write_file(ans_file.path, ans_file.new, ans_file.mode, step="answers", role="answers")
        _inject("answers")

    def _validate_litellm(self, config: Path) -> None:
        import shutil

        exe = shutil.which("litellm")
        if exe is None:
            self.out.say("  (litellm is not on PATH here: skipped `litellm --validate_config`)")
            return
        proc = child.run([exe, "--validate_config", "--config", str(config)], timeout=300, cwd=str(config.parent))
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
            raise StepFailed(f"`litellm --validate_config` rejects the patched config: {' / '.join(tail)}")
        self.out.ok("litellm --validate_config accepts the patched config")

    def _prove_fix(self, r: Resolved) -> None:
        url, key, model = r.ans.litellm_url or "", r.litellm_key, r.ans.cloud_simple_model or ""
        probe = probes.PROBE_FIELDS
        result = probes.thinking_probe(url, key, model)
        if result.ok:
            self.out.ok(f"a 1-token request to {model} carrying {', '.join(probe)} now succeeds")
            return
        through = [f for f in probe if not probes.thinking_probe(url, key, model, (f,)).ok]
        which = ", ".join(through) if through else "(none alone; only the combination)"
        raise StepFailed(
            f"LiteLLM still fails the check request (HTTP {result.status}): field(s) getting through: {which}. "
            f"The config backup is restored and LiteLLM restarted again. Detail: {result.detail[:160]}"
        )

    def _run_service(self, plan: Plan, journal: Journal) -> None:
        o = self.out
        unit = self.paths.unit_file.read_bytes()
        complaint = render.verify_unit(unit)
        if complaint:
            raise StepFailed(f"systemd-analyze verify rejects {self.paths.unit_file}: {complaint}")
        o.ok("systemd-analyze verify --user: unit is valid")
        port = plan.port
        if plan.manager:
            res = service.start_systemd(journal, self.paths, port, plan.router_key, plan.service_action == "restart")
            o.ok(res.message)
            linger = service.linger_enabled()
            if linger is False:
                o.warn(f"lingering is off: the service starts at your login, not at boot. For start at boot an "
                       f"administrator must run: loginctl enable-linger {getpass.getuser()}")
        else:
            o.warn("no systemd user manager answers here (container or CI?): the unit is written and verified, "
                   "and the proxy is started in the background instead (it will not start at boot)")
            res = service.start_background(journal, self.paths, port, plan.env_values, plan.router_key)
            o.ok(res.message)

    def _classifier_step(self, r: Resolved) -> None:
        want = self.classifier_check
        if want is None:
            if self.yes:
                return
            from installer.prompts import confirm

            want = confirm("Run the classifier check (a few easy and hard prompts through your local model)?")
        if want:
            run_classifier_check(self.paths.config_file, self.paths.env_file, self.out)


def run_classifier_check(config_file: Path, env_file: Path, out: Out) -> list[ClassifyOutcome]:
    """Run a few requests of ``switchyard classify --suite`` through the installed config: the same
    prompt, view, budget, timeout and local key the proxy uses.  Advisory: it reports, never fails
    the install (a model that gives no verdict still routes, to the cloud)."""
    from proxy.config import ConfigError, load_config, load_prompt
    from proxy.ops import classify_suite as cs
    from proxy.ops.envfile import apply_env_file
    from proxy.routing import SIMPLE

    out.head("Classifier check")
    environ = dict(os.environ)
    apply_env_file(env_file, environ)
    try:
        cfg = load_config(config_file)
        prompt = load_prompt(cfg)
    except ConfigError as exc:
        out.warn(f"classifier check skipped: {exc}")
        return []
    outcomes = cs.run(cfg, prompt, cs.check_cases(), cfg.local_key(environ))
    for o in outcomes:
        label = "easy" if o.case.expected == SIMPLE else "hard"
        verdict = o.result.verdict or f"no verdict ({o.result.mode}: {o.result.detail})"
        line = f"[{label}] {verdict} in {o.result.elapsed_ms / 1000:.1f} s: {o.case.prompt[:70]}"
        note = cs.advice(o, cfg)
        if note is None:
            out.ok(line)
        else:
            out.warn(f"{line}\n      {note}")
    return outcomes


# ---------------------------------------------------------------------------------------------
# click


def _flag(name: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(f"--{name.replace('_', '-')}", name, default=None, **kw)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--answers", "answers_file", type=click.Path(dir_okay=False, exists=False), default=None,
              help="YAML answers file (keys as in the flags below, with underscores).")
@click.option("--yes", "-y", is_flag=True, help="No questions: take every answer from flags/answers file/previous run.")
@click.option("--dry-run", is_flag=True, help="Probe, show the plan and diffs, change nothing.")
@_flag("local_url", help="Local model server URL, e.g. http://127.0.0.1:1234 (LM Studio).")
@_flag("local_model", help="Local model id, as the server lists it.")
@_flag("litellm_url", help="LiteLLM proxy URL (default http://127.0.0.1:4000).")
@_flag("litellm_config", help="Path of the YAML config LiteLLM runs with.")
@_flag("cloud_simple_model", help="LiteLLM model name for the cloud simple tier.")
@_flag("cloud_complex_model", help="LiteLLM model name for the cloud complex tier.")
@_flag("cloud_entries", help="Comma-separated model_names whose entries get the drop list.")
@_flag("litellm_restart", help="'none' or a shell command that restarts LiteLLM.")
@_flag("port", type=int, help="Router port (default 3456).")
@_flag("launcher_name", help="Launcher name in ~/.local/bin (default claude-routed).")
@_flag("long_context_threshold", type=int, help="Tokens above which a request goes to the cloud (60000).")
@_flag("classify_timeout_s", type=float, help="Classifier timeout in seconds (15).")
@_flag("classify_max_tokens", type=int, help="Classifier max tokens (8192).")
@_flag("local_context_tokens", type=int,
       help="Context one local request gets, when the server cannot say (0: read it from the server).")
@_flag("litellm_key_env", help="Variable holding the LiteLLM key (default LITELLM_MASTER_KEY).")
@click.option("--venv-mode", type=click.Choice(["pip", "inherit"]), default="pip", show_default=True,
              help="pip: self-contained venv (pip install of the checkout); inherit: fast, reuses this "
                   "interpreter's libraries (see installer/deploy.py).")
@click.option("--wheelhouse", type=click.Path(file_okay=False, exists=True), default=None,
              help="Install from wheels in this directory (pip --no-index --find-links).")
@click.option("--classifier-check/--no-classifier-check", default=None, help="Run (or skip) step 7.")
@click.option("--color/--no-color", default=None, help="Colour the output (default: when a terminal).")
def main(answers_file: str | None, yes: bool, dry_run: bool, venv_mode: str, wheelhouse: str | None,
         classifier_check: bool | None, color: bool | None, **flags: Any) -> None:
    """Switchyard's guided installer: probe, validate, patch LiteLLM safely, render, deploy, verify."""
    out = Out(color)
    try:
        paths = Paths.from_env()
    except PathsError as exc:
        out.err(str(exc))
        raise SystemExit(EXIT_USAGE) from None
    inst = Installer(
        paths=paths,
        flags={k: v for k, v in flags.items() if v is not None},
        answers_file=Path(answers_file).absolute() if answers_file else None,
        yes=yes,
        dry_run=dry_run,
        venv_mode=venv_mode,
        wheelhouse=Path(wheelhouse) if wheelhouse else None,
        classifier_check=classifier_check,
        out=out,
        interactive=not yes,
    )
    try:
        resolved = inst.gather()
        plan = inst.make_plan(resolved)
    except AnswersError as exc:
        out.err("cannot install with these answers:\n  - " + "\n  - ".join(exc.problems))
        raise SystemExit(EXIT_USAGE) from None
    except deploy_mod.DeployError as exc:
        out.err(f"{exc}; nothing was changed")
        raise SystemExit(EXIT_USAGE) from None
    except Declined as exc:
        out.err(f"{exc}; nothing was changed")
        raise SystemExit(EXIT_CANCELLED) from None
    except KeyboardInterrupt:
        out.err("cancelled; nothing was changed")
        raise SystemExit(EXIT_CANCELLED) from None
    inst.show_plan(resolved, plan)
    if plan.nothing_to_do:
        out.head("Nothing to change: Switchyard is installed and running with these answers.")
        return
    if dry_run:
        out.head("Dry run: nothing was changed.")
        return
    if not yes:
        from installer.prompts import confirm

        try:
            if not confirm("Apply this plan?"):
                out.err("cancelled; nothing was changed")
                raise SystemExit(EXIT_CANCELLED)
        except KeyboardInterrupt:
            out.err("cancelled; nothing was changed")
            raise SystemExit(EXIT_CANCELLED) from None
    inst.apply(resolved, plan)
    summary(inst, resolved, plan)


def summary(inst: Installer, r: Resolved, plan: Plan) -> None:
    o, p = inst.out, inst.paths
    assert r.ans.launcher_name is not None
    o.head("Done.")
    changed = [str(f.path) for f in plan.files if f.changed] + [str(x.path) for x in plan.yaml_patches if x.changed]
    for c in changed:
        o.say(f"  changed: {c}")
    o.say(f"  launch Claude Code through Switchyard: {p.launcher(r.ans.launcher_name)}   "
          f"(make sure {p.bin_dir} is on your PATH; plain `claude` is untouched)")
    o.say(f"  watch routing decisions: tail -f {p.decisions_log}")
    o.say(f"  service log: {p.proxy_log}")
    o.say(f"  undo everything: python3 {p.uninstall_script}   (journal: {p.journal_file})")
    if local_advice.takes_nothing(r.local_findings):
        o.warn(f"{TAKES_NOTHING} (the fixes are in the plan above; check again with: "
               f"{p.venv_python} -m proxy doctor)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
