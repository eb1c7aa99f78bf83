"""llama.cpp's llama-server (--jinja), with and without --reasoning-format, often without [DONE]."""

from __future__ import annotations

from . import Case, call, llamacpp, llamacpp_usage, text, tool

_TIMINGS = {"prompt_n": 20, "prompt_ms": 80.1, "predicted_n": 7, "predicted_ms": 170.2}

CASES = [
    Case(
        name="llamacpp-text-no-done",
        server="llamacpp",
        chunks=[
            llamacpp({"role": "assistant", "content": None}),
            llamacpp({"content": "Paris"}),
            llamacpp({"content": " is the capital."}),
            llamacpp({}, "stop", timings=_TIMINGS),
            llamacpp_usage(20, 7),
        ],
        done=False,
        content=[text("Paris is the capital.")],
        stop_reason="end_turn",
        usage=(20, 7),
    ),
    Case(
        name="llamacpp-think-tags-split-across-chunks",
        server="llamacpp",
        chunks=[
            llamacpp({"role": "assistant", "content": None}),
            llamacpp({"content": "<th"}),
            llamacpp({"content": "ink>\nLet me think about <b>"}),
            llamacpp({"content": " this.</thi"}),
            llamacpp({"content": "nk>"}),
            llamacpp({"content": "\n\n"}),
            llamacpp({"content": "The answer is <b>4</b>."}),
            llamacpp({}, "stop", timings=_TIMINGS),
            llamacpp_usage(20, 19),
        ],
        content=[text("The answer is <b>4</b>.")],
        stop_reason="end_turn",
        usage=(20, 19),
    ),
    Case(
        name="llamacpp-reasoning-content-and-tool-late-id-and-name",
        server="llamacpp",
        chunks=[
            llamacpp({"role": "assistant", "content": None}),
            llamacpp({"reasoning_content": "Need to read the file."}),
            # Arguments first; id and name only in a later fragment.
            llamacpp({"tool_calls": [call(0, args='{"file_path":')]}),
            llamacpp({"tool_calls": [call(0, args=' "/work/READ')]}),
            llamacpp({"tool_calls": [call(0, id="Kx9pQ2rT7vB4nM8sL1wE5yU3iO6aZ0cD", name="Read")]}),
            llamacpp({"tool_calls": [call(0, args='ME.md"}')]}),
            llamacpp({}, "tool_calls", timings=_TIMINGS),
            llamacpp_usage(33, 14),
        ],
        done=False,
        content=[tool("Read", {"file_path": "/work/README.md"}, "Kx9pQ2rT7vB4nM8sL1wE5yU3iO6aZ0cD")],
        stop_reason="tool_use",
        usage=(33, 14),
    ),
    Case(
        name="llamacpp-empty-arguments",
        server="llamacpp",
        chunks=[
            llamacpp({"role": "assistant", "content": None}),
            llamacpp({"tool_calls": [call(0, id="Zz1", name="get_weather", args="")]}),
            llamacpp({}, "tool_calls"),
            llamacpp_usage(9, 3),
        ],
        content=[tool("get_weather", {}, "Zz1")],
        stop_reason="tool_use",
        usage=(9, 3),
    ),
    Case(
        name="llamacpp-usage-in-finish-chunk-and-done",
        server="llamacpp",
        chunks=[
            llamacpp({"role": "assistant", "content": None}),
            llamacpp({"content": "ok"}),
            llamacpp({}, "stop", usage={"completion_tokens": 1, "prompt_tokens": 8, "total_tokens": 9}),
        ],
        content=[text("ok")],
        stop_reason="end_turn",
        usage=(8, 1),
    ),
]
