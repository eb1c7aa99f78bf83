"""Ollama's OpenAI-compatible endpoint: whole tool calls per chunk, ``reasoning`` deltas, [DONE]."""

from __future__ import annotations

from . import Case, call, ollama, ollama_usage, text, tool

CASES = [
    Case(
        name="ollama-reasoning-field-then-text",
        server="ollama",
        chunks=[
            ollama({"content": "", "reasoning": "Okay, the user"}),
            ollama({"content": "", "reasoning": " says hi."}),
            ollama({"content": "Hi there"}),
            ollama({"content": "!"}),
            ollama({"content": ""}, "stop"),
            ollama_usage(11, 6),
        ],
        content=[text("Hi there!")],
        stop_reason="end_turn",
        usage=(11, 6),
    ),
    Case(
        name="ollama-several-calls-in-one-chunk",
        server="ollama",
        chunks=[
            ollama(
                {
                    "content": "",
                    "tool_calls": [
                        call(0, id="call_q8x1m2", name="get_weather", args='{"city":"Paris"}'),
                        call(1, id="call_r7y2n3", name="get_weather", args='{"city":"Tokyo"}'),
                    ],
                }
            ),
            ollama({"content": ""}, "tool_calls"),
            ollama_usage(60, 40),
        ],
        content=[
            tool("get_weather", {"city": "Paris"}, "call_q8x1m2"),
            tool("get_weather", {"city": "Tokyo"}, "call_r7y2n3"),
        ],
        stop_reason="tool_use",
        usage=(60, 40),
    ),
    Case(
        # The shape that breaks other routers: text, a tool call, then more text.
        name="ollama-text-tool-text",
        server="ollama",
        chunks=[
            ollama({"content": "Let me check "}),
            ollama({"content": "the weather."}),
            ollama({"content": "", "tool_calls": [call(0, id="call_a1", name="get_weather", args='{"city":"Oslo"}')]}),
            ollama({"content": " I asked for Oslo."}),
            ollama({"content": ""}, "tool_calls"),
            ollama_usage(70, 22),
        ],
        content=[
            text("Let me check the weather."),
            tool("get_weather", {"city": "Oslo"}, "call_a1"),
            text("I asked for Oslo."),
        ],
        stop_reason="tool_use",
        usage=(70, 22),
    ),
    Case(
        # Older Ollama: no index, arguments as an object, finish_reason "stop" despite the call.
        name="ollama-old-no-index-object-arguments-stop",
        server="ollama",
        chunks=[
            {
                **ollama(),
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "role": "assistant",
                            "content": "",
                            "tool_calls": [
                                {"id": "call_1", "function": {"name": "Bash", "arguments": {"command": "pwd"}}},
                                {"id": "call_2", "function": {"name": "Read", "arguments": {"file_path": "/a"}}},
                            ],
                        },
                        "finish_reason": None,
                    }
                ],
            },
            ollama({"content": ""}, "stop"),
        ],
        content=[tool("Bash", {"command": "pwd"}, "call_1"), tool("Read", {"file_path": "/a"}, "call_2")],
        stop_reason="tool_use",
    ),
]
