from __future__ import annotations

import json
from typing import Any

from proxy.conversation import (
    extract_facts,
    find_subagent_tag,
    genuine_user_text,
    parse_explicit_model,
    session_id,
    strip_subagent_tag,
)


def test_parse_explicit_model() -> None:
    assert parse_explicit_model("local") is not None
    c = parse_explicit_model("local,qwen3-coder")
    assert c is not None and (c.route, c.model) == ("local", "qwen3-coder")
    c = parse_explicit_model("Cloud, claude-opus ")
    assert c is not None and (c.route, c.model) == ("cloud", "claude-opus")
    assert parse_explicit_model("claude-sonnet-4-5") is None
    assert parse_explicit_model("localhost") is None


def test_subagent_tag_is_found_and_stripped() -> None:
    body: dict[str, Any] = {
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "<CCR-SUBAGENT-MODEL>local,qwen3</CCR-SUBAGENT-MODEL>Do the subtask."},
        ]
    }
    tag = find_subagent_tag(body)
    assert tag is not None and (tag.route, tag.model, tag.source) == ("local", "qwen3", "subagent-tag")
    assert strip_subagent_tag(body)
    assert body["system"][1]["text"] == "Do the subtask."
    assert find_subagent_tag(body) is None
    s: dict[str, Any] = {"system": "x <CCR-SUBAGENT-MODEL>openrouter,claude-opus</CCR-SUBAGENT-MODEL>"}
    tag = find_subagent_tag(s)
    assert tag is not None and (tag.route, tag.model) == ("cloud", "claude-opus")


def test_genuine_user_text_drops_system_reminders() -> None:
    content = [
        {"type": "text", "text": "<system-reminder>\nThe user opened foo.py\n</system-reminder>"},
        {"type": "text", "text": "Rename foo to bar"},
    ]
    assert genuine_user_text(content) == "Rename foo to bar"


def test_session_id_sources() -> None:
    assert session_id({"X-Claude-Code-Session-Id": "abc"}, {}) == "abc"
    uid = json.dumps({"device_id": "d", "session_id": "11111111-2222-3333-4444-555555555555"})
    assert session_id({}, {"metadata": {"user_id": uid}}) == "11111111-2222-3333-4444-555555555555"
    legacy = "user_abc_account__session_aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert session_id({}, {"metadata": {"user_id": legacy}}) == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert session_id({}, {}) is None


def _turn(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def test_turn_key_is_stable_across_tool_continuations_and_new_per_user_message() -> None:
    first = {"model": "m", "messages": [_turn("write hello.txt")]}
    cont = {
        "model": "m",
        "messages": [
            _turn("write hello.txt"),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"},
                    {"type": "text", "text": "<system-reminder>todo list empty</system-reminder>"},
                ],
            },
        ],
    }
    f1 = extract_facts(first, {}, 100)
    f2 = extract_facts(cont, {}, 200)
    assert f1.turn_key == f2.turn_key
    assert f2.tool_calls == 1 and f2.turns == 1
    assert f2.latest_user_text == "write hello.txt"
    nxt = {"model": "m", "messages": [*cont["messages"], {"role": "assistant", "content": "done"}, _turn("thanks")]}
    f3 = extract_facts(nxt, {}, 300)
    assert f3.turn_key != f2.turn_key
    assert (f3.turns, f3.first_user_text, f3.latest_user_text) == (2, "write hello.txt", "thanks")
    # the same words typed again later are still a new turn
    again = {"model": "m", "messages": [*nxt["messages"], {"role": "assistant", "content": "np"}, _turn("thanks")]}
    assert extract_facts(again, {}, 400).turn_key != f3.turn_key


def test_plan_mode_from_notice_not_thinking() -> None:
    thinking_only = {"model": "m", "thinking": {"type": "adaptive"}, "messages": [_turn("hi")]}
    assert not extract_facts(thinking_only, {}, 10).plan_mode
    notice = "<system-reminder>Plan mode is active. The user indicated that they do not want you to execute yet"
    plan = {"model": "m", "messages": [_turn(notice + "</system-reminder>"), _turn("design a cache")]}
    assert extract_facts(plan, {}, 10).plan_mode
    system_role = {"model": "m", "messages": [{"role": "system", "content": notice}, _turn("go")]}
    assert extract_facts(system_role, {}, 10).plan_mode
    exited = {
        "model": "m",
        "messages": [*plan["messages"], _turn("<system-reminder>## Exited Plan Mode</system-reminder>ok")],
    }
    assert not extract_facts(exited, {}, 10).plan_mode


def test_background_and_server_tools() -> None:
    body = {
        "model": "claude-3-5-haiku-20241022",
        "messages": [_turn("title?")],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
    }
    f = extract_facts(body, {}, 10)
    assert f.background
    assert f.server_tools == ("web_search",)


def _captured(name: str) -> dict[str, Any]:
    from pathlib import Path

    return dict(json.loads((Path(__file__).parent / "data" / name).read_text()))


def test_facts_on_real_claude_code_traffic() -> None:
    turn1, turn2 = _captured("claude_code_turn1.json"), _captured("claude_code_turn2.json")
    plan, haiku = _captured("claude_code_plan.json"), _captured("claude_code_haiku.json")
    f1, f2 = extract_facts(turn1, {}, 1), extract_facts(turn2, {}, 1)
    # thinking is on every main turn, and is not plan mode
    assert turn1.get("thinking") and not f1.plan_mode and not f2.plan_mode
    assert extract_facts(plan, {}, 1).plan_mode
    assert extract_facts(haiku, {}, 1).background and not f1.background
    # the tool-result continuation belongs to the same user turn, in the same session
    assert f1.session and f1.session == f2.session
    assert f1.turn_key == f2.turn_key and f2.tool_calls >= 1
    assert f1.explicit is None and f1.server_tools == ()
    assert "system-reminder" not in f1.latest_user_text and f1.latest_user_text
