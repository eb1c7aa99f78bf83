"""The interactive questions (questionary), each validated against the live services when answered.

Every prompt uses ``unsafe_ask`` so Ctrl-C raises KeyboardInterrupt: nothing has been written while
questions are asked, so the caller just says "cancelled; nothing was changed".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import questionary

from installer import answers as answers_mod
from installer import detect, probes
from installer.answers import Answers
from installer.litellm_yaml import LiteLLMConfig, LiteLLMConfigError, load_litellm_config
from proxy.config import DEFAULT_ROUTER_KEY_ENV

if TYPE_CHECKING:
    from installer.cli import Installer, Resolved

OTHER = "Another path..."
CUSTOM = "A custom command..."
MYSELF = "I will restart it myself"


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


def ask_all(inst: Installer, ans: Answers) -> Resolved:
    from installer.cli import Resolved, chosen_entries, default_cloud_entries, existing_env, port_problem, probe_local

    # Local model server.
    while True:
        url = _text("Local model server URL", ans.local_url or "http://127.0.0.1:1234", "http://127.0.0.1:1234")
        try:
            local_models = probes.local_models(url)
            break
        except probes.ProbeError as exc:
            _say_problem(str(exc))
            ans.local_url = url
    ans.set("local_url", url, "prompt")
    model = _select("Local model (as the server reports it)", local_models, ans.local_model)
    ans.set("local_model", model, "prompt")
    # What the server can take: said now, so a server that would take none of Claude Code's requests
    # is fixed before the other questions (a "no" stops here, with nothing written).
    local_caps = probe_local(url, model)
    inst.show_local(local_caps, notes=False, context_tokens=ans.local_context_tokens or 0)
    inst.accept_local(local_caps, ans.local_context_tokens or 0)

    # LiteLLM.
    while True:
        url = _text("LiteLLM URL", ans.litellm_url or answers_mod.DEFAULT_LITELLM_URL, "http://127.0.0.1:4000")
        try:
            probes.litellm_live(url)
            break
        except probes.ProbeError as exc:
            _say_problem(str(exc))
            ans.litellm_url = url
    ans.set("litellm_url", url, "prompt")
    key_env = ans.litellm_key_env or answers_mod.DEFAULT_LITELLM_KEY_ENV
    key = os.environ.get(key_env, "")
    while True:
        if not key:
            key = str(questionary.password(f"LiteLLM key (hidden; or set {key_env})").unsafe_ask()).strip()
        else:
            questionary.print(f"  using the LiteLLM key from ${key_env}")
        try:
            cloud_models = probes.litellm_models(url, key)
            break
        except probes.ProbeError as exc:
            _say_problem(str(exc))
            key = ""
    simple = _select("Cloud model for the SIMPLE tier", cloud_models, ans.cloud_simple_model)
    ans.set("cloud_simple_model", simple, "prompt")
    ans.set("cloud_complex_model", _select("Cloud model for the COMPLEX tier", cloud_models,
                                           ans.cloud_complex_model or ans.cloud_simple_model), "prompt")

    # The LiteLLM config file.
    cfg: LiteLLMConfig
    while True:
        cands = [str(p) for p in detect.config_candidates(inst.paths.home, Path.cwd())]
        if ans.litellm_config and ans.litellm_config not in cands:
            cands.insert(0, ans.litellm_config)
        choice = _select("The LiteLLM config file", [*cands, OTHER], ans.litellm_config) if cands else OTHER
        if choice == OTHER:
            choice = _text("Path of the LiteLLM config", ans.litellm_config, "/home/you/litellm/config.yaml")
        path = str(Path(choice).expanduser().absolute())
        try:
            cfg = load_litellm_config(Path(path))
        except LiteLLMConfigError as exc:
            _say_problem(str(exc))
            continue
        ans.set("litellm_config", path, "prompt")
        break

    # Which entries get the drop list.
    while True:
        default = {e.model_name for e in default_cloud_entries(cfg, ans)}
        if ans.cloud_entries:
            default = set(ans.cloud_entries)
        names = [n for n in cfg.model_names() if n != ans.local_model]
        picked = questionary.checkbox(
            "Entries that get the drop list (reasoning, thinking, enable_thinking)",
            choices=[questionary.Choice(n, checked=n in default) for n in names],
        ).unsafe_ask()
        ans.set("cloud_entries", list(picked), "prompt")
        entries, problems = chosen_entries(cfg, ans)
        if not problems and entries:
            break
        for p in problems or ["choose at least one entry"]:
            _say_problem(p)

    # How LiteLLM is restarted.
    options = detect.restart_options()
    labels = [f"{label}: {cmd}" for label, cmd in options]
    current = ans.litellm_restart
    prev_label = None
    if current == "none":
        prev_label = MYSELF
    elif current:
        prev_label = next((lb for lb, (_l, c) in zip(labels, options, strict=True) if c == current), CUSTOM)
    choice = _select("How is LiteLLM restarted?", [*labels, CUSTOM, MYSELF], prev_label)
    if choice == MYSELF:
        restart = "none"
    elif choice == CUSTOM:
        while True:
            restart = _text("Command that restarts LiteLLM", current if current not in (None, "none") else "",
                            "docker restart litellm")
            if restart:
                break
            _say_problem("type a command, or choose 'I will restart it myself'")
    else:
        restart = options[labels.index(choice)][1]
    ans.set("litellm_restart", restart, "prompt")

    # Router port and launcher.
    router_key = existing_env(inst.paths).get(DEFAULT_ROUTER_KEY_ENV, "")
    while True:
        raw = _text("Router port", str(ans.port or answers_mod.DEFAULT_PORT), "3456")
        try:
            port = int(raw)
        except ValueError:
            _say_problem(f"{raw!r} is not a port number")
            continue
        msg = port_problem(port, inst.paths, router_key) if 1 <= port <= 65535 else "port must be 1-65535"
        if msg is None:
            break
        _say_problem(msg)
    ans.set("port", port, "prompt")
    while True:
        name = _text("Launcher name (in ~/.local/bin)", ans.launcher_name or answers_mod.DEFAULT_LAUNCHER,
                     "claude-routed")
        probe = answers_mod.replace(ans, launcher_name=name)
        problems = [p for p in answers_mod.static_problems(probe, require_all=False) if p.startswith("launcher")]
        if not problems:
            break
        _say_problem(problems[0])
    ans.set("launcher_name", name, "prompt")

    if confirm("Change the advanced settings (long-context threshold, classifier timeout and max tokens, "
               "local context)?", False):
        for key_name, question, example in (
            ("long_context_threshold", "Long-context threshold (tokens)", "60000"),
            ("classify_timeout_s", "Classifier timeout (seconds)", "15"),
            ("classify_max_tokens", "Classifier max tokens", "8192"),
            ("local_context_tokens", "Local context per request, if the server cannot say (0: ask it)", "0"),
        ):
            while True:
                raw = _text(question, str(ans.get(key_name)), example)
                try:
                    value: Any = answers_mod.coerce(key_name, raw)
                except ValueError as exc:
                    _say_problem(str(exc))
                    continue
                if value > 0 or (key_name == "local_context_tokens" and value == 0):
                    break
                _say_problem("must be greater than 0")
            ans.set(key_name, value, "prompt")
    return Resolved(ans, key, local_models, cloud_models, cfg, chosen_entries(cfg, ans)[0], local_caps)
