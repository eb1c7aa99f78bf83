"""What the probed local server means for Claude Code (proxy/local_advice.py): every finding and fix,
word for word, since the installer, ``switchyard status`` and ``switchyard doctor`` all print them.

The capabilities come from the probes' own parsers fed recorded answers (tests/data/llamacpp, and the
Ollama / LM Studio / vLLM answers of tests/test_server_kinds.py), so the advice is tested on what the
real servers say.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from proxy.capabilities import UNKNOWN, LocalCapabilities, llamacpp_capabilities
from proxy.config import LocalConfig
from proxy.local_advice import (
    CLAUDE_CODE_MIN_TOKENS,
    OK,
    PROBLEM,
    Finding,
    context_finding,
    findings,
    reserve_for,
    takes_nothing,
    tools_finding,
    truncation_finding,
)
from proxy.local_advice import UNKNOWN as UNKNOWN_STATE
from proxy.server_kinds import lmstudio_capabilities, ollama_capabilities, vllm_capabilities
from proxy.tokens import estimate_request_tokens
from tests.test_capabilities import recorded
from tests.test_server_kinds import (
    LMS_V0,
    LMS_V1,
    OLLAMA_PS_EMPTY,
    OLLAMA_PS_LOADED,
    OLLAMA_SHOW,
    OLLAMA_VERSION,
    VLLM_MODELS,
    VLLM_VERSION,
)

DATA = Path(__file__).parent / "data"
RESERVE = 2048
NEED = CLAUDE_CODE_MIN_TOKENS + RESERVE  # 21,048

CONTEXT = "local context fits Claude Code"
TOOLS = "local chat template takes tools"
TRUNCATION = "local server does not cut prompts silently"

LLAMA_TOOLS_FIX = (
    "use a model whose chat template supports tools (llama.cpp: `--jinja`, or `--chat-template-file` with a "
    "tool-capable template)"
)
OLLAMA_FIX = (
    "set OLLAMA_CONTEXT_LENGTH=65536 for the Ollama server (or `PARAMETER num_ctx 65536` in a Modelfile) and "
    "restart it"
)
SET_CONTEXT_TOKENS = (
    "set local.context_tokens in the config to the server's context, so requests that cannot fit go to the "
    "cloud instead of failing or being cut"
)


def too_small(source: str, ctx: int, slots: str = "") -> str:
    return (
        f"{source}: {ctx:,} tokens per request{slots}; Claude Code's requests need about 19,000 plus 2,048 "
        "for the answer, so every one goes to the cloud"
    )


def by_title(found: list[Finding]) -> dict[str, Finding]:
    return {f.title: f for f in found}


def some(caps: LocalCapabilities | None) -> LocalCapabilities:
    assert caps is not None
    return caps


# ----- the figure itself -------------------------------------------------------------------------


def test_claude_code_min_tokens_is_the_routers_estimate_of_a_real_first_turn() -> None:
    body = json.loads((DATA / "claude_code_turn1.json").read_text())
    estimate = estimate_request_tokens(body)
    assert abs(CLAUDE_CODE_MIN_TOKENS - estimate) <= 0.10 * estimate, estimate


def test_reserve_is_what_routing_keeps_for_the_answer() -> None:
    assert reserve_for(LocalConfig()) == LocalConfig().output_reserve_tokens == RESERVE
    assert reserve_for(LocalConfig(output_reserve_tokens=4096, max_output_tokens=1024)) == 1024


# ----- llama.cpp ---------------------------------------------------------------------------------


def test_llamacpp_four_slots_of_8192() -> None:
    # llama-server -c 32768 -np 4: each slot gets a quarter, and SmolLM2's template takes no tools.
    caps = some(llamacpp_capabilities(recorded("props_smollm2_c32768_np4"), recorded("slots_smollm2_c32768_np4")))
    assert caps.describe() == (
        "llama.cpp b1-0c1e570, 8,192 tokens per request (4 slots), its chat template takes no tools, no images, "
        "also speaks Anthropic /v1/messages"
    )
    found = findings(caps, RESERVE)
    assert [f.title for f in found] == [CONTEXT, TOOLS]
    ctx, tools = found
    assert ctx == Finding(
        PROBLEM, CONTEXT, too_small("llama.cpp", 8192, " (4 slots)"),
        "restart llama-server with `-np 1` or a larger `-c` (e.g. `-c 65536 -np 1`)",
    )
    assert tools == Finding(
        PROBLEM, TOOLS,
        "llama.cpp would drop every tool definition, so Claude Code's tool-carrying requests go to the cloud",
        LLAMA_TOOLS_FIX,
    )
    assert not ctx.ok and not tools.ok
    assert takes_nothing(found)


def test_llamacpp_one_slot_with_a_template_that_takes_tools() -> None:
    caps = some(llamacpp_capabilities(recorded("props_smollm2_qwen_template_np1")))
    found = by_title(findings(caps, RESERVE))
    assert found[CONTEXT] == Finding(
        PROBLEM, CONTEXT, too_small("llama.cpp", 8192), "restart llama-server with a larger context, e.g. `-c 65536`"
    )
    assert found[TOOLS] == Finding(OK, TOOLS, "yes")
    assert takes_nothing(list(found.values()))  # the context alone sends everything to the cloud


def test_model_trained_for_fewer_tokens_than_claude_code_needs() -> None:
    # -c 32768 -np 1 would not help: SmolLM2 was trained for 8,192 and llama-server caps the slot there.
    caps = some(llamacpp_capabilities(
        recorded("props_smollm2_c32768_np4"), recorded("slots_smollm2_c32768_np4"),
        recorded("models_smollm2_c32768_np4"),
    ))
    assert caps.context_trained == 8192
    assert context_finding(caps, RESERVE).fix == (
        "the model itself was trained for 8,192 tokens and its server caps requests there: load a model with a "
        "longer context (64K or more) for Claude Code's local turns"
    )


def test_llamacpp_that_fits() -> None:
    caps = LocalCapabilities(kind="llama.cpp", version="b1-x", context_per_request=65536, slots=1, tools=True)
    found = findings(caps, RESERVE)
    assert found == [
        Finding(OK, CONTEXT, "65,536 tokens per request (llama.cpp); Claude Code needs about 21,048"),
        Finding(OK, TOOLS, "yes"),
    ]
    assert not takes_nothing(found)
    # Just enough still fits; one token less does not.
    assert context_finding(LocalCapabilities(kind="llama.cpp", context_per_request=NEED), RESERVE).state == OK
    assert context_finding(LocalCapabilities(kind="llama.cpp", context_per_request=NEED - 1), RESERVE).state == PROBLEM


# ----- Ollama ------------------------------------------------------------------------------------


def test_ollama_default_4096_is_too_small_and_cut_silently() -> None:
    caps = some(ollama_capabilities(OLLAMA_VERSION, OLLAMA_PS_EMPTY, OLLAMA_SHOW, "qwen3"))
    assert caps.context_per_request == 4096 and caps.truncates_silently
    found = findings(caps, RESERVE)
    assert [f.title for f in found] == [CONTEXT, TOOLS, TRUNCATION]
    ctx, tools, cut = found
    assert ctx == Finding(PROBLEM, CONTEXT, too_small("Ollama", 4096), OLLAMA_FIX)
    assert tools == Finding(OK, TOOLS, "yes")
    assert cut == Finding(
        PROBLEM, TRUNCATION,
        "Ollama truncates prompts longer than its context (4,096 tokens) without an error: the model would "
        "answer a mangled request. Switchyard sends longer requests to the cloud",
        OLLAMA_FIX,
    )
    assert takes_nothing(found)


def test_ollama_with_65536() -> None:
    ps = copy.deepcopy(OLLAMA_PS_LOADED)
    ps["models"][0]["context_length"] = 65536
    caps = some(ollama_capabilities(OLLAMA_VERSION, ps, OLLAMA_SHOW, "qwen3"))
    found = findings(caps, RESERVE)
    assert found == [
        Finding(OK, CONTEXT, "65,536 tokens per request (Ollama); Claude Code needs about 21,048"),
        Finding(OK, TOOLS, "yes"),
        Finding(OK, TRUNCATION, "Ollama truncates past 65,536 tokens; Switchyard sends nothing longer"),
    ]
    assert not takes_nothing(found)


def test_ollama_whose_context_is_unknown() -> None:
    caps = LocalCapabilities(kind="ollama", version="0.14.2", tools=True, truncates_silently=True)
    ctx, _tools, cut = findings(caps, RESERVE)
    assert ctx == Finding(
        UNKNOWN_STATE, CONTEXT,
        "Ollama does not say how much context one request gets; Ollama cuts longer prompts silently",
        SET_CONTEXT_TOKENS,
    )
    assert cut.state == PROBLEM and "(size unknown)" in cut.detail
    assert truncation_finding(LocalCapabilities(kind="llama.cpp"), RESERVE) is None


# ----- LM Studio and vLLM ------------------------------------------------------------------------


def test_lmstudio() -> None:
    fits = some(lmstudio_capabilities(None, LMS_V0, "qwen2.5-7b-instruct"))  # loaded with 32,768, tool_use
    assert [f.state for f in findings(fits, RESERVE)] == [OK, OK]
    small = some(lmstudio_capabilities(LMS_V1, LMS_V0, "google/gemma-4-26b-a4b"))  # loaded with 4,096
    ctx, tools = findings(small, RESERVE)
    assert ctx == Finding(
        PROBLEM, CONTEXT, too_small("LM Studio", 4096),
        "reload the model with a larger context length (LM Studio's load settings, or "
        "`lms load --context-length 65536`)",
    )
    assert tools.state == OK
    not_loaded = some(lmstudio_capabilities(LMS_V1, None, "deepseek-r1"))
    ctx, tools = findings(not_loaded, RESERVE)
    assert ctx == Finding(
        UNKNOWN_STATE, CONTEXT, "LM Studio does not say how much context one request gets", SET_CONTEXT_TOKENS
    )
    assert tools == Finding(UNKNOWN_STATE, TOOLS, "LM Studio does not say; tool requests are tried locally")
    assert not takes_nothing([ctx, tools])


def test_vllm() -> None:
    caps = some(vllm_capabilities(VLLM_MODELS, VLLM_VERSION, "Qwen/Qwen3-8B"))  # max_model_len 32,768
    ctx, tools = findings(caps, RESERVE)
    assert ctx == Finding(OK, CONTEXT, "32,768 tokens per request (vLLM); Claude Code needs about 21,048")
    assert tools == Finding(UNKNOWN_STATE, TOOLS, "vLLM does not say; tool requests are tried locally")
    small = LocalCapabilities(kind="vllm", version="0.12.0", context_per_request=8192)
    assert context_finding(small, RESERVE) == Finding(
        PROBLEM, CONTEXT, too_small("vLLM", 8192),
        "restart vLLM with `--max-model-len 65536` (the model must support it)",
    )


# ----- servers that say nothing ------------------------------------------------------------------


def test_unknown_kind() -> None:
    found = findings(UNKNOWN, RESERVE)
    assert found == [
        Finding(
            UNKNOWN_STATE, "local server capabilities", "the local server did not answer its discovery endpoints",
            "check that it is running; Switchyard tries it and falls back to the cloud",
        )
    ]
    assert not takes_nothing(found) and found[0].ok
    # A configured context is still checked: it is what routing goes by.
    ok = findings(UNKNOWN, RESERVE, configured=32768)
    assert [f.state for f in ok] == [UNKNOWN_STATE, OK]
    assert ok[1].detail == "32,768 tokens per request (local.context_tokens); Claude Code needs about 21,048"
    bad = findings(UNKNOWN, RESERVE, configured=8192)
    assert bad[1] == Finding(
        PROBLEM, CONTEXT, too_small("local.context_tokens", 8192),
        "set local.context_tokens to the server's real context (at least 21,048), or to 0 to read it from the "
        "server; and give the server a context of at least 65,536 tokens, or set local.context_tokens in the config",
    )
    assert takes_nothing(bad)


def test_openai_compatible_server_without_discovery() -> None:
    caps = LocalCapabilities(kind="openai", notes=("no discovery endpoint answered",))
    assert caps.describe() == "an OpenAI-compatible server, context size unknown"
    assert findings(caps, RESERVE) == [
        Finding(
            UNKNOWN_STATE, CONTEXT, "an OpenAI-compatible server does not say how much context one request gets",
            SET_CONTEXT_TOKENS,
        ),
        Finding(UNKNOWN_STATE, TOOLS, "an OpenAI-compatible server does not say; tool requests are tried locally"),
    ]


def test_configured_context_wins_over_the_servers() -> None:
    big = LocalCapabilities(kind="llama.cpp", context_per_request=131072, slots=4, tools=True)
    f = context_finding(big, RESERVE, configured=8192)
    assert f.state == PROBLEM and f.detail == too_small("local.context_tokens", 8192)  # no slots: not the server's
    assert f.fix == (
        "set local.context_tokens to the server's real context (at least 21,048), or to 0 to read it from the server"
    )
    small = LocalCapabilities(kind="llama.cpp", context_per_request=8192, slots=1)
    assert context_finding(small, RESERVE, configured=8192).fix.endswith(
        "; and restart llama-server with a larger context, e.g. `-c 65536`"
    )
    assert context_finding(small, RESERVE, configured=65536).state == OK


@pytest.mark.parametrize(
    ("tools", "state", "fix"),
    [(False, PROBLEM, "use a model whose chat template supports tools"), (None, UNKNOWN_STATE, ""), (True, OK, "")],
)
def test_tools(tools: bool | None, state: str, fix: str) -> None:
    f = tools_finding(LocalCapabilities(kind="vllm", tools=tools))
    assert (f.title, f.state, f.fix) == (TOOLS, state, fix)
    assert takes_nothing([f]) is (state == PROBLEM)


def test_takes_nothing_only_for_context_or_tools() -> None:
    cut = Finding(PROBLEM, TRUNCATION, "cut")
    assert not takes_nothing([cut])  # truncation alone: longer requests go to the cloud, the rest stay local
    assert not takes_nothing([])
    assert not takes_nothing([Finding(UNKNOWN_STATE, CONTEXT, "?"), Finding(UNKNOWN_STATE, TOOLS, "?")])
    assert takes_nothing([Finding(OK, CONTEXT, ""), Finding(PROBLEM, TOOLS, "")])


def test_findings_never_fail_on_odd_capabilities() -> None:
    odd: list[dict[str, Any]] = [
        {"kind": "llama.cpp"}, {"kind": "ollama", "truncates_silently": True}, {"kind": "lmstudio", "slots": 8},
        {"kind": "vllm", "context_trained": 1}, {"kind": "openai", "tools": False},
    ]
    for fields in odd:
        found = findings(LocalCapabilities(**fields), RESERVE)
        assert found and all(f.title and f.detail for f in found)
