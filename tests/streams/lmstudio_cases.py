"""LM Studio's OpenAI-compatible server: numeric ids, cumulative snapshots, usage on the finish chunk."""

from __future__ import annotations

import json

from . import Case, call, lmstudio, text, tool

_EDIT = {"file_path": "/w/app.py", "old_string": "x = 1", "new_string": "x = 2", "replace_all": False}
_EDIT_JSON = json.dumps(_EDIT)
_USAGE = {"prompt_tokens": 90, "completion_tokens": 35, "total_tokens": 125}

CASES = [
    Case(
        name="lmstudio-cumulative-argument-snapshots",
        server="lmstudio",
        chunks=[
            lmstudio({"role": "assistant", "content": ""}),
            lmstudio({"tool_calls": [call(0, id="482913756", name="Edit", args="")]}),
            *[lmstudio({"tool_calls": [call(0, args=_EDIT_JSON[:n])]}) for n in (1, 9, 24, 50, len(_EDIT_JSON))],
            lmstudio({}, "tool_calls", usage=_USAGE),
        ],
        content=[tool("Edit", _EDIT, "482913756")],
        stop_reason="tool_use",
        usage=(90, 35),
    ),
    Case(
        name="lmstudio-think-in-content-then-tool",
        server="lmstudio",
        chunks=[
            lmstudio({"role": "assistant", "content": ""}),
            lmstudio({"content": "<think>"}),
            lmstudio({"content": "I should edit."}),
            lmstudio({"content": "</think>"}),
            lmstudio({"content": "\n\n"}),
            lmstudio({"tool_calls": [call(0, id="77", name="Edit", args=_EDIT_JSON)]}),
            lmstudio({}, "tool_calls", usage=_USAGE),
        ],
        content=[tool("Edit", _EDIT, "77")],
        stop_reason="tool_use",
        usage=(90, 35),
    ),
    Case(
        name="lmstudio-repair-code-fence-and-trailing-comma",
        server="lmstudio",
        chunks=[
            lmstudio({"role": "assistant", "content": ""}),
            lmstudio({"content": "Running it."}),
            lmstudio({"tool_calls": [call(0, id="100", name="Bash", args='```json\n{"command": "make test",}\n```')]}),
            lmstudio({}, "tool_calls", usage=_USAGE),
        ],
        content=[text("Running it."), tool("Bash", {"command": "make test"}, "100")],
        stop_reason="tool_use",
        usage=(90, 35),
    ),
    Case(
        name="lmstudio-bad-and-duplicate-ids-regenerated",
        server="lmstudio",
        chunks=[
            lmstudio({"role": "assistant", "content": ""}),
            lmstudio({"tool_calls": [call(0, id="call:1/x", name="Read", args='{"file_path": "/a"}')]}),
            lmstudio({"tool_calls": [call(1, id="same", name="Read", args='{"file_path": "/b"}')]}),
            lmstudio({"tool_calls": [call(2, id="same", name="Read", args='{"file_path": "/c"}')]}),
            lmstudio({}, "tool_calls", usage=_USAGE),
        ],
        content=[
            tool("Read", {"file_path": "/a"}),
            tool("Read", {"file_path": "/b"}, "same"),
            tool("Read", {"file_path": "/c"}),
        ],
        stop_reason="tool_use",
        usage=(90, 35),
    ),
]
