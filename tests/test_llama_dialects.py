"""Both local dialects against a real llama.cpp server: its own ``/v1/messages`` and the translated
``/v1/chat/completions``, with Claude Code's captured requests and the real Claude Code CLI.

SmolLM2-135M answers whatever it answers: these tests assert on structure (the official SDK
accumulates every answer; the stream obeys the grammar) and routing, never on the text.

The measurement behind ``proxy/native_request.py``'s allow-list is
:func:`test_which_fields_the_real_llama_server_rejects`: llama-server (llama.cpp vendored by
llama-cpp-python 0.3.36) answered 200 to every top-level field and message feature Claude Code
sends, and refused only an image without a vision projector (HTTP 500).
"""

from __future__ import annotations

import inspect
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.claude_cli import run_claude
from tests.llama_server import LlamaOptions, LlamaPool, LlamaServer
from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config
from tests.standins import AnthropicUpstream
from tests.standins.anthropic_upstream import text_reply
from tests.standins.sse import anthropic_grammar_errors, parse_sse

SESSION = Path(__file__).parent / "data" / "claude_code_session.json"
CLOUD_TEXT = "Answered by the cloud stand-in."
READ_TOOL = {
    "name": "Read",
    "description": "read a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]},
}

# field → (value, status the real server answered): what the allow-list was built from.
TOP_LEVEL: dict[str, tuple[Any, int]] = {
    "system": ([{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}], 200),
    "temperature": (0.5, 200),
    "top_p": (0.9, 200),
    "top_k": (40, 200),
    "stop_sequences": (["\n\n"], 200),
    "metadata": ({"user_id": "x"}, 200),
    "thinking": ({"type": "adaptive"}, 200),
    "context_management": ({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}, 200),
    "output_config": ({"effort": "high"}, 200),
    "tools": ([READ_TOOL], 200),
    "tool_choice": ({"type": "auto"}, 200),
    "service_tier": ("auto", 200),
}
MESSAGES: dict[str, tuple[list[dict[str, Any]], int]] = {
    "system-mid-conversation": (
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "ok"},
            {"role": "system", "content": "Plan mode is active."},
            {"role": "user", "content": "again"},
        ],
        200,
    ),
    "thinking-block-with-signature": (
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hm", "signature": "abc"}, {"type": "text", "text": "ok"}],
            },
            {"role": "user", "content": "again"},
        ],
        200,
    ),
    "tool-result-with-reminder": (
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a"}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "data"},
                    {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                ],
            },
        ],
        200,
    ),
    "image-without-projector": (
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "text", "text": "what is it"},
                ],
            }
        ],
        500,
    ),
}


# SmolLM2 samples (Claude Code sends no temperature): a "one short sentence" sometimes runs past 64
# tokens, and Claude Code turns a max_tokens stop into "response exceeded the 32000 output token
# maximum" (exit 1).  256 leaves room for the ramble and still bounds the turn.
CAP = 256

@pytest.fixture
def smollm2(llama: LlamaPool) -> LlamaServer:
    """SmolLM2 with its own template, one slot (so the session's turns reuse its prompt cache)."""
    return llama.get(LlamaOptions(ctx=8192, parallel=1))


@pytest.fixture
def cloud() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream(default=text_reply(CLOUD_TEXT)) as srv:
        yield srv


def proxy_for(tmp_path: Path, server: LlamaServer, cloud: AnthropicUpstream, api: str, **local: Any) -> ProxyThread:
    tmp = tmp_path / api
    tmp.mkdir(exist_ok=True)
    cfg = make_config(
        tmp,
        local_url=server.v1_url,
        cloud_url=cloud.url,
        local={"model": server.model, "api": api, "first_token_timeout_s": 120.0, "read_timeout_s": 60.0, **local},
        routing={"classify_timeout_s": 60.0},
    )
    return ProxyThread(cfg)


def _status(server: LlamaServer, body: dict[str, Any]) -> int:
    req = urllib.request.Request(
        server.url + "/v1/messages", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_which_fields_the_real_llama_server_rejects(smollm2: LlamaServer) -> None:
    base = {"model": smollm2.model, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    got = {name: _status(smollm2, {**base, name: value}) for name, (value, _) in TOP_LEVEL.items()}
    got |= {name: _status(smollm2, {**base, "tools": [READ_TOOL], "messages": m}) for name, (m, _) in MESSAGES.items()}
    want = {name: status for name, (_, status) in (TOP_LEVEL | MESSAGES).items()}
    assert got == want


_STREAM_PARAMS = set(inspect.signature(anthropic.Anthropic(api_key="x").messages.stream).parameters)


def _sdk_stream(proxy: ProxyThread, body: dict[str, Any]) -> anthropic.types.Message:
    """The captured body through the official SDK (fields it has no parameter for go as extra_body)."""
    client = anthropic.Anthropic(base_url=proxy.url, api_key=ROUTER_KEY, max_retries=0, timeout=300)
    known = {k: v for k, v in body.items() if k in _STREAM_PARAMS and k != "stream"}
    extra = {k: v for k, v in body.items() if k not in _STREAM_PARAMS and k != "stream"}
    with client.messages.stream(**known, extra_body=extra) as stream:
        for _ in stream:
            pass
        return stream.get_final_message()


def test_the_captured_session_is_answered_through_both_dialects(
    tmp_path: Path, smollm2: LlamaServer, cloud: AnthropicUpstream
) -> None:
    bodies = [r["body"] for r in json.loads(SESSION.read_text())["requests"]]
    for api in ("openai", "anthropic"):
        with proxy_for(tmp_path, smollm2, cloud, api, max_output_tokens=8) as proxy:
            for body in bodies:
                msg = _sdk_stream(proxy, {**body, "model": "local"})
                assert msg.stop_reason in ("end_turn", "max_tokens", "tool_use"), (api, msg)
                assert msg.content, (api, msg)
            # The same first request once more as raw bytes: the strict grammar check the SDK skips.
            raw = httpx.post(
                proxy.url + "/v1/messages", headers=proxy.headers(), json={**bodies[0], "model": "local"}, timeout=300
            )
            assert raw.status_code == 200 and anthropic_grammar_errors(parse_sse(raw.content)) == []
            recs = proxy.decisions(len(bodies) + 1, timeout=30)
        local = [r for r in recs if r["route"] == "local"]
        # SmolLM2 may write something unusable (it is tiny); then the cloud answered, with a cause.
        assert all(r["fallback"] for r in recs if r["route"] == "cloud"), recs
        assert len(local) >= len(recs) // 2, recs
        assert all(r["reason"] == "explicit" and r["status"] == 200 for r in recs)
        if api == "anthropic":
            # llama.cpp's Anthropic usage names its cache hits, and carries no OpenAI `timings`.
            assert all(r["cached_tokens"] is not None and r["prefill_ms"] is None for r in local), local
        else:
            assert all(r["prefill_ms"] is not None for r in local), local


def test_claude_code_finishes_a_turn_on_the_anthropic_dialect(
    claude_bin: str, tmp_path: Path, project: Path, smollm2: LlamaServer, cloud: AnthropicUpstream
) -> None:
    with proxy_for(tmp_path, smollm2, cloud, "anthropic", max_output_tokens=CAP) as proxy:
        result = run_claude(
            claude_bin,
            "Say hello in one short sentence.",
            base_url=proxy.url,
            api_key=ROUTER_KEY,
            cwd=project,
            timeout=300,
            model="local",
            extra_args=("--tools", ""),
        )
        recs = [r for r in proxy.decisions(1, timeout=30) if r["status"]]
    assert result.returncode == 0, result.describe()
    assert result.stdout.strip() and CLOUD_TEXT not in result.stdout, result.describe()
    assert cloud.requests_tagged("messages") == []
    rec = recs[-1]
    assert (rec["route"], rec["reason"], rec["model"], rec["status"], rec["fallback"]) == (
        "local",
        "explicit",
        "smollm2",
        200,
        None,
    )
    assert rec["input_tokens"] > 1000 and 0 < rec["output_tokens"] <= CAP
    assert rec["cached_tokens"] is not None and rec["prefill_ms"] is None  # the native path's usage


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_turn_after_turn_each_is_answered_locally(
    tmp_path: Path, smollm2: LlamaServer, cloud: AnthropicUpstream, api: str
) -> None:
    # Every turn local, none a fallback (the captured-session test above tolerates SmolLM2's unusable
    # answers; these plain prompts leave no excuse).  Measured on llama-server 0.3.36: it closes a
    # kept-alive connection just after a streamed answer, and a request written on it within a few ms
    # failed; the proxy's local session therefore opens a connection per request (proxy/server.py).
    body = {"model": "local", "max_tokens": 200, "stream": True,
            "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}]}
    with proxy_for(tmp_path, smollm2, cloud, api, max_output_tokens=200) as proxy:
        for _ in range(4):
            r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=body, timeout=300)
            assert r.status_code == 200 and anthropic_grammar_errors(parse_sse(r.content)) == []
            health = httpx.get(proxy.url + "/health", headers=proxy.headers(), timeout=30).json()
            assert health["local_up"] is True
        recs = proxy.decisions(4, timeout=30)
    assert [(r["route"], r["fallback"]) for r in recs] == [("local", None)] * 4, recs
