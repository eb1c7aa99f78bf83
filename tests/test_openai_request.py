"""Anthropic Messages request → OpenAI chat-completions request (allow-list, ordering, merging)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.openai_request import (
    RequestTranslationError,
    request_tool_names,
    server_tool_names,
    to_openai_request,
)

ALLOWED = {
    "model",
    "messages",
    "max_tokens",
    "stream",
    "stream_options",
    "stop",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
}

WRITE_TOOL = {
    "name": "Write",
    "description": "Write a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]},
    "cache_control": {"type": "ephemeral"},
}
READ_TOOL = {"name": "Read", "description": "Read", "input_schema": {"type": "object", "properties": {}}}


def claude_code_body(**over: Any) -> dict[str, Any]:
    """The shape of a Claude Code turn: everything a strict server would reject is present."""
    body: dict[str, Any] = {
        "model": "claude-opus-4-7",
        "max_tokens": 64000,
        "stream": True,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Be concise."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "write hello.py", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "system", "content": "Plan mode is active."},
        ],
        "tools": [WRITE_TOOL, READ_TOOL],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": []},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": '{"session_id": "abc"}'},
        "temperature": 1,
        "top_k": 5,
        "reasoning": {"effort": "high"},
        "enable_thinking": True,
    }
    body.update(over)
    return body


def translate(body: dict[str, Any], cap: int = 8192) -> dict[str, Any]:
    return to_openai_request(body, model="qwen3-8b", max_output_tokens=cap)


def test_only_allow_listed_fields_are_sent() -> None:
    out = translate(claude_code_body())
    assert set(out) <= ALLOWED
    for banned in ("reasoning", "thinking", "enable_thinking", "metadata", "top_k", "output_config"):
        assert banned not in out
    raw = json.dumps(out)
    assert "cache_control" not in raw and "enable_thinking" not in raw
    assert out["model"] == "qwen3-8b"
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert out["max_tokens"] == 8192  # capped
    assert out["temperature"] == 1


def test_mid_conversation_system_message_stays_in_place_as_a_user_note() -> None:
    out = translate(claude_code_body())
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["system", "user"]
    assert out["messages"][0]["content"] == "You are Claude Code.\n\nBe concise."
    assert out["messages"][1]["content"] == (
        "write hello.py\n\n<system-reminder>\nPlan mode is active.\n</system-reminder>"
    )


def test_a_later_system_message_leaves_the_earlier_prompt_unchanged() -> None:
    """The rendered prompt of a continuation must start with the previous one (prefix cache)."""
    first = claude_code_body()
    later = claude_code_body()
    later["messages"] = [
        *first["messages"],
        {"role": "assistant", "content": [{"type": "text", "text": "Planning."}]},
        {"role": "system", "content": "Exited plan mode."},
        {"role": "user", "content": "go on"},
    ]
    a = translate(first)["messages"]
    b = translate(later)["messages"]
    assert b[: len(a)] == a
    assert b[len(a) :] == [
        {"role": "assistant", "content": "Planning."},
        {"role": "user", "content": "<system-reminder>\nExited plan mode.\n</system-reminder>\n\ngo on"},
    ]


def test_system_messages_before_any_conversation_join_the_system_prompt() -> None:
    body = {"system": "S", "messages": [{"role": "system", "content": "agents"}, {"role": "user", "content": "hi"}]}
    assert translate(body)["messages"] == [
        {"role": "system", "content": "S\n\nagents"},
        {"role": "user", "content": "hi"},
    ]


def test_string_system_and_no_system() -> None:
    out = translate({"system": "S", "messages": [{"role": "user", "content": "hi"}]})
    assert out["messages"] == [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]
    out = translate({"messages": [{"role": "user", "content": "hi"}]})
    assert out["messages"] == [{"role": "user", "content": "hi"}]
    assert out["stream"] is False and "stream_options" not in out


def test_max_tokens_below_cap_is_kept() -> None:
    assert translate(claude_code_body(max_tokens=100))["max_tokens"] == 100
    assert translate({"messages": []}, cap=512)["max_tokens"] == 512


def test_stop_sequences_temperature_top_p() -> None:
    out = translate({"messages": [], "stop_sequences": ["END", ""], "temperature": 0.2, "top_p": 0.9})
    assert out["stop"] == ["END"] and out["temperature"] == 0.2 and out["top_p"] == 0.9


def test_tool_loop_ordering_and_ids() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "read two files"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xx"},
                    {"type": "text", "text": "Reading."},
                    {"type": "tool_use", "id": "toolu_A", "name": "Read", "input": {"file_path": "/a"}},
                    {"type": "tool_use", "id": "toolu_B", "name": "Read", "input": {"file_path": "/b"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>note</system-reminder>"},
                    {"type": "tool_result", "tool_use_id": "toolu_B", "content": "B body"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_A",
                        "content": [{"type": "text", "text": "A1"}, {"type": "text", "text": "A2"}],
                    },
                ],
            },
        ]
    }
    msgs = translate(body)["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool", "user"]
    assistant = msgs[1]
    assert assistant["content"] == "Reading."
    assert [c["id"] for c in assistant["tool_calls"]] == ["toolu_A", "toolu_B"]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"file_path": "/a"}
    assert assistant["tool_calls"][0]["type"] == "function"
    # Tool messages right after the call, in call order; the reminder text after them.
    assert msgs[2] == {"role": "tool", "tool_call_id": "toolu_A", "content": "A1\nA2"}
    assert msgs[3] == {"role": "tool", "tool_call_id": "toolu_B", "content": "B body"}
    assert msgs[4] == {"role": "user", "content": "<system-reminder>note</system-reminder>"}
    assert "thinking" not in json.dumps(msgs) and "sig" not in json.dumps(msgs)


def test_error_tool_result_is_marked() -> None:
    body = {
        "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": "command not found"}
                ],
            },
        ]
    }
    msgs = translate(body)["messages"]
    assert msgs[0]["content"] is None
    assert msgs[1] == {"role": "tool", "tool_call_id": "t1", "content": "Error: command not found"}


def test_images_user_and_inside_tool_results() -> None:
    png = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    url = {"type": "image", "source": {"type": "url", "url": "https://example.invalid/a.jpg"}}
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"}, png, url]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "screenshot:"}, png],
                    }
                ],
            },
        ]
    }
    msgs = translate(body)["messages"]
    assert msgs[0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/a.jpg"}},
    ]
    tool_msg = msgs[2]
    assert tool_msg["role"] == "tool" and "iVBOR" not in tool_msg["content"]
    assert tool_msg["content"].startswith("screenshot:\n[image")
    assert msgs[3] == {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}],
    }


def test_consecutive_user_messages_merge_around_a_system_note() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "system", "content": [{"type": "text", "text": "agents: x"}]},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "only thinking"}]},
            {"role": "user", "content": "c"},
        ]
    }
    msgs = translate(body)["messages"]
    assert msgs == [
        {"role": "user", "content": "a\n\n<system-reminder>\nagents: x\n</system-reminder>\n\nb\n\nc"}
    ]


def test_tools_and_tool_choice() -> None:
    out = translate(claude_code_body())
    assert out["tools"][0] == {
        "type": "function",
        "function": {"name": "Write", "description": "Write a file", "parameters": WRITE_TOOL["input_schema"]},
    }
    assert out["tool_choice"] == "auto"
    assert translate(claude_code_body(tool_choice={"type": "any"}))["tool_choice"] == "required"
    assert translate(claude_code_body(tool_choice={"type": "none"}))["tool_choice"] == "none"
    assert translate(claude_code_body(tool_choice={"type": "tool", "name": "Read"}))["tool_choice"] == {
        "type": "function",
        "function": {"name": "Read"},
    }
    assert "tool_choice" not in translate(claude_code_body(tool_choice=None))
    no_tools = translate(claude_code_body(tools=[], tool_choice={"type": "auto"}))
    assert "tools" not in no_tools and "tool_choice" not in no_tools


def test_server_tools_are_reported_and_not_sent() -> None:
    tools = [
        WRITE_TOOL,
        {"type": "custom", "name": "Mine", "input_schema": {"type": "object"}},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"type": "bash_20250124", "name": "bash"},
    ]
    body = claude_code_body(tools=tools)
    assert server_tool_names(body) == ["web_search", "code_execution", "bash"]
    assert request_tool_names(body) == {"Write", "Mine"}
    assert [t["function"]["name"] for t in translate(body)["tools"]] == ["Write", "Mine"]
    assert server_tool_names(claude_code_body()) == []
    assert server_tool_names({"messages": []}) == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": "hi"},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": ["x"]},
    ],
)
def test_bad_shapes_raise(body: dict[str, Any]) -> None:
    with pytest.raises(RequestTranslationError):
        translate(body)
