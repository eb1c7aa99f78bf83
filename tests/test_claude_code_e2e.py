"""The real Claude Code CLI (npm @anthropic-ai/claude-code, pinned by .ci/run) through Switchyard.

Claude Code runs headless against Switchyard, which routes to a stand-in local model server; the
agent loop must work end to end: a tool call is executed by Claude Code, its result comes back, and
the final text is printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.claude_cli import run_claude
from tests.conftest import LiteLLMCloud
from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config
from tests.standins import OpenAILocal
from tests.standins.anthropic_upstream import text_reply, tool_use_reply
from tests.standins.base import RecordedRequest
from tests.standins.openai_local import ChunkReply, HTTPErrorReply, chat_chunks

pytestmark = pytest.mark.claude_cli

CONTENT = "Hello from the local model!\nSecond line.\n"


def has_tool_result(rec: RecordedRequest) -> bool:
    return any(m.get("role") == "tool" for m in (rec.json or {}).get("messages", []))


def write_call_chunks(
    path: Path, *, text_before: str | None = None, text_after: str | None = None
) -> list[dict[str, Any]]:
    """One streamed answer: optional text, a Write tool call, optional text after the call."""
    args = json.dumps({"file_path": str(path), "content": CONTENT})
    base = chat_chunks(text=None, tool_calls=[("Write", args)], usage=(100, 30))
    role, calls, finish, usage = base[0], base[1:-2], base[-2], base[-1]
    out = [role]
    if text_before:
        out += chat_chunks(text=text_before, finish_reason=None, usage=None)[1:]
    out += calls
    if text_after:
        # The shape that breaks other routers: text after the tool call, in the same response.
        out += chat_chunks(text=text_after, finish_reason=None, usage=None)[1:]
    return [*out, finish, usage]


def run(claude_bin: str, proxy: ProxyThread, project: Path, prompt: str) -> Any:
    return run_claude(claude_bin, prompt, base_url=proxy.url, api_key=ROUTER_KEY, cwd=project, timeout=180)


def test_scenario_1_write_then_text_all_local(
    claude_bin: str, tmp_path: Path, project: Path, local: OpenAILocal
) -> None:
    target = project / "hello.txt"
    local.script_classifier("A one-file edit.\nSIMPLE")
    local.responder = lambda rec: (
        ChunkReply(chat_chunks(text="Created hello.txt with the greeting."))
        if has_tool_result(rec)
        else ChunkReply(write_call_chunks(target))
    )
    cfg = make_config(tmp_path, local_url=local.v1_url)
    with ProxyThread(cfg) as proxy:
        result = run(claude_bin, proxy, project, "Create hello.txt with a greeting")
        recs = proxy.decisions(2)
    assert result.returncode == 0, result.describe()
    assert "Created hello.txt with the greeting." in result.stdout
    assert target.read_text() == CONTENT
    main = [r for r in recs if r["reason"] in ("classified", "cached")]
    assert [(r["route"], r["reason"], r["verdict"]) for r in main] == [
        ("local", "classified", "SIMPLE"),
        ("local", "cached", "SIMPLE"),
    ]
    assert all(r["route"] == "local" and r["fallback"] is None for r in recs)
    assert len(local.requests_tagged("classify")) == 1
    # The tool result came back to the local model as an OpenAI tool message.
    follow_up = [r for r in local.requests_tagged("chat") if has_tool_result(r)]
    assert follow_up and any(m["role"] == "tool" for m in follow_up[0].json["messages"])


def test_scenario_2_text_tool_call_text_in_one_response(
    claude_bin: str, tmp_path: Path, project: Path, local: OpenAILocal
) -> None:
    target = project / "notes.txt"
    local.script_classifier("SIMPLE")
    local.responder = lambda rec: (
        ChunkReply(chat_chunks(text="All done: notes.txt is written."))
        if has_tool_result(rec)
        else ChunkReply(write_call_chunks(target, text_before="I'll write the file now.", text_after=" Writing it."))
    )
    cfg = make_config(tmp_path, local_url=local.v1_url)
    with ProxyThread(cfg) as proxy:
        result = run(claude_bin, proxy, project, "Write notes.txt")
        recs = proxy.decisions(2)
    assert result.returncode == 0, result.describe()
    assert "All done: notes.txt is written." in result.stdout
    assert "not a text block" not in result.stdout + result.stderr
    assert target.read_text() == CONTENT
    assert all(r["route"] == "local" for r in recs)


@pytest.mark.litellm
def test_scenario_3_local_breaks_cloud_answers_through_litellm(
    claude_bin: str, tmp_path: Path, project: Path, local: OpenAILocal, cloud: LiteLLMCloud
) -> None:
    target = project / "fallback.txt"
    local.script_classifier("SIMPLE")
    local.responder = lambda rec: HTTPErrorReply(500, message="model crashed")
    cloud.upstream.script(
        tool_use_reply("Write", {"file_path": str(target), "content": CONTENT}),
        text_reply("The cloud wrote fallback.txt."),
    )
    cfg = make_config(
        tmp_path,
        local_url=local.v1_url,
        cloud_url=cloud.url,
        cloud={"simple_model": cloud.simple_model, "complex_model": cloud.complex_model},
    )
    env = {"SWITCHYARD_ROUTER_KEY": ROUTER_KEY, "SWITCHYARD_LITELLM_KEY": cloud.master_key}
    with ProxyThread(cfg, env) as proxy:
        result = run(claude_bin, proxy, project, "Create fallback.txt")
        recs = proxy.decisions(2)
    assert result.returncode == 0, result.describe()
    assert "The cloud wrote fallback.txt." in result.stdout
    assert target.read_text() == CONTENT
    main = [r for r in recs if r["reason"] in ("classified", "cached")]
    assert len(main) == 2
    assert all((r["route"], r["fallback"], r["model"]) == ("cloud", "http-500", "cloud-simple") for r in main)
