"""The installer's questions, as one validated list of objects (as copier's ``Question``).

Each :class:`Question` names its answer, its prompt and example, where its default comes from and
how its value is checked (format first, then against the live services, read-only).  The same list
drives both runs: :mod:`installer.prompts` asks each question until its check passes, and
:func:`resolve` (``--answers``/``--yes``) checks every answer given and reports all problems at
once.  A check records what it learns (the loaded models, the LiteLLM config, ...) in
:class:`Facts`, which later questions read: their choices, their defaults, their checks.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer import answers as answers_mod
from installer import detect, probes
from installer.answers import Answers, AnswersError
from installer.litellm_yaml import Entry, LiteLLMConfig, LiteLLMConfigError, entries_for_models, load_litellm_config
from proxy import local_advice
from proxy.capabilities import UNKNOWN as UNKNOWN_CAPS
from proxy.capabilities import LocalCapabilities, probe_url
from proxy.config import DEFAULT_ROUTER_KEY_ENV, LOCAL_APIS, LocalConfig
from proxy.host import pidfile
from proxy.host.envfile import read_env_file
from proxy.host.paths import Paths
from proxy.local_advice import Finding


class Problem(Exception):
    """An answer that does not pass its check; one line, without the answer's name."""


@dataclass
class Facts:
    """What the checks learned from the live services (read-only), for the later questions and the plan."""

    litellm_key: str = ""
    local_models: list[str] = field(default_factory=list)
    cloud_models: list[str] = field(default_factory=list)
    litellm_cfg: LiteLLMConfig | None = None
    entries: list[Entry] = field(default_factory=list)
    local_caps: LocalCapabilities = UNKNOWN_CAPS
    serving: detect.ServingConfig | None = None
    notes: list[str] = field(default_factory=list)  # warnings for the plan


@dataclass
class Run:
    """One run's answers, facts and surroundings: what a question's default, choices and check read."""

    paths: Paths
    ans: Answers
    facts: Facts = field(default_factory=Facts)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path = field(default_factory=Path.cwd)

    @property
    def key_env(self) -> str:
        return self.ans.litellm_key_env or answers_mod.DEFAULT_LITELLM_KEY_ENV


@dataclass(frozen=True)
class Question:
    name: str  # the Answers field (``litellm_key``: the secret, never an answer)
    prompt: str
    example: str
    # text, select (one of ``choices``), checkbox (several), secret (hidden), path (a choice or a typed path),
    # restart (a detected way to restart LiteLLM, a custom command, or none)
    kind: str
    default: Callable[[Run], Any]
    check: Callable[[Any, Run], None]  # raises Problem; records what it learns in run.facts
    choices: Callable[[Run], list[str]] | None = None
    needs: tuple[str, ...] = ()  # questions whose check must have passed first
    advanced: bool = False

    def value(self, run: Run) -> Any:
        if self.name == "litellm_key":
            return run.facts.litellm_key
        return run.ans.get(self.name)

    def accept(self, value: Any, run: Run, origin: str) -> None:
        """Check ``value`` (raises Problem) and, when it passes, keep it as the answer."""
        self.check(value, run)
        if self.name == "litellm_key":
            run.facts.litellm_key = value
        else:
            run.ans.set(self.name, value, origin)


# ---------------------------------------------------------------------------------------------
# checks shared with the rest of the installer


def static_problem(name: str, value: Any) -> str | None:
    """The format problem of one answer (no live service asked), from :func:`answers.static_problems`."""
    probe = Answers()
    setattr(probe, name, value)
    found = [p for p in answers_mod.static_problems(probe, require_all=False) if p.startswith(name)]
    return found[0] if found else None


def port_problem(port: int, paths: Paths, current_key: str) -> str | None:
    """Why the router cannot have ``port`` (None: free, or held by this Switchyard already)."""
    if probes.port_free(port):
        return None
    if pidfile.live_pid(paths.pidfile) is not None:
        return None
    if current_key and probes.router_health(port, current_key).status == 200:
        return None
    return f"port {port} is in use by another program; choose another port (--port)"


def existing_env(paths: Paths) -> dict[str, str]:
    return read_env_file(paths.env_file)


def probe_local(url: str, model: str) -> LocalCapabilities:
    """The local server's capabilities for ``model`` (bounded; never raises: unknown when it finds nothing)."""
    return asyncio.run(probe_url(probes.v1_base(url), model))


def local_findings(caps: LocalCapabilities, context_tokens: int = 0) -> list[Finding]:
    """The findings for the config the installer writes (its local.context_tokens, the default reserve)."""
    return local_advice.findings(caps, local_advice.reserve_for(LocalConfig()), context_tokens)


def default_cloud_entries(cfg: LiteLLMConfig, ans: Answers) -> list[Entry]:
    names = [n for n in (ans.cloud_simple_model, ans.cloud_complex_model) if n]
    return entries_for_models(cfg, names, exclude_api_base=ans.local_url or "")


def chosen_entries(cfg: LiteLLMConfig, ans: Answers) -> tuple[list[Entry], list[str]]:
    """The entries that get the drop list, and the problems with the choice (phrased without a prefix)."""
    if ans.cloud_entries:
        problems = [f"{n!r} is not a model_name in {cfg.main.path}" for n in ans.cloud_entries
                    if not entries_for_models(cfg, [n])]
        entries = entries_for_models(cfg, ans.cloud_entries)
        if ans.local_model and any(e.model_name == ans.local_model for e in entries):
            problems.append(f"{ans.local_model!r} is the local model; its entry never gets the drop list")
        return entries, problems
    entries = default_cloud_entries(cfg, ans)
    if not entries:
        return [], [
            f"no entry in {cfg.main.path} serves {ans.cloud_simple_model!r} or {ans.cloud_complex_model!r} "
            "(models added through the LiteLLM UI are not in the YAML); list them with cloud_entries"
        ]
    return entries, []


# ---------------------------------------------------------------------------------------------
# the questions' checks


def _format(name: str) -> Callable[[Any, Run], None]:
    def check(value: Any, run: Run) -> None:
        problem = static_problem(name, value)
        if problem:
            raise Problem(problem.removeprefix(f"{name} ").removeprefix(f"{name}: "))

    return check


def _probe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except probes.ProbeError as exc:
        raise Problem(str(exc)) from None


def _check_local_url(url: str, run: Run) -> None:
    _format("local_url")(url, run)
    run.facts.local_models = _probe(lambda: probes.local_models(url))


def _check_local_model(model: str, run: Run) -> None:
    loaded = run.facts.local_models
    if model not in loaded:
        raise Problem(f"{model!r} is not loaded on {run.ans.local_url} (loaded: {', '.join(loaded)})")
    run.facts.local_caps = probe_local(run.ans.local_url or "", model)


def _check_litellm_url(url: str, run: Run) -> None:
    _format("litellm_url")(url, run)
    _probe(lambda: probes.litellm_live(url))


def _check_litellm_key(key: str, run: Run) -> None:
    if not key:
        raise Problem(f"missing: set {run.key_env} in the environment")
    run.facts.cloud_models = _probe(lambda: probes.litellm_models(run.ans.litellm_url or "", key))


def _check_cloud_model(model: str, run: Run) -> None:
    have = run.facts.cloud_models
    if model not in have:
        raise Problem(f"LiteLLM does not expose {model!r} (it has: {', '.join(have)})")


def _serving(run: Run) -> detect.ServingConfig:
    if run.facts.serving is None:
        run.facts.serving = detect.config_serving(run.ans.litellm_url or "")
    return run.facts.serving


def _default_litellm_config(run: Run) -> str | None:
    """The config of the LiteLLM listening on the URL given, else the previous answer."""
    serving = _serving(run).path
    return str(serving) if serving is not None else run.ans.litellm_config


def _litellm_config_choices(run: Run) -> list[str]:
    cands = [str(p) for p in detect.config_candidates(run.paths.home, run.cwd, _serving(run).path)]
    if run.ans.litellm_config and run.ans.litellm_config not in cands:
        cands.append(run.ans.litellm_config)
    return cands


def _check_litellm_config(path: str, run: Run) -> None:
    _format("litellm_config")(path, run)
    serving = _serving(run)
    if serving.path is not None and Path(path).resolve() != serving.path.resolve():
        run.facts.notes.append(
            f"{path} is not the file the LiteLLM at {run.ans.litellm_url} runs with ({serving.reason} is "
            f"{serving.path}): the patch takes effect only once LiteLLM runs with {path}")
    try:
        run.facts.litellm_cfg = load_litellm_config(Path(path))
    except LiteLLMConfigError as exc:
        raise Problem(str(exc)) from None


def _default_entries(run: Run) -> list[str]:
    if run.ans.cloud_entries:
        return list(run.ans.cloud_entries)
    cfg = run.facts.litellm_cfg
    return [e.model_name for e in default_cloud_entries(cfg, run.ans)] if cfg is not None else []


def _entry_choices(run: Run) -> list[str]:
    cfg = run.facts.litellm_cfg
    return [n for n in cfg.model_names() if n != run.ans.local_model] if cfg is not None else []


def _check_entries(names: list[str] | None, run: Run) -> None:
    cfg = run.facts.litellm_cfg
    assert cfg is not None  # needs litellm_config
    probe = answers_mod.replace(run.ans, cloud_entries=names)
    entries, problems = chosen_entries(cfg, probe)
    if problems:
        raise Problem("; ".join(problems))
    if not entries:
        raise Problem("choose at least one entry")
    run.facts.entries = entries


def _check_restart(command: str, run: Run) -> None:
    if not command:
        raise Problem("type a command, or choose 'I will restart it myself' (none)")


def _check_port(port: int, run: Run) -> None:
    _format("port")(port, run)
    problem = port_problem(port, run.paths, existing_env(run.paths).get(DEFAULT_ROUTER_KEY_ENV, ""))
    if problem:
        raise Problem(problem)


def _check_positive(name: str, zero_ok: bool = False) -> Callable[[Any, Run], None]:
    def check(value: Any, run: Run) -> None:
        _format(name)(value, run)
        if not (value > 0 or (zero_ok and value == 0)):
            raise Problem("must be greater than 0" if not zero_ok else "must be 0 (ask the server) or more")

    return check


def _previous_or(name: str, fallback: Any) -> Callable[[Run], Any]:
    return lambda run: run.ans.get(name) if run.ans.get(name) is not None else fallback


QUESTIONS: tuple[Question, ...] = (
    Question("local_url", "Local model server URL", "http://127.0.0.1:1234", "text",
             _previous_or("local_url", "http://127.0.0.1:1234"), _check_local_url),
    Question("local_model", "Local model (as the server reports it)", "qwen3-coder", "select",
             _previous_or("local_model", None), _check_local_model,
             choices=lambda run: run.facts.local_models, needs=("local_url",)),
    Question("litellm_url", "LiteLLM URL", "http://127.0.0.1:4000", "text",
             _previous_or("litellm_url", answers_mod.DEFAULT_LITELLM_URL), _check_litellm_url),
    Question("litellm_key", "LiteLLM key", "sk-...", "secret",
             lambda run: run.environ.get(run.key_env, ""), _check_litellm_key, needs=("litellm_url",)),
    Question("cloud_simple_model", "Cloud model for the SIMPLE tier", "claude-haiku", "select",
             _previous_or("cloud_simple_model", None), _check_cloud_model,
             choices=lambda run: run.facts.cloud_models, needs=("litellm_key",)),
    Question("cloud_complex_model", "Cloud model for the COMPLEX tier", "claude-sonnet", "select",
             lambda run: run.ans.cloud_complex_model or run.ans.cloud_simple_model, _check_cloud_model,
             choices=lambda run: run.facts.cloud_models, needs=("litellm_key",)),
    Question("litellm_config", "The LiteLLM config file", "/home/you/litellm/config.yaml", "path",
             _default_litellm_config, _check_litellm_config, choices=_litellm_config_choices,
             needs=("litellm_url",)),
    Question("cloud_entries", "Entries that get the drop list (reasoning, thinking, enable_thinking)",
             "cloud-simple,cloud-complex", "checkbox", _default_entries, _check_entries, choices=_entry_choices,
             needs=("litellm_config",)),
    Question("litellm_restart", "How is LiteLLM restarted?", "docker restart litellm", "restart",
             _previous_or("litellm_restart", None), _check_restart),
    Question("port", "Router port", "3456", "text", _previous_or("port", answers_mod.DEFAULT_PORT), _check_port),
    Question("launcher_name", "Launcher name (in ~/.local/bin)", "claude-routed", "text",
             _previous_or("launcher_name", answers_mod.DEFAULT_LAUNCHER), _format("launcher_name")),
    Question("long_context_threshold", "Long-context threshold (tokens)", "60000", "text",
             _previous_or("long_context_threshold", answers_mod.DEFAULT_LONG_CONTEXT),
             _check_positive("long_context_threshold"), advanced=True),
    Question("classify_timeout_s", "Classifier timeout (seconds)", "15", "text",
             _previous_or("classify_timeout_s", answers_mod.DEFAULT_CLASSIFY_TIMEOUT),
             _check_positive("classify_timeout_s"), advanced=True),
    Question("classify_max_tokens", "Classifier max tokens", "8192", "text",
             _previous_or("classify_max_tokens", answers_mod.DEFAULT_CLASSIFY_MAX_TOKENS),
             _check_positive("classify_max_tokens"), advanced=True),
    Question("local_context_tokens", "Local context per request, if the server cannot say (0: ask it)", "0",
             "text", _previous_or("local_context_tokens", 0), _check_positive("local_context_tokens", zero_ok=True),
             advanced=True),
    # Unanswered (None), a one-token /v1/messages probe proposes it in the plan (installer.dialect).
    Question("local_api", "Dialect spoken to the local server (auto: anthropic where the server has /v1/messages)",
             "auto", "select", _previous_or("local_api", "auto"), _format("local_api"),
             choices=lambda run: list(LOCAL_APIS), advanced=True),
)
BY_NAME = {q.name: q for q in QUESTIONS}


# ---------------------------------------------------------------------------------------------
# the non-interactive run


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
    notes: list[str] = field(default_factory=list)

    @property
    def local_findings(self) -> list[Finding]:
        return local_findings(self.local_caps, self.ans.local_context_tokens or 0)


def resolved(run: Run) -> Resolved:
    f = run.facts
    assert f.litellm_cfg is not None
    return Resolved(run.ans, f.litellm_key, f.local_models, f.cloud_models, f.litellm_cfg, f.entries, f.local_caps,
                    list(dict.fromkeys(f.notes)))


def resolve(run: Run) -> Resolved:
    """``--answers``/``--yes``: every answer through its question's check; all problems at once (AnswersError)."""
    problems = answers_mod.static_problems(run.ans, require_all=True)
    failed = {p.split(" ", 1)[0].rstrip(":") for p in problems}
    run.facts.litellm_key = BY_NAME["litellm_key"].default(run)
    for q in QUESTIONS:
        if q.name in failed or any(n in failed for n in q.needs):
            failed.add(q.name)
            continue
        value = q.value(run)
        if q.name == "litellm_config" and not value:
            # No answer: the config of the LiteLLM at the URL, or stop with the reason it is not known.
            serving = _serving(run)
            if serving.path is None:
                problems.append(f"litellm_config is missing and cannot be found: {serving.reason}; "
                                "pass --litellm-config")
                failed.add(q.name)
                continue
            value = str(serving.path)
            run.ans.set(q.name, value, "the LiteLLM at litellm_url")
        if value is None and q.name != "cloud_entries":
            continue
        try:
            q.check(value, run)
        except Problem as exc:
            problems.append(f"{q.name}: {exc}")
            failed.add(q.name)
    if problems:
        raise AnswersError(problems)
    return resolved(run)
