"""The interactive run: each question of :mod:`installer.questions` asked (questionary) until its check passes.

Every prompt uses ``unsafe_ask`` so Ctrl-C raises KeyboardInterrupt: nothing has been written while
questions are asked, so the caller just says "cancelled; nothing was changed".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import questionary

from installer import answers as answers_mod
from installer import detect
from installer.questions import QUESTIONS, Problem, Question, Resolved, Run, resolved
from proxy.capabilities import LocalCapabilities

OTHER = "Another path..."
CUSTOM = "A custom command..."
MYSELF = "I will restart it myself"
ADVANCED = ("Change the advanced settings (long-context threshold, classifier timeout and max tokens, "
            "local context, local dialect)?")


def confirm(question: str, default: bool = True) -> bool:
    return bool(questionary.confirm(question, default=default).unsafe_ask())


def _text(question: str, default: str | None, example: str) -> str:
    msg = f"{question} (e.g. {example})"
    return str(questionary.text(msg, default=default or "").unsafe_ask()).strip()


def _select(question: str, choices: list[str], default: str | None) -> str:
    d = default if default in choices else None
    return str(questionary.select(question, choices=choices, default=d).unsafe_ask())


def _say_problem(text: str) -> None:
    questionary.print(f"  ✗ {text}", style="fg:ansired")


def _restart(q: Question, run: Run, default: Any) -> str:
    options = detect.restart_options()
    labels = [f"{label}: {cmd}" for label, cmd in options]
    prev = None
    if default == "none":
        prev = MYSELF
    elif default:
        prev = next((lb for lb, (_l, c) in zip(labels, options, strict=True) if c == default), CUSTOM)
    choice = _select(q.prompt, [*labels, CUSTOM, MYSELF], prev)
    if choice == MYSELF:
        return "none"
    if choice == CUSTOM:
        return _text("Command that restarts LiteLLM", default if default not in (None, "none") else "", q.example)
    return options[labels.index(choice)][1]


def _path(q: Question, run: Run, default: Any) -> str:
    cands = q.choices(run) if q.choices is not None else []
    choice = _select(q.prompt, [*cands, OTHER], default) if cands else OTHER
    if choice == OTHER:
        choice = _text("Path of the LiteLLM config", default, q.example)
    return str(Path(choice).expanduser().absolute())


def _widget(q: Question, run: Run, default: Any, retry: bool) -> Any:
    """Ask ``q`` once; the raw answer, coerced to the answer's type."""
    if q.kind == "secret":
        if default and not retry:
            questionary.print(f"  using the LiteLLM key from ${run.key_env}")
            return default
        return str(questionary.password(f"{q.prompt} (hidden; or set {run.key_env})").unsafe_ask()).strip()
    if q.kind == "select":
        return _select(q.prompt, q.choices(run) if q.choices is not None else [], default)
    if q.kind == "checkbox":
        names = q.choices(run) if q.choices is not None else []
        picked = questionary.checkbox(q.prompt, choices=[questionary.Choice(n, checked=n in (default or []))
                                                         for n in names]).unsafe_ask()
        return list(picked)
    if q.kind == "path":
        return _path(q, run, default)
    if q.kind == "restart":
        return _restart(q, run, default)
    raw = _text(q.prompt, "" if default is None else str(default), q.example)
    try:
        return answers_mod.coerce(q.name, raw)
    except ValueError as exc:
        raise Problem(str(exc)) from None


def ask(q: Question, run: Run) -> None:
    """Ask until the answer passes the question's check; then it is the run's answer."""
    default = q.default(run)
    retry = False
    while True:
        try:
            value = _widget(q, run, default, retry)
            q.accept(value, run, "prompt")
            return
        except Problem as exc:
            _say_problem(str(exc))
            retry = True
            if q.kind == "text" and "value" in locals():
                default = value  # offer what was typed, to correct it


def ask_all(run: Run, on_local_caps: Callable[[LocalCapabilities], None]) -> Resolved:
    """Every question, in order; ``on_local_caps`` shows (and may stop at) what the local server can take."""
    advanced: bool | None = None
    for q in QUESTIONS:
        if q.advanced:
            if advanced is None:
                advanced = confirm(ADVANCED, False)
            if not advanced:
                continue
        ask(q, run)
        if q.name == "local_model":
            # Said now, so a server that would take none of Claude Code's requests is fixed before the
            # other questions (a "no" stops here, with nothing written).
            on_local_caps(run.facts.local_caps)
    return resolved(run)
