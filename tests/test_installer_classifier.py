"""The installer's classifier check (step 7): the code of ``switchyard classify --suite`` on a few of
its requests, through the installed config and env file, against a stand-in local server.

It used to format a field ``Classification`` does not have, so the first request without a verdict
raised inside ``apply`` and rolled back a finished install."""

from __future__ import annotations

from pathlib import Path

import pytest

from installer.cli import Out, run_classifier_check
from proxy.classifier import view_for_prompt
from proxy.classify_prompt import DEFAULT_PROMPT
from proxy.ops import classify_suite as cs
from tests.conftest import UserPaths
from tests.standins import OpenAILocal
from tests.standins.openai_local import StallReply
from tests.test_ops_support import write_setup

LOCAL_KEY = "local-key-not-to-be-printed"


def _setup(user_paths: UserPaths, srv: OpenAILocal, routing_extra: str = "") -> tuple[Path, Path]:
    extra = 'key_env = "SWITCHYARD_LOCAL_KEY"'
    config = write_setup(user_paths, port=1, local_url=srv.v1_url, routing_extra=routing_extra)
    text = config.read_text().replace('model = "local-model"\n', f'model = "local-model"\n{extra}\n', 1)
    config.write_text(text)
    env = config.parent / "env"
    env.write_text(env.read_text() + f"SWITCHYARD_LOCAL_KEY={LOCAL_KEY}\n")
    return config, env


def test_the_check_prompts_are_the_suites() -> None:
    suite = {(c.prompt, c.expected) for c in cs.suite()}
    checks = cs.check_cases()
    assert {c.expected for c in checks} == {"SIMPLE", "COMPLEX"}
    assert all((c.prompt, c.expected) in suite for c in checks)


def test_verdicts_a_false_local_and_no_verdict(user_paths: UserPaths, capsys: pytest.CaptureFixture[str]) -> None:
    with OpenAILocal() as srv:
        config, env = _setup(user_paths, srv)
        # easy → SIMPLE (fine), easy → no verdict, hard → SIMPLE (a false local)
        srv.script_classifier("One file.\nSIMPLE", "I cannot tell without more context.", "Looks small.\nSIMPLE")
        outcomes = run_classifier_check(config, env, Out(False))
        reqs = srv.requests_tagged("classify")
    out = capsys.readouterr().out
    assert [o.result.mode for o in outcomes] == ["ok", "empty", "ok"]
    lines = out.splitlines()
    assert any(ln.startswith("  ✓ [easy] SIMPLE in ") for ln in lines)
    assert "no verdict (empty: reply of 35 characters)" in out
    assert "classify-empty" in out
    assert "a hard request judged SIMPLE (a false local)" in out
    assert "routing.classifier_prompt_file" in out and "switchyard classify --suite --prompt-file" in out
    # The same view, prompt and key as `switchyard classify` (and the proxy).
    assert [r.json["messages"][1]["content"] for r in reqs] == [view_for_prompt(c.prompt) for c in cs.check_cases()]
    assert all(r.json["messages"][0]["content"] == DEFAULT_PROMPT for r in reqs)
    assert all(r.header("Authorization") == f"Bearer {LOCAL_KEY}" for r in reqs)
    assert LOCAL_KEY not in out


def test_a_timeout_is_explained(user_paths: UserPaths, capsys: pytest.CaptureFixture[str]) -> None:
    with OpenAILocal() as srv:
        config, env = _setup(user_paths, srv)
        text = config.read_text().replace("classify_timeout_s = 5.0", "classify_timeout_s = 0.3")
        config.write_text(text)
        srv.script_classifier(StallReply(None), "SIMPLE", "COMPLEX")
        outcomes = run_classifier_check(config, env, Out(False))
    out = capsys.readouterr().out
    assert [o.result.mode for o in outcomes] == ["timeout", "ok", "ok"]
    assert "no verdict within 0.3 s (classify-timeout)" in out
    assert "routing.classify_timeout_s" in out


def test_a_broken_config_skips_the_check(user_paths: UserPaths, capsys: pytest.CaptureFixture[str]) -> None:
    with OpenAILocal() as srv:
        config, env = _setup(user_paths, srv)
        config.write_text(config.read_text() + "\n[nonsense]\nx = 1\n")
        assert run_classifier_check(config, env, Out(False)) == []
        assert srv.requests_tagged("classify") == []
    assert "classifier check skipped" in capsys.readouterr().out
