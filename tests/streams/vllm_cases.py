"""vLLM (OpenAI server with --enable-auto-tool-choice, a tool parser and a reasoning parser)."""

from __future__ import annotations

import json

from . import Case, call, pieces, text, tool, vllm, vllm_usage

_WRITE_ARGS = {"file_path": "/tmp/sy/hello.py", "content": 'print("héllo, wörld")\n# done\n'}
_WRITE_JSON = json.dumps(_WRITE_ARGS)

CASES = [
    Case(
        name="vllm-text",
        server="vllm",
        chunks=[
            vllm({"role": "assistant", "content": ""}),
            vllm({"content": "Hello"}),
            vllm({"content": ", wor"}),
            vllm({"content": "ld!"}),
            vllm({}, "stop"),
            vllm_usage(31, 4),
        ],
        content=[text("Hello, world!")],
        stop_reason="end_turn",
        usage=(31, 4),
    ),
    Case(
        name="vllm-reasoning-content-then-text",
        server="vllm",
        chunks=[
            vllm({"role": "assistant", "content": ""}),
            vllm({"reasoning_content": "The user wants "}),
            vllm({"reasoning_content": "a number."}),
            vllm({"content": "\n\n"}),
            vllm({"content": "42"}),
            vllm({}, "stop"),
            vllm_usage(12, 9),
        ],
        content=[text("42")],
        stop_reason="end_turn",
        usage=(12, 9),
    ),
    Case(
        name="vllm-newer-reasoning-field",
        server="vllm",
        chunks=[
            vllm({"role": "assistant", "content": None, "reasoning": ""}),
            vllm({"reasoning": "thinking..."}),
            vllm({"content": "Done."}),
            vllm({}, "stop"),
            vllm_usage(5, 3),
        ],
        content=[text("Done.")],
        stop_reason="end_turn",
        usage=(5, 3),
    ),
    Case(
        name="vllm-text-then-write-tool-fragments",
        server="vllm",
        chunks=[
            vllm({"role": "assistant", "content": ""}),
            vllm({"content": "I'll create the file."}),
            vllm({"tool_calls": [call(0, id="chatcmpl-tool-8a7b6c", name="Write", args="")]}),
            *[vllm({"tool_calls": [call(0, args=p)]}) for p in pieces(_WRITE_JSON, 1, 2, 13, 14, 30, 45, 46)],
            vllm({}, "tool_calls"),
            vllm_usage(40, 25),
        ],
        content=[text("I'll create the file."), tool("Write", _WRITE_ARGS, "chatcmpl-tool-8a7b6c")],
        stop_reason="tool_use",
        usage=(40, 25),
    ),
    Case(
        name="vllm-parallel-calls-interleaved",
        server="vllm",
        chunks=[
            vllm({"role": "assistant", "content": ""}),
            vllm({"tool_calls": [call(0, id="chatcmpl-tool-a1", name="Read", args="")]}),
            vllm({"tool_calls": [call(1, id="chatcmpl-tool-b2", name="Bash", args="")]}),
            vllm({"tool_calls": [call(0, args='{"file_')]}),
            vllm({"tool_calls": [call(1, args='{"comm')]}),
            vllm({"tool_calls": [call(0, args='path": "/etc/hos')]}),
            vllm({"tool_calls": [call(1, args='and": "ls -la"}')]}),
            vllm({"tool_calls": [call(0, args='ts"}')]}),
            vllm({}, "tool_calls"),
            vllm_usage(50, 30),
        ],
        content=[
            tool("Read", {"file_path": "/etc/hosts"}, "chatcmpl-tool-a1"),
            tool("Bash", {"command": "ls -la"}, "chatcmpl-tool-b2"),
        ],
        stop_reason="tool_use",
        usage=(50, 30),
    ),
    Case(
        name="vllm-length",
        server="vllm",
        chunks=[
            vllm({"role": "assistant", "content": ""}),
            vllm({"content": "A long answer that gets cut"}),
            vllm({}, "length"),
            vllm_usage(10, 8),
        ],
        content=[text("A long answer that gets cut")],
        stop_reason="max_tokens",
        usage=(10, 8),
    ),
]
