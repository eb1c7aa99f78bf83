"""The local server's prefix cache survives Switchyard's translation.

llama-server reuses the cached prompt of the previous request up to the first token that differs.
A continuation (a tool result, the next user turn, a mode notice) only appends to the Anthropic
transcript, so the translated request must render to a prompt that starts with the previous one:
otherwise the server evaluates the whole conversation again (~19,000 tokens, minutes on a CPU).

The prompts are rendered by the real llama-server's own chat template engine (``/apply-template``),
with SmolLM2's template and with Qwen2.5's (which renders the 24 tool definitions after the system
text), over the 9-request session captured from the real Claude Code CLI (tests/data/README.md).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from proxy.openai_request import to_openai_request
from tests.llama_server import LlamaOptions, LlamaPool, qwen_template

SESSION = Path(__file__).parent / "data" / "claude_code_session.json"


def session_bodies() -> list[dict[str, Any]]:
    return [r["body"] for r in json.loads(SESSION.read_text())["requests"]]


def claude_code_changed_its_prefix(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Claude Code itself changed the system prompt or tools (a resumed run takes the model name from
    the transcript, dropping the 1M-context suffix, and its prompt says so): no translation can keep
    that prefix."""
    def texts(body: dict[str, Any]) -> list[str]:
        return [b["text"] for b in body["system"]]

    return texts(before) != texts(after) or before["tools"] != after["tools"]


def divergence(prev: str, cur: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(prev, cur, strict=False)) if a != b), min(len(prev), len(cur)))
    return (
        f"diverges at character {at:,} of {len(prev):,}: "
        f"before {prev[at - 80 : at + 80]!r}, now {cur[at - 80 : at + 80]!r}"
    )


@pytest.mark.parametrize("template", ["smollm2", "qwen2.5"])
def test_each_continuation_renders_the_previous_prompt_as_its_prefix(llama: LlamaPool, template: str) -> None:
    options = LlamaOptions(ctx=8192, parallel=1, chat_template_file=qwen_template() if template == "qwen2.5" else None)
    server = llama.get(options)
    bodies = session_bodies()
    rendered = [server.render(to_openai_request(b, model=server.model, max_output_tokens=4096)) for b in bodies]
    checked = 0
    for k in range(1, len(bodies)):
        if claude_code_changed_its_prefix(bodies[k - 1], bodies[k]):
            continue
        assert rendered[k].startswith(rendered[k - 1]), f"request {k}: {divergence(rendered[k - 1], rendered[k])}"
        checked += 1
    # 8 continuations, one of which Claude Code broke itself (run 1 -> run 2, see the docstring).
    assert checked == 7
    # The plan-mode notice arrived as a mid-conversation system message and stayed in place.
    assert "Plan mode is active." in rendered[7] and "Plan mode is active." not in rendered[6]
    if template == "qwen2.5":
        assert rendered[0].count('"type": "function"') == len(bodies[0]["tools"]) == 24
    else:
        # SmolLM2's template has no tool support: the tools are not in its prompt at all.
        assert '"name": "Bash"' not in rendered[0]


def test_the_token_prefix_holds_too(llama: LlamaPool) -> None:
    """What the cache compares are tokens: the previous prompt's tokens are the start of the next one's."""
    server = llama.get(LlamaOptions(ctx=8192, parallel=1))
    bodies = session_bodies()[4:8]  # run 2 and the plan-mode request of run 3
    tokens = [server.tokenize(server.render(to_openai_request(b, model=server.model, max_output_tokens=4096)))
              for b in bodies]
    for prev, cur in itertools.pairwise(tokens):
        assert cur[: len(prev)] == prev
