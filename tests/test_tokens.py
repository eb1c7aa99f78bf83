"""The cheap token estimate against Claude's real tokenizer, on real Claude Code traffic.

The reference tokenizer is the Claude tokenizer LiteLLM ships (anthropic_tokenizer.json), loaded
with HuggingFace `tokenizers`; it is found next to the LiteLLM that .ci/run installs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from proxy.tokens import LocalTokenRatio, estimate_request_tokens, scaled

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def count(litellm_bin: str) -> Any:
    tokenizers = pytest.importorskip("tokenizers")
    venv = Path(litellm_bin).resolve().parent.parent
    found = sorted(
        venv.glob("lib/python3*/site-packages/litellm/litellm_core_utils/tokenizers/anthropic_tokenizer.json")
    )
    assert found, f"no anthropic_tokenizer.json under {venv}"
    tok = tokenizers.Tokenizer.from_file(str(found[0]))
    return lambda text: len(tok.encode(text).ids)


def real_tokens(body: dict[str, Any], count: Any) -> int:
    """Tokens of everything the model reads: system, message content, tool definitions."""
    texts: list[str] = []

    def content(c: Any) -> None:
        if isinstance(c, str):
            texts.append(c)
            return
        for b in c or []:
            kind = b.get("type")
            if kind == "text":
                texts.append(b["text"])
            elif kind == "tool_use":
                texts.append(b["name"] + json.dumps(b.get("input", {}), ensure_ascii=False))
            elif kind == "tool_result":
                content(b.get("content"))

    content(body.get("system"))
    for m in body["messages"]:
        content(m["content"])
    for t in body.get("tools", []):
        texts.append(t.get("description", ""))
        texts.append(t["name"] + json.dumps(t.get("input_schema"), ensure_ascii=False, separators=(",", ":")))
    return sum(count(t) for t in texts if t)


def with_code_results(base: dict[str, Any]) -> dict[str, Any]:
    """A long tool loop: the agent read this repository's source files (`cat -n` style, as Read returns)."""
    body = copy.deepcopy(base)
    for i, path in enumerate(sorted((REPO / "proxy").glob("*.py"))[:12]):
        numbered = "".join(f"{n:>6}\t{line}\n" for n, line in enumerate(path.read_text().splitlines(), 1))
        tid = f"toolu_{i:04d}"
        body["messages"].append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": tid, "name": "Read", "input": {"file_path": str(path)}}],
            }
        )
        body["messages"].append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, "content": numbered}]}
        )
    return body


CASES = ["claude_code_turn1.json", "claude_code_turn2.json", "claude_code_plan.json", "claude_code_haiku.json"]


@pytest.mark.parametrize("name", [*CASES, "code-heavy tool loop"])
def test_estimate_within_15_percent_of_claude_tokenizer(name: str, count: Any) -> None:
    if name in CASES:
        body = json.loads((DATA / name).read_text())
    else:
        body = with_code_results(json.loads((DATA / "claude_code_turn2.json").read_text()))
    real = real_tokens(body, count)
    est = estimate_request_tokens(body)
    assert real > 5000
    assert abs(est - real) / real <= 0.15, f"{name}: estimate {est} vs tokenizer {real} ({est / real - 1:+.1%})"


def test_estimate_is_not_fooled_by_a_cached_tool_list() -> None:
    body = json.loads((DATA / "claude_code_turn1.json").read_text())
    a = estimate_request_tokens(body)
    assert estimate_request_tokens(body) == a
    fewer = {**body, "tools": body["tools"][:5]}
    assert estimate_request_tokens(fewer) < a
    no_tools = {**body, "tools": []}
    assert estimate_request_tokens(no_tools) < estimate_request_tokens(fewer)


def test_the_local_token_ratio_learns_from_the_servers_counts_and_only_scales_up() -> None:
    ratio = LocalTokenRatio()
    assert (ratio.factor, scaled(19185, ratio.factor)) == (1.0, 19185)
    ratio.observe(500, 5000)  # too small to say anything
    assert ratio.samples == 0
    ratio.observe(19185, 20373)  # measured: Claude Code's turn through Qwen2.5's template on llama.cpp
    assert ratio.factor == pytest.approx(20373 / 19185)
    assert scaled(19185, ratio.factor) == 20373
    ratio.observe(10000, 100000)  # a wild count moves it, clamped, by a fraction
    assert 1.06 < ratio.value < 1.0 + 0.3 * 2.0
    fewer = LocalTokenRatio()
    fewer.observe(10000, 8000)  # the server needs fewer tokens: the raw estimate still applies
    assert fewer.value == 0.8 and fewer.factor == 1.0
