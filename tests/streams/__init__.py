"""Replayed OpenAI chat-completion chunk streams in the shapes real local servers produce.

Each :class:`Case` is one upstream stream (parsed chunk dicts, in order, plus whether ``data: [DONE]``
ends it) and what translating it must give: the Anthropic content blocks and stop_reason, or the
failure cause.  The shapes follow what the servers send on the wire:

- vLLM: role-only first chunk with ``content: ""``, ``logprobs: null`` in every choice,
  ``reasoning_content`` deltas, tool calls whose first fragment carries id + name and empty
  arguments, ``chatcmpl-tool-…`` ids, a usage-only last chunk (``choices: []``), ``[DONE]``.
- llama.cpp server: ``content: null`` role chunk, ``system_fingerprint``, ``timings`` in the finish
  chunk, ``<think>`` tags in content (``--reasoning-format none``), 32-character random call ids.
- Ollama: the role repeated in every chunk, ``reasoning`` deltas, whole tool calls in one chunk
  (several per chunk), ``fp_ollama``, ids ``call_…``.
- LM Studio: numeric-string tool ids, cumulative argument snapshots (some model/template pairs),
  usage on the finish chunk, ``[DONE]``.

``TOOLS`` is the request's tool list every case is translated against.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

TOOLS = frozenset({"Write", "Read", "Bash", "Edit", "get_weather"})


@dataclass(frozen=True)
class Case:
    name: str
    server: str
    chunks: list[dict[str, Any]]
    done: bool = True
    # Expected Anthropic content; a tool_use "id" of None means "generated": must match ^toolu_.
    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    # Failure cases: the TranslationError cause, and whether content had been produced before it.
    error: str | None = None
    content_before_error: bool = False
    usage: tuple[int, int] | None = None  # (input_tokens, output_tokens) from the usage chunk

    @property
    def ok(self) -> bool:
        return self.error is None


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tool(name: str, args: dict[str, Any], tool_id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": args}


# ----- envelopes: one function per server, wrapping a delta the way that server does -------------
CREATED = 1732000000


def vllm(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9f1c2d3e4b5a",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "Qwen/Qwen3-8B",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def vllm_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9f1c2d3e4b5a",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "Qwen/Qwen3-8B",
        "choices": [],
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion},
    }


def llamacpp(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "choices": [{"finish_reason": finish, "index": 0, "delta": delta or {}}],
        "created": CREATED,
        "id": "chatcmpl-Xq3vJ8bN2mK5",
        "model": "gpt-3.5-turbo",
        "system_fingerprint": "b5123-0a1b2c3d",
        "object": "chat.completion.chunk",
        **extra,
    }


def llamacpp_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "choices": [],
        "created": CREATED,
        "id": "chatcmpl-Xq3vJ8bN2mK5",
        "model": "gpt-3.5-turbo",
        "system_fingerprint": "b5123-0a1b2c3d",
        "object": "chat.completion.chunk",
        "usage": {"completion_tokens": completion, "prompt_tokens": prompt, "total_tokens": prompt + completion},
        "timings": {"prompt_n": prompt, "predicted_n": completion, "predicted_per_second": 41.2},
    }


def ollama(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-481",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "qwen3:8b",
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "delta": {"role": "assistant", **(delta or {})}, "finish_reason": finish}],
    }


def ollama_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-481",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "qwen3:8b",
        "system_fingerprint": "fp_ollama",
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def lmstudio(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-k2j4h5g6f7d8s9a0",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "qwen3-8b",
        "system_fingerprint": "qwen3-8b",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def call(
    index: int | None, *, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    """One entry of ``delta.tool_calls``; only the given fields are present."""
    out: dict[str, Any] = {}
    if index is not None:
        out["index"] = index
    if id is not None:
        out["id"] = id
        out["type"] = "function"
    fn: dict[str, Any] = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    if fn:
        out["function"] = fn
    return out


def pieces(s: str, *cuts: int) -> list[str]:
    """``s`` cut at the given offsets (ascending)."""
    bounds = [0, *cuts, len(s)]
    return [s[a:b] for a, b in itertools.pairwise(bounds)]


def all_cases() -> list[Case]:
    from . import faults, llamacpp_cases, lmstudio_cases, ollama_cases, vllm_cases

    return [
        *vllm_cases.CASES,
        *llamacpp_cases.CASES,
        *ollama_cases.CASES,
        *lmstudio_cases.CASES,
        *faults.CASES,
    ]
