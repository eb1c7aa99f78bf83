"""Fault shapes: what a local model gets wrong.  Each must be a TranslationError, never a message."""

from __future__ import annotations

from . import Case, call, llamacpp, llamacpp_usage, ollama, vllm, vllm_usage

CASES = [
    Case(
        name="fault-unknown-tool-name",
        server="vllm",
        chunks=[
            vllm({"role": "assistant", "content": ""}),
            vllm({"tool_calls": [call(0, id="chatcmpl-tool-1", name="WebSearch", args='{"q": "x"}')]}),
            vllm({}, "tool_calls"),
            vllm_usage(5, 5),
        ],
        error="unknown-tool",
    ),
    Case(
        name="fault-broken-json-arguments",
        server="llamacpp",
        chunks=[
            llamacpp({"role": "assistant", "content": None}),
            llamacpp({"tool_calls": [call(0, id="abc", name="Write", args='{"file_path": "/a", "content": "x')]}),
            llamacpp({}, "tool_calls"),
        ],
        done=False,
        error="invalid-tool-call",
    ),
    Case(
        name="fault-arguments-not-an-object",
        server="vllm",
        chunks=[
            vllm({"tool_calls": [call(0, id="t1", name="Bash", args='["ls"]')]}),
            vllm({}, "tool_calls"),
        ],
        error="invalid-tool-call",
    ),
    Case(
        name="fault-no-finish-reason-with-done",
        server="vllm",
        chunks=[vllm({"role": "assistant", "content": ""}), vllm({"content": "Partial answ"})],
        done=True,
        error="no-finish-reason",
        content_before_error=True,
    ),
    Case(
        name="fault-no-finish-reason-without-done",
        server="llamacpp",
        chunks=[
            llamacpp({"role": "assistant", "content": None}),
            llamacpp({"tool_calls": [call(0, id="k1", name="Read", args='{"file_path": "/a"}')]}),
        ],
        done=False,
        error="no-finish-reason",
    ),
    Case(
        name="fault-truncated-call-at-length",
        server="vllm",
        chunks=[
            vllm({"content": "Writing."}),
            vllm({"tool_calls": [call(0, id="t9", name="Write", args='{"file_path": "/a", "cont')]}),
            vllm({}, "length"),
        ],
        error="invalid-tool-call",
        content_before_error=True,
    ),
    Case(
        name="fault-empty-answer-reasoning-only",
        server="ollama",
        chunks=[
            ollama({"content": "", "reasoning": "hmm"}),
            ollama({"content": "\n\n"}),
            ollama({"content": ""}, "stop"),
        ],
        error="reasoning-only",
    ),
    Case(
        name="fault-unterminated-think-only",
        server="llamacpp",
        chunks=[llamacpp({"content": "<think>I will never"}), llamacpp({"content": " finish"}, "length")],
        error="length-before-content",
    ),
    Case(
        name="fault-malformed-choices",
        server="llamacpp",
        chunks=[llamacpp({"content": "hi"}), {"choices": {"0": {"delta": {}}}}],
        error="malformed-chunk",
        content_before_error=True,
    ),
    Case(
        name="fault-error-object-mid-stream",
        server="vllm",
        chunks=[vllm({"role": "assistant", "content": ""}), {"error": {"message": "CUDA out of memory", "code": 500}}],
        error="upstream-error",
    ),
    Case(
        name="fault-usage-only-no-choices",
        server="llamacpp",
        chunks=[llamacpp_usage(3, 0)],
        done=False,
        error="no-finish-reason",
    ),
]
