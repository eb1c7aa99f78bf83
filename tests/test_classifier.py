from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from proxy.classifier import DEFAULT_PROMPT, classify, compact_view, last_line, parse_verdict, view_for_prompt
from proxy.conversation import extract_facts
from proxy.routing import Classification
from tests.proxy_harness import make_config
from tests.standins import OpenAILocal
from tests.standins.openai_local import HTTPErrorReply, StallReply


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("SIMPLE", "SIMPLE"),
        ("complex\n", "COMPLEX"),
        ("The user wants a one-line fix. This is simple.\n\nSIMPLE", "SIMPLE"),
        ("Could be COMPLEX given the refactor... but it is one file.\nSIMPLE.", "SIMPLE"),
        ("<think>Maybe SIMPLE? No: it spans services and needs a migration plan.</think>\nCOMPLEX", "COMPLEX"),
        ("**Verdict:** COMPLEX", "COMPLEX"),
        ("Answer: `SIMPLE`", "SIMPLE"),
        ("COMPLEX\n(the edit itself is simple)", "COMPLEX"),
        ("I think this one is simple enough", "SIMPLE"),
        ("It is hard to say.", None),
        ("", None),
        ("SIMPLER tasks are SIMPLEST", None),
    ],
)
def test_parse_verdict(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


def test_last_line() -> None:
    assert last_line("a\nb\n\n  SIMPLE  \n\n") == "SIMPLE"
    assert last_line("") == ""


def test_prompt_is_biased_to_simple_and_asks_for_last_line() -> None:
    assert "Default to SIMPLE" in DEFAULT_PROMPT
    assert "last line" in DEFAULT_PROMPT


def test_compact_view_shows_latest_first_and_counts_not_context() -> None:
    tool_result = {"type": "tool_result", "tool_use_id": "t", "content": "SECRET FILE CONTENTS " * 500}
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "build a todo app"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Read", "input": {}}]},
            {"role": "user", "content": [tool_result]},
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": "<system-reminder>noise</system-reminder>now add a due-date field"},
        ],
    }
    view = compact_view(extract_facts(body, {}, 12345))
    assert "now add a due-date field" in view
    assert "build a todo app" in view
    assert "2 user turn(s), 1 tool call(s)" in view
    assert "SECRET FILE CONTENTS" not in view and "noise" not in view
    assert len(view) < 1000
    assert "hello" in view_for_prompt("hello")


async def _classify(url: str, tmp_path: Path, timeout: float = 5.0) -> Classification:
    cfg = make_config(tmp_path, local_url=url, routing={"classify_timeout_s": timeout})
    async with aiohttp.ClientSession() as s:
        return await classify(s, cfg.local, cfg.routing, DEFAULT_PROMPT, view_for_prompt("fix typo"), "")


async def test_classify_against_a_local_server(tmp_path: Path) -> None:
    with OpenAILocal() as srv:
        srv.script_classifier("Tiny edit.\nSIMPLE", "Needs design.\nCOMPLEX", HTTPErrorReply(500), "no idea")
        ok = await _classify(srv.v1_url, tmp_path)
        assert (ok.verdict, ok.mode, ok.last_line) == ("SIMPLE", "ok", "SIMPLE")
        hard = await _classify(srv.v1_url, tmp_path)
        assert (hard.verdict, hard.mode) == ("COMPLEX", "ok")
        err = await _classify(srv.v1_url, tmp_path)
        assert (err.verdict, err.mode) == (None, "error") and "500" in (err.detail or "")
        empty = await _classify(srv.v1_url, tmp_path)
        assert (empty.mode, empty.detail) == ("empty", "reply of 7 characters")
        req = srv.requests_tagged("classify")[0].json
        assert req["max_tokens"] == 8192 and req["stream"] is False
        assert req["messages"][0]["content"] == DEFAULT_PROMPT


async def test_classify_timeout_and_connection_error(tmp_path: Path) -> None:
    with OpenAILocal() as srv:
        srv.script_classifier(StallReply(None))
        url = srv.v1_url
        res = await _classify(url, tmp_path, timeout=0.3)
        assert res.mode == "timeout" and res.verdict is None
    res = await _classify(url, tmp_path)  # server stopped: connection refused
    assert res.mode == "error" and "Connect" in (res.detail or "")
