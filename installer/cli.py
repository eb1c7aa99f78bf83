"""``python -m installer``: the guided installer (issue 4).

One :class:`Installer` object per run (copier-style): its fields mirror the CLI flags.  The run is
ask -> resolve (read-only probes) -> plan (render everything in memory, compare with disk) -> show
-> apply only what changed, step by step, journaled, rolled back on any failure or SIGTERM.

Signals (:mod:`installer.signals`): SIGINT, SIGTERM, SIGHUP and SIGQUIT while applying roll back;
while rolling back they are deferred (the rollback finishes), and the run then ends by the signal
that stopped it.  A step the user declines rolls back too, and exits 130 ("cancelled").

Test hook: ``SWITCHYARD_INSTALL_FAIL_AT=<step>`` makes the run fail right after ``<step>`` did its
work, ``SWITCHYARD_INSTALL_FAIL_AT=sigterm:<step>`` (or ``sigint``, ``sighup``, ``sigquit``) sends the
installer that signal there (``rollback`` is a step too: the start of the rollback;
``litellm_restart_command`` is between the restart command and the wait for LiteLLM; several specs
may be given, comma-separated), and
``SWITCHYARD_INSTALL_FAIL_AT=kill:<step>`` SIGKILLs it there (no rollback: a partial journal, as the
uninstaller must handle).  The suite sets it; nobody else has a reason to.  Steps: see ``STEPS``.
"""

from __future__ import annotations

import getpass
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from installer import answers as answers_mod
from installer import child, probes, questions, render, service_start, signals
from installer import deploy as deploy_mod
from installer.answers import AnswersError
from installer.dialect import propose_local_api
from installer.journal import Journal, JournalError
from installer.journal_actions import RestartLiteLLM
from installer.litellm_yaml import DROP_FIELDS, Entry, LiteLLMConfigError, plan_patch
from installer.plan import FileChange, Plan, colour_diff
from installer.questions import Resolved, existing_env, local_findings
from installer.rollback import rollback
from installer.signals import Terminated
from proxy import local_advice
from proxy.capabilities import LocalCapabilities
from proxy.config import DEFAULT_CLOUD_KEY_ENV, DEFAULT_HASH_KEY_ENV, DEFAULT_ROUTER_KEY_ENV
from proxy.host import pidfile, systemd
from proxy.host.envfile import EnvFileError, render_env
from proxy.host.http_probe import PROBE_FIELDS
from proxy.host.paths import UNIT_NAME, Paths, PathsError
from proxy.ops.classify_suite import CaseResult

STEPS = ("litellm_yaml", "litellm_restart", "secrets", "render", "deploy", "service", "classifier", "answers")
EXIT_USAGE = 2
EXIT_CANCELLED = 130
ROLLBACK_LITELLM_WAIT_S = 90.0


class StepFailed(Exception):
    pass


class Declined(Exception):
    """The user chose to stop before anything was written (exits like any other decline)."""


class StepDeclined(Exception):
    """The user answered no to a step of the apply phase: the run is rolled back (not a signal)."""

    def __init__(self, step: str) -> None:
        super().__init__(f"you declined the {step} step")
        self.step = step


def _inject(step: str) -> None:
    """The test hook (see the module docstring); ``SPEC`` may list several, comma-separated."""
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


# ---------------------------------------------------------------------------------------------
# what the local server can take (proxy/local_advice.py: the same words as status and doctor)

TAKES_NOTHING = "Every Claude Code main request will go to the cloud until you fix the local server"


def _abs(path: str) -> str:
    return str(Path(path).expanduser().absolute())


def prove_fix_failure(verdict: probes.FieldsVerdict, model: str, entries: list[Entry]) -> str:
    """What a failed proof request means: the backend itself, or the fields getting through (never both)."""
    entry = next((e.describe() for e in entries if e.model_name == model), f"model_name {model!r}")
    if not verdict.plain.ok:
        return (f"LiteLLM fails even a plain 1-token request to {model} ({verdict.plain.describe()}: "
                f"{verdict.plain.message(160)}); the entry {entry} or its backend is at fault, not the thinking "
                "fields: fix that entry in LiteLLM's config, then run the installer again.")
    assert verdict.with_fields is not None
    which = ", ".join(verdict.through) if verdict.through else "(none alone; only the combination)"
    return (f"a plain request to {model} passes but one carrying {', '.join(PROBE_FIELDS)} fails "
            f"({verdict.with_fields.describe()}: {verdict.with_fields.message(160)}): field(s) getting through "
            f"the entry {entry}: {which}.")


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
        run = questions.Run(self.paths, ans)
        if self.interactive:
            from installer.prompts import ask_all

            def on_local_caps(caps: LocalCapabilities) -> None:
                self.show_local(caps, notes=False, context_tokens=run.ans.local_context_tokens or 0)
                self.accept_local(caps, run.ans.local_context_tokens or 0)

            return ask_all(run, on_local_caps)
        return questions.resolve(run)

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
        local_api, local_api_why = self.local_dialect(r)
        current_env = existing_env(self.paths)
        router_key = current_env.get(DEFAULT_ROUTER_KEY_ENV) or secrets.token_urlsafe(32)
        # Kept across re-installs: a new key would make every earlier prompt hash unrecognisable.
        hash_key = current_env.get(DEFAULT_HASH_KEY_ENV) or secrets.token_hex(32)
        env_values = {
            DEFAULT_ROUTER_KEY_ENV: router_key,
            DEFAULT_CLOUD_KEY_ENV: r.litellm_key,
            DEFAULT_HASH_KEY_ENV: hash_key,
        }
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
            local_api=local_api,
            router_key_env=DEFAULT_ROUTER_KEY_ENV,
            litellm_key_env=DEFAULT_CLOUD_KEY_ENV,
            generated_at="the installer's last run",
        )
        p = self.paths
        files = [
            FileChange.of(p.env_file, self._env_bytes(env_values), 0o600, "env", "secrets", secret=True),
            FileChange.of(p.config_file, render.render_config(ri), 0o644, "config", "render"),
            FileChange.of(p.unit_file, render.render_unit(ri), 0o644, "unit", "render"),
            FileChange.of(p.launcher(ans.launcher_name), render.render_launcher(ri), 0o755, "launcher", "render"),
            # Deployed beside the venv it runs with, so undoing needs neither the checkout nor its libraries.
            FileChange.of(p.uninstall_script, deploy_mod.uninstall_script_source(), 0o755, "uninstaller", "deploy",
                          brief="a copy of the checkout's uninstall.py, to undo everything later"),
            FileChange.of(p.answers_file, answers_mod.dump_answers(ans), 0o644, "answers", "answers"),
        ]
        notes: list[str] = list(r.notes)
        launcher = files[3]
        if launcher.old is not None and str(launcher.path) not in self._owned_files():
            raise AnswersError([f"launcher_name: {launcher.path} exists and is not Switchyard's; choose another name"])
        dp = deploy_mod.plan(p.venv_dir, self.venv_mode)
        manager = systemd.user_manager_answers()
        # Only what the running proxy reads makes a restart worthwhile.
        changed = any(f.changed for f in files if f.role not in ("answers", "uninstaller")) or dp.needed
        running = self._service_running(manager, ans.port, router_key)
        action = "restart" if running and changed else ("none" if running else "start")
        restart = bool(ans.litellm_restart and ans.litellm_restart != "none")
        return Plan(
            files, patches, dp, env_values, router_key, manager, action, restart, ans.port, notes,
            local_api=local_api, local_api_why=local_api_why,
        )

    def local_dialect(self, r: Resolved) -> tuple[str, str]:
        """``local.api`` for the config: the user's answer, else what a one-token probe supports."""
        ans = r.ans
        if ans.local_api or r.local_caps.anthropic is False or not (ans.local_url and ans.local_model):
            return propose_local_api(r.local_caps, None, ans.local_api)
        probe = probes.local_messages_probe(ans.local_url, ans.local_model)
        return propose_local_api(r.local_caps, probe)

    @staticmethod
    def _env_bytes(values: dict[str, str]) -> bytes:
        try:
            return render_env(values)
        except EnvFileError as exc:
            raise AnswersError([str(exc)]) from None

    def _owned_files(self) -> set[str]:
        from installer import journal as journal_mod

        try:
            state = journal_mod.load(self.paths.journal_file)
        except (JournalError, ValueError):
            return set()
        return set(state["files_created"]) if state else set()

    def _service_running(self, manager: bool, port: int, key: str) -> bool:
        if manager:
            running = systemd.unit_state(UNIT_NAME).active == "active"
        else:
            running = pidfile.live_pid(self.paths.pidfile) is not None
        return running and probes.router_health(port, key).status == 200

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
        o.say(f"  Local dialect: local.api = {plan.local_api!r}: {plan.local_api_why}")
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
            o.say(f"  systemd user manager: {verb} {UNIT_NAME}")
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
        restarter = service_start.restart_waiter(url, after_command=lambda: _inject("litellm_restart_command"))
        # After a rollback LiteLLM must answer again before "Rolled back" (bounded).
        rollback_restarter = service_start.restart_waiter(url, ROLLBACK_LITELLM_WAIT_S)
        try:
            with signals.terminating_raises():
                self._apply_steps(r, plan, journal, restarter)
                deploy_mod.drop_previous(journal)
                journal.finish("complete")
        except (Exception, KeyboardInterrupt, Terminated) as exc:
            # First of all: a second signal must not abort the rollback.
            got, restore = signals.defer()
            signum = signals.signum_of(exc)
            if isinstance(exc, Terminated):
                why = f"terminated ({signal.Signals(exc.signum).name})"
            else:
                why = "interrupted" if signum is not None else str(exc)
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
            if signum is None and got:
                signum = got[0]  # a signal during a rollback that a failure started
            if signum is not None:
                signals.exit_by_signal(signum)
            raise SystemExit(EXIT_CANCELLED if isinstance(exc, StepDeclined) else 1) from None

    def _step(self, name: str, question: str, fn: Callable[[], None]) -> None:
        if not self.confirm(question):
            raise StepDeclined(name)
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
            journal.record(RestartLiteLLM(ans.litellm_restart))
            restarter(ans.litellm_restart)
            o.ok("LiteLLM restarted")
            self._prove_fix(r)

        if plan.yaml_changed and plan.restart_litellm:
            self._step("litellm_restart", f"Restart LiteLLM with `{ans.litellm_restart}`?", restart_step)
        else:
            if plan.yaml_changed:
                o.warn("restart LiteLLM yourself now: the new drop settings apply only after a restart")
            else:
                model = ans.cloud_simple_model or ""
                verdict = probes.fields_verdict(ans.litellm_url or "", r.litellm_key, model)
                if verdict.fields_blamed:
                    o.warn(f"LiteLLM still rejects a request carrying {', '.join(DROP_FIELDS)}; has it been "
                           "restarted since the config was patched?")
                elif not verdict.ok:
                    o.warn(prove_fix_failure(verdict, model, r.entries))
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
                deploy_mod.deploy(plan.deploy, journal, self.wheelhouse, progress=self._pip_line)
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

    def _pip_line(self, line: str) -> None:
        """pip's progress, as it comes: one dim line per step (its indented detail is left out)."""
        if line.strip() and not line.startswith(" "):
            self.out.say(f"    pip: {line[:150]}", dim=True)

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
        verdict = probes.fields_verdict(url, key, model)
        if verdict.ok:
            self.out.ok(f"a 1-token request to {model} carrying {', '.join(PROBE_FIELDS)} now succeeds")
            return
        raise StepFailed(prove_fix_failure(verdict, model, r.entries) +
                         " The config backup is restored and LiteLLM restarted again.")

    def _run_service(self, plan: Plan, journal: Journal) -> None:
        o = self.out
        unit = self.paths.unit_file.read_bytes()
        complaint = render.verify_unit(unit)
        if complaint:
            raise StepFailed(f"systemd-analyze verify rejects {self.paths.unit_file}: {complaint}")
        o.ok("systemd-analyze verify --user: unit is valid")
        port = plan.port
        if plan.manager:
            restart = plan.service_action == "restart"
            res = service_start.start_systemd(journal, self.paths, port, plan.router_key, restart)
            o.ok(res.message)
            linger = systemd.linger()
            if linger is False:
                o.warn(f"lingering is off: the service starts at your login, not at boot. For start at boot an "
                       f"administrator must run: loginctl enable-linger {getpass.getuser()}")
        else:
            o.warn("no systemd user manager answers here (container or CI?): the unit is written and verified, "
                   "and the proxy is started in the background instead (it will not start at boot)")
            res = service_start.start_background(journal, self.paths, port, plan.env_values, plan.router_key)
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


def run_classifier_check(config_file: Path, env_file: Path, out: Out) -> list[CaseResult]:
    """Run a few requests of ``switchyard classify --suite`` through the installed config: the same
    prompt, view, budget, timeout and local key the proxy uses.  Advisory: it reports, never fails
    the install (a model that gives no verdict still routes, to the cloud)."""
    from proxy.config import ConfigError, load_config, load_prompt
    from proxy.host.envfile import apply_env_file
    from proxy.ops import classify_suite as cs
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
@_flag("local_api", type=click.Choice(["openai", "anthropic", "auto"]),
       help="Dialect spoken to the local server (default: anthropic where a one-token /v1/messages works).")
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
        signals.exit_by_signal(signal.SIGINT)
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
            signals.exit_by_signal(signal.SIGINT)
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
