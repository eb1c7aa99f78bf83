"""The captured multi-request Claude Code session (tests/data/claude_code_session.json) has the shape
the prefix-cache benchmark relies on: one session, a cumulative transcript, two or more user turns,
tool round trips and a mid-conversation plan-mode notice.  Regenerate the file with
``python -m tests.capture_claude_code --session`` (see tests/data/README.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "claude_code_session.json"


@cache
def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return data


def _requests() -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = _load()["requests"]
    return requests


def _bodies() -> list[dict[str, Any]]:
    return [r["body"] for r in _requests()]


def _no_cache_control(v: Any) -> Any:
    if isinstance(v, list):
        return [_no_cache_control(x) for x in v]
    if isinstance(v, dict):
        return {k: _no_cache_control(x) for k, x in v.items() if k != "cache_control"}
    return v


def _as_blocks(message: dict[str, Any]) -> dict[str, Any]:
    if isinstance(message.get("content"), str):
        return {**message, "content": [{"type": "text", "text": message["content"]}]}
    return message


def _normalized(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_as_blocks(m) for m in _no_cache_control(messages)]


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def _is_user_turn(message: dict[str, Any]) -> bool:
    """A message the user typed: text that is not only a system-reminder, and no tool_result."""
    if message.get("role") != "user":
        return False
    blocks = _blocks(message)
    if any(b.get("type") == "tool_result" for b in blocks):
        return False
    return any(b.get("type") == "text" and not b["text"].lstrip().startswith("<system-reminder>") for b in blocks)


def _session_id(request: dict[str, Any]) -> tuple[str | None, str | None]:
    header = next((v for k, v in request["headers"].items() if k.lower() == "x-claude-code-session-id"), None)
    user_id = json.loads(request["body"]["metadata"]["user_id"])
    return header, user_id.get("session_id")


def test_file_shape() -> None:
    data = _load()
    assert data["cli_version"]
    assert isinstance(data["note"], str)
    assert len(data["requests"]) >= 6
    for req in data["requests"]:
        assert set(req) >= {"body", "headers"}
        assert req["body"]["model"] and "haiku" not in req["body"]["model"]
        assert req["body"]["messages"] and req["body"]["tools"] and req["body"]["system"]
        assert "Bearer <redacted>" in req["headers"].values()
    # The invocations map covers every request exactly once, in order.
    indices = [i for inv in data["invocations"] for i in inv["requests"]]
    assert indices == list(range(len(data["requests"])))
    assert len(data["invocations"]) >= 3


def test_scrubbed() -> None:
    text = DATA.read_text(encoding="utf-8")
    assert "/home/user/project" in text
    assert "/tmp/" not in text
    assert "dummy-capture-token" not in text
    assert '"device_id\\":\\"' + "0" * 64 in text


def test_one_session_id_throughout() -> None:
    ids = {_session_id(r) for r in _requests()}
    assert len(ids) == 1
    ((header, in_metadata),) = ids
    assert header == in_metadata == "00000000-0000-4000-8000-000000000001"


def test_transcript_is_cumulative() -> None:
    bodies = _bodies()
    for n in range(1, len(bodies)):
        prev, cur = _normalized(bodies[n - 1]["messages"]), _normalized(bodies[n]["messages"])
        assert len(cur) > len(prev), n
        assert cur[: len(prev)] == prev, f"request {n} rewrites earlier messages"


def test_only_the_prompt_form_changes_besides_cache_control() -> None:
    """With cache_control removed, an earlier message differs only where a prompt sent as a
    one-text-block list (while it carried the marker) is re-sent as a plain string."""
    bodies = _bodies()
    form_changes = 0
    for n in range(1, len(bodies)):
        prev = _no_cache_control(bodies[n - 1]["messages"])
        cur = _no_cache_control(bodies[n]["messages"])
        for a, b in zip(prev, cur, strict=False):
            if a != b:
                assert isinstance(b["content"], str) and _as_blocks(a) == _as_blocks(b)
                form_changes += 1
    assert form_changes >= 1


def test_tool_round_trips() -> None:
    messages = _bodies()[-1]["messages"]
    uses = [b["id"] for m in messages if m["role"] == "assistant" for b in _blocks(m) if b["type"] == "tool_use"]
    results = [b for m in messages if m["role"] == "user" for b in _blocks(m) if b["type"] == "tool_result"]
    assert [r["tool_use_id"] for r in results] == uses
    assert len(uses) >= 4
    assert not any(r.get("is_error") for r in results)
    # The first user turn alone is answered with at least three tool steps.
    turns = [n for n, m in enumerate(messages) if _is_user_turn(m)]
    first_turn = messages[turns[0] : turns[1]]
    assert sum(b["type"] == "tool_use" for m in first_turn for b in _blocks(m)) >= 3


def test_at_least_two_user_turns() -> None:
    turns = [m for m in _bodies()[-1]["messages"] if _is_user_turn(m)]
    assert len(turns) >= 2
    # Each later invocation's first request adds the previous answer's final text, then the new turn.
    firsts = [inv["requests"][0] for inv in _load()["invocations"]]
    for i in firsts[1:]:
        prev_len = len(_bodies()[i - 1]["messages"])
        new = _bodies()[i]["messages"][prev_len:]
        assert new[0]["role"] == "assistant" and [b["type"] for b in _blocks(new[0])] == ["text"]
        assert _is_user_turn(new[1])


def test_plan_mode_system_message_mid_conversation() -> None:
    found = []
    for n, body in enumerate(_bodies()):
        for i, m in enumerate(body["messages"]):
            if m["role"] == "system" and "Plan mode is active." in json.dumps(m["content"]):
                assert i > 0 and any(_is_user_turn(x) for x in body["messages"][:i])
                found.append((n, i))
    assert found
    # Once added, the notice stays in place in the later requests of the session.
    first_request, index = found[0]
    assert [n for n, _ in found] == list(range(first_request, len(_bodies())))
    assert {i for _, i in found} == {index}
