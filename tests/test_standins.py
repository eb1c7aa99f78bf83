"""The stand-in servers and the LiteLLM harness do what the other tests rely on."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.claude_cli import run_claude
from tests.conftest import LiteLLMCloud
from tests.standins import AnthropicUpstream, OpenAILocal, StrictOpenAIUpstream
from tests.standins.anthropic_upstream import (
    Fault,
    RawReply,
    Reply,
    StallReply,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    error_reply,
    text_reply,
    tool_use_reply,
)
from tests.standins.openai_local import (
    STRICT_REJECTED_FIELDS,
    ChunkReply,
    GarbageReply,
    HTTPErrorReply,
    chat_chunks,
)
from tests.standins.sse import anthropic_grammar_errors, parse_sse

USER_HI: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hi"}]
WRITE_INPUT = {"file_path": "/tmp/x.txt", "content": "hello\nworld"}


def _sdk(base_url: str, key: str = "sk-test") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0, timeout=60)


def _stream_raw(url: str, headers: dict[str, str] | None = None, **body: object) -> httpx.Response:
    payload = {"model": "claude-standin", "max_tokens": 100, "messages": USER_HI, "stream": True, **body}
    return httpx.post(f"{url}/v1/messages", json=payload, headers=headers or {}, timeout=60)


# ----- Anthropic stand-in, directly -------------------------------------------------------------
@pytest.mark.parametrize(
    "reply",
    [
        text_reply("Hello there, this is a longer text split into several deltas."),
        tool_use_reply("Write", WRITE_INPUT, text_before="I'll write it."),
        Reply(content=(ThinkingBlock("let me think"), TextBlock("answer"), ToolUseBlock("Read", {"p": 1}))),
    ],
    ids=["text", "text+tool_use", "thinking+text+tool_use"],
)
def test_anthropic_stream_is_valid_grammar(anthropic_upstream: AnthropicUpstream, reply: Reply) -> None:
    anthropic_upstream.script(reply)
    resp = _stream_raw(anthropic_upstream.url)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(resp.content)
    assert anthropic_grammar_errors(events) == []
    assert events[0].event == "message_start" and events[-1].event == "message_stop"


def test_anthropic_sdk_accumulates_tool_use(anthropic_upstream: AnthropicUpstream) -> None:
    anthropic_upstream.script(tool_use_reply("Write", WRITE_INPUT, text_before="Writing."))
    with _sdk(anthropic_upstream.url).messages.stream(model="m", max_tokens=50, messages=USER_HI) as s:
        msg = s.get_final_message()
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    tool = msg.content[1]
    assert isinstance(tool, anthropic.types.ToolUseBlock)
    assert tool.name == "Write" and tool.input == WRITE_INPUT
    assert msg.stop_reason == "tool_use"


def test_anthropic_non_streaming_and_recording(anthropic_upstream: AnthropicUpstream) -> None:
    msg = _sdk(anthropic_upstream.url, "sk-secret").messages.create(
        model="claude-x", max_tokens=5, messages=USER_HI
    )
    assert msg.content[0].type == "text" and "stand-in" in msg.content[0].text
    assert msg.model == "claude-x"
    (rec,) = anthropic_upstream.requests
    assert (rec.method, rec.path, rec.tag) == ("POST", "/v1/messages", "messages")
    assert rec.json["model"] == "claude-x"
    assert json.loads(rec.body) == rec.json
    assert rec.header("AUTHORIZATION") == "Bearer sk-secret"


def test_anthropic_scripted_errors_then_default(anthropic_upstream: AnthropicUpstream) -> None:
    anthropic_upstream.fail_next(2, status=429, retry_after=3)
    anthropic_upstream.script(error_reply(529), error_reply(500))
    url = f"{anthropic_upstream.url}/v1/messages?beta=true"
    body = {"model": "m", "max_tokens": 5, "messages": USER_HI}
    got = [httpx.post(url, json=body) for _ in range(5)]
    assert [r.status_code for r in got] == [429, 429, 529, 500, 200]
    assert got[0].headers["retry-after"] == "3"
    assert got[0].json()["error"]["type"] == "rate_limit_error"
    assert got[2].json() == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (stand-in)"}}
    assert anthropic_upstream.requests[0].query == {"beta": "true"}


def test_anthropic_mid_stream_drop(anthropic_upstream: AnthropicUpstream) -> None:
    anthropic_upstream.script(text_reply("x" * 200, drop_after_events=5))
    with pytest.raises(httpx.RemoteProtocolError):
        _stream_raw(anthropic_upstream.url)
    # The next request is served normally.
    assert _stream_raw(anthropic_upstream.url).status_code == 200


def _raw_bytes(url: str, body: dict[str, object]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the body bytes as they arrived, even when the connection ended early."""
    got = b""
    with httpx.stream("POST", f"{url}/v1/messages", json=body, timeout=30) as r:
        try:
            for chunk in r.iter_raw():
                got += chunk
        except httpx.HTTPError:
            pass
        return r.status_code, dict(r.headers), got


def test_fault_cuts_stalls_garbles_and_lies_at_exact_bytes(anthropic_upstream: AnthropicUpstream) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": USER_HI, "stream": True}
    full = RawReply(b"0123456789" * 10)
    anthropic_upstream.script(RawReply(full.body, fault=Fault(cut_at=37, chunk_size=5)))
    assert _raw_bytes(anthropic_upstream.url, body)[2] == full.body[:37]
    anthropic_upstream.script(RawReply(full.body, fault=Fault(garble=((3, b"xy"),))))
    assert _raw_bytes(anthropic_upstream.url, body)[2] == b"012xy56789" + full.body[10:]
    anthropic_upstream.script(RawReply(full.body, fault=Fault(content_length=40)))
    _, headers, got = _raw_bytes(anthropic_upstream.url, body)
    assert headers["content-length"] == "40" and got == full.body[:40]
    anthropic_upstream.script(RawReply(full.body, fault=Fault(stall_at=50, stall_s=0.2, length=True)))
    _, headers, got = _raw_bytes(anthropic_upstream.url, body)
    assert headers["content-length"] == "100" and got == full.body


def test_stall_records_a_client_that_leaves(anthropic_upstream: AnthropicUpstream) -> None:
    anthropic_upstream.script(RawReply(b"x" * 100, fault=Fault(stall_at=10)))
    with httpx.stream("POST", f"{anthropic_upstream.url}/v1/messages", json={"stream": True}, timeout=30) as r:
        next(r.iter_raw())
    [rec] = anthropic_upstream.wait_for_disconnects(1)
    assert rec.tag == "messages"
    anthropic_upstream.script(StallReply(0.1, then=text_reply("late")))
    assert "late" in _stream_raw(anthropic_upstream.url).text


def test_head_root_and_count_tokens(anthropic_upstream: AnthropicUpstream) -> None:
    assert httpx.head(anthropic_upstream.url + "/").status_code == 200
    r = httpx.post(f"{anthropic_upstream.url}/v1/messages/count_tokens", json={"model": "m", "messages": USER_HI})
    assert r.status_code == 200 and r.json()["input_tokens"] > 0


# ----- OpenAI-compatible stand-in ---------------------------------------------------------------
def _chat(srv: OpenAILocal, stream: bool = True, **body: object) -> httpx.Response:
    payload = {"model": "local-model", "messages": USER_HI, "stream": stream, **body}
    return httpx.post(f"{srv.v1_url}/chat/completions", json=payload, timeout=30)


@pytest.mark.parametrize("done", [True, False])
def test_openai_replays_chunks_verbatim(openai_local: OpenAILocal, done: bool) -> None:
    chunks = chat_chunks(text="Hello world", tool_calls=[("Write", json.dumps(WRITE_INPUT))])
    openai_local.script(ChunkReply(chunks, done=done))
    r = _chat(openai_local)
    events = parse_sse(r.content)
    expected = [json.dumps(c, separators=(",", ":")) for c in chunks] + (["[DONE]"] if done else [])
    assert [e.data for e in events] == expected


def test_openai_non_stream_assembles_chunks(openai_local: OpenAILocal) -> None:
    openai_local.script(chat_chunks(text="Hi", tool_calls=[("Write", json.dumps(WRITE_INPUT))]))
    body = _chat(openai_local, stream=False).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "Hi"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "Write"
    assert json.loads(call["function"]["arguments"]) == WRITE_INPUT


def test_openai_faults(openai_local: OpenAILocal) -> None:
    chunks = chat_chunks(text="a fairly long answer to be cut off")
    openai_local.script(
        ChunkReply(chunks, drop_after=2),
        HTTPErrorReply(500),
        GarbageReply(b"\x00\xffnot sse at all"),
        ChunkReply(chunks, stall_after=1, stall_seconds=0.2),
        ChunkReply(chunks, stall_after=0, stall_seconds=None),
    )
    with pytest.raises(httpx.RemoteProtocolError):
        _chat(openai_local)
    assert _chat(openai_local).status_code == 500
    garbage = _chat(openai_local)
    assert garbage.status_code == 200 and garbage.content == b"\x00\xffnot sse at all"
    # A bounded stall resumes and completes the stream.
    assert parse_sse(_chat(openai_local).content)[-1].data == "[DONE]"
    # An unbounded stall sends headers, then nothing.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{openai_local.v1_url}/chat/completions",
                   json={"model": "m", "messages": USER_HI, "stream": True}, timeout=httpx.Timeout(5, read=0.5))
    assert len(openai_local.requests_tagged("chat")) == 5


def test_openai_classifier_mode(openai_local: OpenAILocal) -> None:
    system = {"role": "system", "content": "Answer SIMPLE or COMPLEX on the last line."}
    openai_local.script_classifier("Thinking it over...\nCOMPLEX")
    first = _chat(openai_local, stream=False, messages=[system, *USER_HI]).json()
    assert first["choices"][0]["message"]["content"].endswith("COMPLEX")
    # Queue empty: the default verdict, streamed when asked.
    streamed = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for e in parse_sse(_chat(openai_local, messages=[system, *USER_HI]).content)
        if e.data != "[DONE]" and (c := e.json())["choices"]
    )
    assert streamed == "SIMPLE"
    # An ordinary chat request is not taken for a classification.
    assert "stand-in local model" in _chat(openai_local, stream=False).json()["choices"][0]["message"]["content"]
    assert [r.tag for r in openai_local.requests] == ["classify", "classify", "chat"]


def test_openai_models_and_health(openai_local: OpenAILocal) -> None:
    assert httpx.get(f"{openai_local.v1_url}/models").json()["data"][0]["id"] == "local-model"
    assert httpx.get(f"{openai_local.url}/health").status_code == 200


@pytest.mark.parametrize("field", STRICT_REJECTED_FIELDS)
def test_strict_upstream_rejects_field(strict_upstream: StrictOpenAIUpstream, field: str) -> None:
    r = _chat(strict_upstream, stream=False, **{field: False})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Extra inputs are not permitted"
    assert strict_upstream.requests[-1].tag == "rejected"


def test_strict_upstream_accepts_clean_request(strict_upstream: StrictOpenAIUpstream) -> None:
    assert _chat(strict_upstream, stream=False, temperature=0.2).status_code == 200


# ----- through a real LiteLLM proxy ---------------------------------------------------------------
def test_litellm_forwards_to_standin_non_streaming(cloud: LiteLLMCloud) -> None:
    cloud.upstream.script(text_reply("cloud says hi"))
    msg = _sdk(cloud.url, cloud.master_key).messages.create(
        model=cloud.simple_model, max_tokens=20, messages=USER_HI
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "cloud says hi"
    (rec,) = cloud.upstream.requests
    assert rec.path == "/v1/messages"
    assert rec.json["model"] == "claude-standin-cloud-simple"
    assert rec.json["stream"] is False


def test_litellm_forwards_to_standin_streaming(cloud: LiteLLMCloud) -> None:
    cloud.upstream.script(tool_use_reply("Write", WRITE_INPUT, text_before="Sure."))
    with _sdk(cloud.url, cloud.master_key).messages.stream(
        model=cloud.complex_model, max_tokens=20, messages=USER_HI
    ) as s:
        msg = s.get_final_message()
    assert msg.content[0].type == "text" and msg.content[0].text == "Sure."
    tool = msg.content[1]
    assert isinstance(tool, anthropic.types.ToolUseBlock) and tool.input == WRITE_INPUT
    (rec,) = cloud.upstream.requests
    assert rec.json["model"] == "claude-standin-cloud-complex" and rec.json["stream"] is True


def test_litellm_stream_grammar_and_headers(cloud: LiteLLMCloud) -> None:
    headers = {
        "x-api-key": cloud.master_key,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    }
    resp = _stream_raw(cloud.url, headers, model=cloud.simple_model)
    assert resp.status_code == 200
    assert anthropic_grammar_errors(parse_sse(resp.content)) == []
    (rec,) = cloud.upstream.requests
    assert rec.header("anthropic-beta") == headers["anthropic-beta"]
    assert rec.header("x-api-key") != cloud.master_key  # LiteLLM uses its own upstream key


def test_litellm_passes_429_through_without_retrying(cloud: LiteLLMCloud) -> None:
    # The harness config sets num_retries: 0, so each scripted error reaches the caller once.
    cloud.upstream.fail_next(1, status=429, retry_after=0)
    with pytest.raises(anthropic.RateLimitError):
        _sdk(cloud.url, cloud.master_key).messages.create(model=cloud.simple_model, max_tokens=5, messages=USER_HI)
    assert len(cloud.upstream.requests) == 1 and cloud.upstream.pending == 0


# ----- the real Claude Code CLI against the stand-in ------------------------------------------------
def test_claude_cli_runs_tool_loop_against_standin(
    claude_bin: str, anthropic_upstream: AnthropicUpstream, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    target = project / "hello.txt"
    anthropic_upstream.script(
        tool_use_reply("Write", {"file_path": str(target), "content": "exact content\n"}),
        text_reply("All done."),
    )
    result = run_claude(claude_bin, "Create hello.txt", base_url=anthropic_upstream.url, api_key="router-key",
                        cwd=project, timeout=120)
    assert result.returncode == 0, result.describe()
    assert result.stdout.strip() == "All done."
    assert target.read_text() == "exact content\n"
    calls = [(r.method, r.path) for r in anthropic_upstream.requests]
    assert calls[0] == ("HEAD", "/")
    assert calls[1:] == [("POST", "/v1/messages")] * 2
    first, second = anthropic_upstream.requests_tagged("messages")
    assert first.header("authorization") == "Bearer router-key"
    assert first.header("x-claude-code-session-id") == second.header("x-claude-code-session-id")
    assert second.json["messages"][-1]["content"][0]["type"] == "tool_result"


# ----- captured traffic ---------------------------------------------------------------------------
DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    "name", ["claude_code_turn1.json", "claude_code_turn2.json", "claude_code_plan.json", "claude_code_haiku.json"]
)
def test_captured_bodies_are_scrubbed_and_realistic(name: str) -> None:
    raw = (DATA / name).read_text(encoding="utf-8")
    body = json.loads(raw)
    assert body["stream"] is True and body["messages"]
    assert "/tmp/" not in raw.replace("/tmp\\n", "")  # only the Explore prompt's literal "/tmp" may remain
    user_id = json.loads(body["metadata"]["user_id"])
    assert user_id["device_id"] == "0" * 64
    assert user_id["session_id"].startswith("00000000-0000-4000-8000-")
    if name != "claude_code_haiku.json":
        assert len(body["tools"]) == 24 and body["thinking"] == {"type": "adaptive"}
        assert len(raw.encode()) > 70_000
    assert ("Plan mode is active." in raw) == (name == "claude_code_plan.json")


def test_captured_headers_hold_no_secret() -> None:
    headers = json.loads((DATA / "claude_code_headers.json").read_text())
    main = headers["messages_main"]
    assert main["Authorization"] == "Bearer <redacted>"
    assert main["User-Agent"].startswith("claude-cli/2.1.197")
    assert headers["calls"]["write"][0] == "HEAD /"


def test_stop_refuses_connections_and_start_comes_back_on_same_port(openai_local: OpenAILocal) -> None:
    url = openai_local.url
    openai_local.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v1/models")
    openai_local.start()
    assert openai_local.url == url
    assert httpx.get(f"{url}/v1/models").status_code == 200
    assert [r.path for r in openai_local.requests] == ["/v1/models"]
