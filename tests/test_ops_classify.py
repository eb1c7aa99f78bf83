"""``switchyard classify``: the proxy's own classifier (prompt, parsing, budget) against a stand-in local server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from proxy.classifier import view_for_prompt
from proxy.classify_prompt import DEFAULT_PROMPT
from proxy.ops.classify_suite import COMPLEX_CASES, SIMPLE_CASES
from tests.conftest import UserPaths
from tests.standins import OpenAILocal
from tests.standins.openai_local import HTTPErrorReply
from tests.test_ops_support import run_cli, write_setup


@pytest.fixture
def local(user_paths: UserPaths) -> Iterator[OpenAILocal]:
    with OpenAILocal(models=("local-model",)) as srv:
        write_setup(user_paths, port=1, local_url=srv.v1_url)
        yield srv


def test_suite_is_big_enough() -> None:
    assert len(SIMPLE_CASES) >= 10 and len(COMPLEX_CASES) >= 10
    assert not set(SIMPLE_CASES) & set(COMPLEX_CASES)


def test_one_prompt_uses_the_proxys_prompt_view_and_budget(local: OpenAILocal) -> None:
    local.script_classifier("The user wants a new distributed design.\nLet me think.\nCOMPLEX")
    res = run_cli("classify", "Design a multi-region queue")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] == "COMPLEX"
    assert "last line: COMPLEX" in res.stdout
    [req] = [r for r in local.requests if r.tag == "classify"]
    body = req.json
    assert body["messages"][0] == {"role": "system", "content": DEFAULT_PROMPT}
    assert body["messages"][1]["content"] == view_for_prompt("Design a multi-region queue")
    assert body["max_tokens"] == 8192 and body["model"] == "local-model"


def test_no_verdict_is_flagged_and_fails(local: OpenAILocal) -> None:
    local.script_classifier("I would need more context to say.")
    res = run_cli("classify", "hmm")
    assert res.returncode == 1
    assert "NO VERDICT" in res.stdout and "empty: reply of 33 characters" in res.stdout
    assert "last line: I would need more context to say." in res.stdout


def test_a_server_error_is_reported(local: OpenAILocal) -> None:
    local.script_classifier(HTTPErrorReply(500))
    res = run_cli("classify", "rename x")
    assert res.returncode == 1
    assert "NO VERDICT" in res.stdout and "error: HTTP 500 from the local server" in res.stdout


def test_prompt_file_tries_an_edited_prompt(local: OpenAILocal, user_paths: UserPaths) -> None:
    edited = user_paths.home / "prompt.txt"
    edited.write_text("Edited prompt. Answer SIMPLE or COMPLEX on the last line.\n")
    local.script_classifier("SIMPLE")
    res = run_cli("classify", "--prompt-file", str(edited), "fix a typo")
    assert res.returncode == 0, res.stderr
    [req] = [r for r in local.requests if r.tag == "classify"]
    assert req.json["messages"][0]["content"] == edited.read_text()
    edited.write_text("  \n")
    res = run_cli("classify", "--prompt-file", str(edited), "fix a typo")
    assert res.returncode == 2 and "is empty" in res.stderr


def test_suite_reports_agreement(local: OpenAILocal) -> None:
    n_simple, n_complex = len(SIMPLE_CASES), len(COMPLEX_CASES)
    # Every easy request judged SIMPLE; the hard ones COMPLEX except one SIMPLE and one with no verdict.
    replies = ["SIMPLE"] * n_simple + ["COMPLEX"] * (n_complex - 2) + ["Looks easy.\nSIMPLE", "no idea"]
    local.script_classifier(*replies)
    res = run_cli("classify", "--suite", "--min-agreement", "90")
    total = n_simple + n_complex
    assert f"agreement {total - 2}/{total}" in res.stdout
    assert "NO VERDICT 1" in res.stdout
    assert res.stdout.count("✗ SIMPLE") == 1 and res.stdout.count("! NO VERDICT") == 1
    assert res.returncode == 0
    local.script_classifier(*replies)
    assert run_cli("classify", "--suite", "--min-agreement", "99").returncode == 1


def test_prompt_or_suite_is_required(user_paths: UserPaths) -> None:
    write_setup(user_paths, port=1)
    res = run_cli("classify")
    assert res.returncode == 2 and "give either a PROMPT or --suite" in res.stderr
