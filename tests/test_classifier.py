from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from proxy.capabilities import LocalCapabilities
from proxy.classifier import (
    BRIEF_BUDGET,
    VerdictReader,
    classify,
    classify_budget,
    compact_view,
    last_line,
    parse_verdict,
    view_for_prompt,
)
from proxy.classify_prompt import DEFAULT_PROMPT
from proxy.config import RoutingConfig
from proxy.conversation import extract_facts
from proxy.routing import Classification
from tests.proxy_harness import ProxyThread, make_config, messages_body
from tests.standins import AnthropicUpstream, OllamaLocal, OpenAILocal
from tests.standins.anthropic_upstream import Fault, RawReply, Reply, TextBlock, ThinkingBlock, stream_events
from tests.standins.openai_local import EndlessReply, GarbageReply, HTTPErrorReply, StallReply


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


async def _classify(url: str, tmp_path: Path, timeout: float = 5.0, **kw: Any) -> Classification:
    cfg = make_config(tmp_path, local_url=url, routing={"classify_timeout_s": timeout})
    async with aiohttp.ClientSession() as s:
        return await classify(s, cfg.local, cfg.routing, DEFAULT_PROMPT, view_for_prompt("fix typo"), "", **kw)


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
        assert req["max_tokens"] == 8192 and req["stream"] is True
        assert req["messages"][0]["content"] == DEFAULT_PROMPT


async def test_classify_timeout_and_connection_error(tmp_path: Path) -> None:
    with OpenAILocal() as srv:
        srv.script_classifier(StallReply(None))
        url = srv.v1_url
        res = await _classify(url, tmp_path, timeout=0.3)
        assert res.mode == "timeout" and res.verdict is None
    res = await _classify(url, tmp_path)  # server stopped: connection refused
    assert res.mode == "error" and "Connect" in (res.detail or "")


def _read(pieces: list[str]) -> tuple[str | None, str | None, str]:
    reader = VerdictReader()
    for piece in pieces:
        reader.feed(piece)
    return reader.settled, reader.verdict(), reader.reply


@pytest.mark.parametrize(
    ("pieces", "settled", "verdict"),
    [
        # A bare verdict line settles at once, whatever follows.
        (["Tiny edit.\nSIM", "PLE\n", "Now let me also think about COMPLEX things"], "SIMPLE", "SIMPLE"),
        (["**Verdict:** complex\n"], "COMPLEX", "COMPLEX"),
        # The last line without a newline is not settled while streaming, but decides at the end.
        (["It is one file.\nSIMPLE"], None, "SIMPLE"),
        # A verdict inside a reasoning block does not count, even when the tags are split.
        (["<thi", "nk>SIMPLE\nor is it?\n</th", "ink>\nCOMPLEX\n"], "COMPLEX", "COMPLEX"),
        # Cut off inside <think>: no conclusion, no verdict.
        (["<think>\nSIMPLE\nhmm, the user wants"], None, None),
        # A template that opens the think block itself leaves only the closing tag.
        (["SIMPLE? maybe\n</think>\nIt needs a design.\nCOMPLEX"], None, "COMPLEX"),
        (["The word SIMPLE appears mid-sentence and so does COMPLEX\nmore"], None, "COMPLEX"),
        (["SIMPLER\n", "no idea\n"], None, None),
    ],
)
def test_verdict_reader(pieces: list[str], settled: str | None, verdict: str | None) -> None:
    got_settled, got_verdict, _ = _read(pieces)
    assert (got_settled, got_verdict) == (settled, verdict)


def test_the_whole_reply_can_overturn_an_early_verdict() -> None:
    reader = VerdictReader()
    reader.feed("SIMPLE\nOn reflection it spans services.\nCOMPLEX")
    assert (reader.verdict(early=True), reader.verdict(early=False)) == ("SIMPLE", "COMPLEX")


def test_verdict_reader_agrees_with_parse_verdict_on_whole_replies() -> None:
    for reply in ("SIMPLE", "The user wants X.\n\nCOMPLEX", "<think>COMPLEX</think>\nSIMPLE", "no idea", ""):
        assert _read([reply])[1] == parse_verdict(reply.split("</think>")[-1])


def test_budget_follows_what_the_probe_knows() -> None:
    routing = RoutingConfig(classify_max_tokens=8192)
    assert classify_budget(routing, None) == 8192
    assert classify_budget(routing, LocalCapabilities(kind="llama.cpp", reasoning=True)) == 8192
    assert classify_budget(routing, LocalCapabilities(kind="llama.cpp", reasoning=False)) == BRIEF_BUDGET
    assert classify_budget(RoutingConfig(classify_max_tokens=100), LocalCapabilities(reasoning=False)) == 100


async def test_a_verdict_then_endless_talk_is_cut_early(tmp_path: Path) -> None:
    with OpenAILocal() as srv:
        srv.script_classifier(EndlessReply("One-line fix.\nSIMPLE\n"))
        # The stand-in never finishes: only hanging up on the settled verdict gets an answer in time.
        res = await _classify(srv.v1_url, tmp_path, timeout=30, max_tokens=64)
        assert (res.verdict, res.mode, res.last_line) == ("SIMPLE", "ok", "SIMPLE")
        assert len(srv.wait_for_hangups(1)) == 1
        req = srv.requests_tagged("classify")[0].json
        assert req["stream"] is True and req["max_tokens"] == 64


async def test_waiting_for_the_whole_reply_is_the_other_way(tmp_path: Path) -> None:
    with OpenAILocal() as srv:
        srv.script_classifier(EndlessReply("One-line fix.\nSIMPLE\n"))
        res = await _classify(srv.v1_url, tmp_path, timeout=0.5, early_stop=False)
        assert (res.verdict, res.mode) == (None, "timeout")
        assert res.last_line.startswith("and then some more words")


async def test_reasoning_then_verdict(tmp_path: Path) -> None:
    with OpenAILocal() as srv:
        # reasoning_content is the model's thinking, never its answer; an inline block is dropped too.
        srv.script_classifier(
            EndlessReply("<think>COMPLEX\nno...\n</think>\nSIMPLE\n", reasoning="It spans services.\nCOMPLEX\n")
        )
        res = await _classify(srv.v1_url, tmp_path, timeout=30)
        assert (res.verdict, res.mode) == ("SIMPLE", "ok")
        srv.wait_for_hangups(1)


async def test_endless_talk_without_a_verdict_times_out(tmp_path: Path) -> None:
    with OpenAILocal() as srv:
        srv.script_classifier(EndlessReply("Let me think about this request"), GarbageReply())
        res = await _classify(srv.v1_url, tmp_path, timeout=0.5)
        assert (res.verdict, res.mode) == (None, "timeout")
        assert "Let me think" in res.last_line
        garbage = await _classify(srv.v1_url, tmp_path)
        assert (garbage.verdict, garbage.mode) in ((None, "empty"), (None, "error"))


def _anthropic_stall_after_verdict(thinking: str, text: str, verdict_line: str) -> RawReply:
    """Anthropic SSE for a thinking block and a text block, stalled (forever) right after ``verdict_line``."""
    frames = stream_events(Reply(content=(ThinkingBlock(thinking), TextBlock(text)), chunk_chars=5), "m")
    sent, seen = 0, ""
    for frame in frames:
        sent += len(frame)
        for line in frame.decode().splitlines():
            if line.startswith("data: "):
                delta = json.loads(line[6:]).get("delta") or {}
                seen += delta.get("text", "") if delta.get("type") == "text_delta" else ""
        if verdict_line + "\n" in seen:
            break
    return RawReply(b"".join(frames), fault=Fault(stall_at=sent))


async def test_anthropic_dialect_reads_text_deltas_and_hangs_up(tmp_path: Path) -> None:
    with AnthropicUpstream() as up:
        text = "It spans three services.\nCOMPLEX\nmore"
        up.script(_anthropic_stall_after_verdict("SIMPLE\nsurely?\n", text, "COMPLEX"))
        # base_url as configs have it (…/v1): the server's own /v1/messages is beside /chat/completions.
        res = await _classify(f"{up.url}/v1", tmp_path, timeout=30, dialect="anthropic", max_tokens=99)
        assert (res.verdict, res.mode) == ("COMPLEX", "ok")
        assert len(up.wait_for_disconnects(1)) == 1
        [req] = up.requests_tagged("messages")
        assert req.json["system"] == DEFAULT_PROMPT and req.json["stream"] is True
        assert req.json["max_tokens"] == 99 and req.json["messages"][0]["role"] == "user"
        up.script(Reply(content=(ThinkingBlock("COMPLEX"), TextBlock("Hard to say."))))
        empty = await _classify(f"{up.url}/v1", tmp_path, dialect="anthropic")
        assert (empty.verdict, empty.mode, empty.detail) == (None, "empty", "reply of 12 characters")


async def test_unknown_dialect_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown classifier dialect"):
        await _classify("http://127.0.0.1:1/v1", tmp_path, dialect="grpc")


async def test_a_server_that_ignores_stream_true_is_still_read(tmp_path: Path) -> None:
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Small.\nSIMPLE"}}]}
    with OpenAILocal() as srv:
        srv.script_classifier(GarbageReply(json.dumps(completion).encode(), content_type="application/json"))
        res = await _classify(srv.v1_url, tmp_path)
        assert (res.verdict, res.mode, res.last_line) == ("SIMPLE", "ok", "SIMPLE")
    message = {"type": "message", "content": [{"type": "thinking", "thinking": "SIMPLE"},
                                              {"type": "text", "text": "Spans services.\nCOMPLEX"}]}
    with AnthropicUpstream() as up:
        up.script(RawReply(json.dumps(message).encode(), content_type="application/json"))
        res = await _classify(f"{up.url}/v1", tmp_path, dialect="anthropic")
        assert (res.verdict, res.mode) == ("COMPLEX", "ok")


@pytest.mark.parametrize(("capabilities", "budget"), [(("completion", "tools"), BRIEF_BUDGET),
                                                      (("completion", "tools", "thinking"), 8192)])
def test_the_proxy_classifies_with_the_budget_the_probe_allows(
    tmp_path: Path, upstream: AnthropicUpstream, capabilities: tuple[str, ...], budget: int
) -> None:
    with OllamaLocal(models=("qwen3",), capabilities=capabilities, loaded=True, context_length=65536) as srv:
        srv.script_classifier(EndlessReply("A rename.\nSIMPLE\n"))
        cfg = make_config(tmp_path, local_url=srv.v1_url, cloud_url=upstream.url, local={"model": "qwen3"},
                          routing={"classify_timeout_s": 30.0})
        with ProxyThread(cfg) as proxy:
            r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body("rename x to y"))
            assert r.status_code == 200
            [rec] = proxy.decisions(1)
        [req] = srv.requests_tagged("classify")
        assert (req.json["max_tokens"], req.json["stream"]) == (budget, True)
        # Cut early on its verdict (the stand-in never ends on its own), then answered locally.
        assert (rec["reason"], rec["verdict"], rec["route"]) == ("classified", "SIMPLE", "local")
        assert len(srv.wait_for_hangups(1)) == 1
