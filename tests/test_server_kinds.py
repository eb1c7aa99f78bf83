"""The Ollama, LM Studio and vLLM capability probes: pure functions on recorded answers (shapes as in
proxy/server_kinds.py's docstring, garbage included), then :func:`proxy.capabilities.probe` through
:func:`proxy.capabilities.aiohttp_fetch` against each stand-in (none of which serves llama.cpp's /props).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from proxy.capabilities import Fetch, LocalCapabilities, Reply, aiohttp_fetch, probe
from proxy.server_kinds import (
    OLLAMA_DEFAULT_CONTEXT,
    lmstudio_capabilities,
    ollama_capabilities,
    ollama_name,
    ollama_num_ctx,
    probe_lmstudio,
    probe_ollama,
    probe_vllm,
    version_tuple,
    vllm_capabilities,
)
from tests.standins import LMStudioLocal, OllamaLocal, OpenAILocal, VLLMLocal
from tests.standins.base import StandinServer

HUGE_DIGITS = "9" * 5000  # int() of this raises ValueError (Python's 4,300-digit limit)
HUGE_TEXT = "x" * 1_000_000

# ----- recorded answers --------------------------------------------------------------------------

OLLAMA_VERSION = {"version": "0.14.2"}
OLLAMA_PS_EMPTY: dict[str, Any] = {"models": []}
OLLAMA_PS_LOADED = {
    "models": [
        {
            "name": "qwen3:latest", "model": "qwen3:latest", "size": 6654289920,
            "digest": "500a1f067a9f782620b40bee6f7b0c89e17ae61f686b92c24933e4ca4b2b8b41",
            "details": {"parent_model": "", "format": "gguf", "family": "qwen3", "families": ["qwen3"],
                        "parameter_size": "8.2B", "quantization_level": "Q4_K_M"},
            "expires_at": "2025-06-04T14:38:31.83753-07:00", "size_vram": 6654289920, "context_length": 32768,
        }
    ]
}
OLLAMA_SHOW: dict[str, Any] = {
    "license": "Apache License 2.0",
    "parameters": 'repeat_penalty                 1\nstop                           "<|im_start|>"\n'
                  'stop                           "<|im_end|>"\ntemperature                    0.6',
    "template": "{{ .Prompt }}",
    "details": {"parent_model": "", "format": "gguf", "family": "qwen3", "families": ["qwen3"],
                "parameter_size": "8.2B", "quantization_level": "Q4_K_M"},
    "model_info": {"general.architecture": "qwen3", "general.parameter_count": 8190735360,
                   "qwen3.context_length": 40960, "qwen3.block_count": 36},
    "capabilities": ["completion", "tools", "thinking"],
    "modified_at": "2025-05-01T10:00:00.000000000+02:00",
}
OLLAMA_SHOW_NUM_CTX = {
    **OLLAMA_SHOW, "parameters": "num_ctx                        65536\n" + OLLAMA_SHOW["parameters"],
}

LMS_V0 = {
    "object": "list",
    "data": [
        {"id": "qwen2-vl-7b-instruct", "object": "model", "type": "vlm", "publisher": "mlx-community",
         "arch": "qwen2_vl", "compatibility_type": "mlx", "quantization": "4bit", "state": "not-loaded",
         "max_context_length": 32768},
        {"id": "gemma-3-4b-it", "object": "model", "type": "vlm", "publisher": "lmstudio-community",
         "arch": "gemma3", "compatibility_type": "gguf", "quantization": "Q4_K_M", "state": "loaded",
         "max_context_length": 131072, "loaded_context_length": 4096},
        {"id": "qwen2.5-7b-instruct", "object": "model", "type": "llm", "publisher": "lmstudio-community",
         "arch": "qwen2", "compatibility_type": "gguf", "quantization": "Q4_K_M", "state": "loaded",
         "max_context_length": 131072, "loaded_context_length": 32768, "capabilities": ["tool_use"]},
        {"id": "text-embedding-nomic-embed-text-v1.5", "object": "model", "type": "embeddings",
         "publisher": "nomic-ai", "arch": "nomic-bert", "compatibility_type": "gguf", "quantization": "Q4_0",
         "state": "not-loaded", "max_context_length": 2048},
    ],
}
LMS_V1: dict[str, Any] = {
    "models": [
        {"type": "llm", "publisher": "google", "key": "google/gemma-4-26b-a4b", "display_name": "Gemma 4 26B A4B",
         "architecture": "gemma4", "quantization": {"name": "Q4_K_M", "bits_per_weight": 4},
         "size_bytes": 17990911801, "params_string": "26B-A4B",
         "loaded_instances": [
             {"id": "google/gemma-4-26b-a4b", "config": {"context_length": 4096, "eval_batch_size": 512,
                                                          "parallel": 4, "flash_attention": True,
                                                          "num_experts": 8, "offload_kv_cache_to_gpu": True}},
         ],
         "max_context_length": 262144, "format": "gguf",
         "capabilities": {"vision": True, "trained_for_tool_use": True,
                          "reasoning": {"allowed_options": ["off", "on"], "default": "on"}},
         "description": None, "variants": ["google/gemma-4-26b-a4b@q4_k_m"],
         "selected_variant": "google/gemma-4-26b-a4b@q4_k_m"},
        {"type": "llm", "publisher": "deepseek", "key": "deepseek-r1", "display_name": "DeepSeek R1",
         "architecture": "deepseek", "quantization": {"name": "Q4_K_M", "bits_per_weight": 4},
         "size_bytes": 40492610355, "params_string": "671B", "loaded_instances": [], "max_context_length": 131072,
         "format": "gguf", "capabilities": {"vision": False, "trained_for_tool_use": False}, "description": None},
        {"type": "embedding", "publisher": "gaianet", "key": "text-embedding-nomic-embed-text-v1.5-embedding",
         "display_name": "Nomic Embed Text v1.5", "quantization": {"name": "F16", "bits_per_weight": 16},
         "size_bytes": 274290560, "params_string": None, "loaded_instances": [], "max_context_length": 2048,
         "format": "gguf"},
    ]
}


def _vllm_card(model_id: str, max_model_len: int | None = 32768, parent: str | None = None) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1735689600, "owned_by": "vllm",
            "root": f"/models/{model_id}", "parent": parent, "max_model_len": max_model_len,
            "permission": [{"id": "modelperm-0a1b", "object": "model_permission", "created": 1735689600,
                            "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                            "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                            "organization": "*", "group": None, "is_blocking": False}]}


VLLM_MODELS = {"object": "list", "data": [_vllm_card("Qwen/Qwen3-8B"),
                                          _vllm_card("sql-lora", max_model_len=None, parent="Qwen/Qwen3-8B")]}
VLLM_VERSION = {"version": "0.12.0"}
LLAMACPP_MODELS = {"object": "list", "data": [{"id": "qwen.gguf", "object": "model", "created": 1,
                                               "owned_by": "llamacpp", "meta": {"n_ctx_train": 40960, "n_ctx": 8192}}]}
LMS_OPENAI_MODELS = {"object": "list", "data": [{"id": "qwen2.5-7b-instruct", "object": "model",
                                                 "owned_by": "organization_owner"}]}
OLLAMA_OPENAI_MODELS = {"object": "list", "data": [{"id": "qwen3:latest", "object": "model", "created": 1,
                                                    "owned_by": "library"}]}

GARBAGE: list[Any] = [None, 0, -1, 3.5, True, "", HUGE_TEXT, HUGE_DIGITS, [], [1, "a", None], {}, {"x": HUGE_TEXT}]


def joined(caps: LocalCapabilities) -> str:
    return "\n".join(caps.notes)


# ----- helpers -----------------------------------------------------------------------------------


def test_version_tuple() -> None:
    assert version_tuple("0.14.0") == (0, 14, 0)
    assert version_tuple("0.14.0-rc1") == (0, 14, 0)
    assert version_tuple("v0.12.0+cu128") == (0, 12, 0)
    assert version_tuple("0.11.1.dev5+g1234abc") == (0, 11, 1)
    assert version_tuple("0.13") == (0, 13, 0)
    assert version_tuple("dev") is None
    assert version_tuple(None) is None
    assert version_tuple(HUGE_DIGITS) is None


def test_ollama_names() -> None:
    assert ollama_name("qwen3") == "qwen3:latest"
    assert ollama_name("qwen3:latest") == "qwen3:latest"
    assert ollama_name("qwen3:8b") == "qwen3:8b"
    assert ollama_name("hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M") == "hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M"
    assert ollama_name("registry.local:5000/team/coder") == "registry.local:5000/team/coder:latest"


def test_ollama_num_ctx() -> None:
    assert ollama_num_ctx(OLLAMA_SHOW_NUM_CTX["parameters"]) == 65536
    assert ollama_num_ctx("num_ctx 8192.0") == 8192
    assert ollama_num_ctx(OLLAMA_SHOW["parameters"]) is None
    for bad in ("num_ctx -5", "num_ctx 0", "num_ctx lots", "num_ctx 1e9", "num_ctx " + HUGE_DIGITS,
                "num_ctx 99999999999", "num_ctx_extra 4096", HUGE_TEXT, *GARBAGE):
        assert ollama_num_ctx(bad) is None, bad


# ----- Ollama: recorded answers ------------------------------------------------------------------


def test_ollama_not_loaded_gets_the_4096_default_and_says_so() -> None:
    caps = ollama_capabilities(OLLAMA_VERSION, OLLAMA_PS_EMPTY, OLLAMA_SHOW, "qwen3")
    assert caps is not None
    assert caps.kind == "ollama" and caps.version == "0.14.2"
    assert caps.context_per_request == OLLAMA_DEFAULT_CONTEXT == 4096
    assert caps.truncates_silently is True
    assert caps.tools is True and caps.vision is False and caps.anthropic is True
    assert caps.context_trained == 40960
    notes = joined(caps)
    assert "default" in notes and "OLLAMA_CONTEXT_LENGTH" in notes and "num_ctx" in notes


def test_ollama_vram_tiered_default_is_mentioned_for_0_15_5_and_later() -> None:
    caps = ollama_capabilities({"version": "0.15.5"}, OLLAMA_PS_EMPTY, OLLAMA_SHOW, "qwen3")
    assert caps is not None and caps.context_per_request == 4096
    assert "VRAM" in joined(caps)
    older = ollama_capabilities(OLLAMA_VERSION, OLLAMA_PS_EMPTY, OLLAMA_SHOW, "qwen3")
    assert older is not None and "VRAM" not in joined(older)


def test_ollama_num_ctx_parameter_sets_the_context() -> None:
    caps = ollama_capabilities(OLLAMA_VERSION, OLLAMA_PS_EMPTY, OLLAMA_SHOW_NUM_CTX, "qwen3:latest")
    assert caps is not None and caps.context_per_request == 65536
    assert "num_ctx 65,536" in joined(caps)


def test_ollama_loaded_model_context_wins_and_latest_tag_matches() -> None:
    for model in ("qwen3", "qwen3:latest"):
        caps = ollama_capabilities(OLLAMA_VERSION, OLLAMA_PS_LOADED, OLLAMA_SHOW_NUM_CTX, model)
        assert caps is not None and caps.context_per_request == 32768, model
        assert "/api/ps" in joined(caps)
    other = ollama_capabilities(OLLAMA_VERSION, OLLAMA_PS_LOADED, OLLAMA_SHOW, "qwen3:8b")
    assert other is not None and other.context_per_request == 4096  # a different tag is not loaded


def test_ollama_loaded_without_context_length_falls_back() -> None:
    ps = copy.deepcopy(OLLAMA_PS_LOADED)
    del ps["models"][0]["context_length"]
    caps = ollama_capabilities({"version": "0.9.6"}, ps, OLLAMA_SHOW_NUM_CTX, "qwen3")
    assert caps is not None and caps.context_per_request == 65536
    assert "no context_length" in joined(caps)
    assert caps.anthropic is False and "0.14.0" in joined(caps)


def test_ollama_unknown_model_leaves_context_unknown() -> None:
    caps = ollama_capabilities(OLLAMA_VERSION, OLLAMA_PS_EMPTY, None, "nope")
    assert caps is not None and caps.kind == "ollama" and caps.context_per_request is None
    assert caps.tools is None and caps.vision is None
    assert "no model nope" in joined(caps)


def test_ollama_vision_and_missing_capabilities() -> None:
    show = {**OLLAMA_SHOW, "capabilities": ["completion", "vision"]}
    caps = ollama_capabilities(OLLAMA_VERSION, OLLAMA_PS_EMPTY, show, "qwen3")
    assert caps is not None and caps.vision is True and caps.tools is False
    bare = {k: v for k, v in OLLAMA_SHOW.items() if k != "capabilities"}
    caps = ollama_capabilities(OLLAMA_VERSION, OLLAMA_PS_EMPTY, bare, "qwen3")
    assert caps is not None and caps.tools is None and caps.vision is None


@pytest.mark.parametrize(
    ("version", "ps"),
    [
        (None, OLLAMA_PS_EMPTY),
        ([], OLLAMA_PS_EMPTY),
        ({}, OLLAMA_PS_EMPTY),
        ({"version": 14}, OLLAMA_PS_EMPTY),
        ({"version": ""}, OLLAMA_PS_EMPTY),
        ({"version": HUGE_TEXT}, OLLAMA_PS_EMPTY),
        (VLLM_VERSION, None),  # vLLM's /version shape, but no /api/ps
        (OLLAMA_VERSION, {}),
        (OLLAMA_VERSION, {"models": "none"}),
        (OLLAMA_VERSION, []),
        (OLLAMA_VERSION, VLLM_MODELS),
    ],
)
def test_ollama_not_identified(version: Any, ps: Any) -> None:
    assert ollama_capabilities(version, ps, OLLAMA_SHOW, "qwen3") is None


@pytest.mark.parametrize("bad", GARBAGE)
def test_ollama_garbage_leaves_figures_unknown(bad: Any) -> None:
    ps = {"models": [bad, {"name": "qwen3:latest", "model": bad, "context_length": bad}]}
    show = {"parameters": bad, "model_info": bad, "capabilities": bad}
    caps = ollama_capabilities({"version": "0.14.2"}, ps, show, "qwen3")
    assert caps is not None and caps.kind == "ollama"
    # garbage context_length: the default (show is a dict, its parameters say nothing)
    assert caps.context_per_request == 4096
    assert caps.context_trained is None
    assert caps.tools in (None, False) and caps.vision in (None, False)
    assert all(len(n) < 400 for n in caps.notes)
    caps = ollama_capabilities({"version": "0.14.2"}, {"models": [{"name": bad, "context_length": 8192}]}, bad, "qwen3")
    assert caps is not None and caps.context_per_request in (None, 4096)


def test_ollama_garbage_sizes() -> None:
    bads: list[Any] = [-4096, 0, 1 << 40, "8192x", HUGE_DIGITS, 4096.5, True]
    for bad in bads:
        ps = {"models": [{"name": "qwen3:latest", "context_length": bad}]}
        info = {"general.architecture": "qwen3", "qwen3.context_length": bad}
        caps = ollama_capabilities(OLLAMA_VERSION, ps, {**OLLAMA_SHOW, "model_info": info}, "qwen3")
        assert caps is not None and caps.context_per_request == 4096 and caps.context_trained is None, bad


# ----- LM Studio: recorded answers ---------------------------------------------------------------


def test_lmstudio_v0_loaded() -> None:
    caps = lmstudio_capabilities(None, LMS_V0, "qwen2.5-7b-instruct")
    assert caps is not None and caps.kind == "lmstudio"
    assert caps.context_per_request == 32768 and caps.context_trained == 131072
    assert caps.tools is True and caps.vision is False
    assert caps.anthropic is None and caps.version is None and caps.truncates_silently is False
    assert "loaded_context_length" in joined(caps)


def test_lmstudio_v0_not_loaded_and_vlm() -> None:
    caps = lmstudio_capabilities(None, LMS_V0, "qwen2-vl-7b-instruct")
    assert caps is not None and caps.context_per_request is None and caps.context_trained == 32768
    assert caps.vision is True and caps.tools is None
    assert "not loaded" in joined(caps)
    caps = lmstudio_capabilities(None, LMS_V0, "gemma-3-4b-it")  # before 0.3.16: no capabilities list
    assert caps is not None and caps.context_per_request == 4096 and caps.tools is None and caps.vision is True


def test_lmstudio_v0_embeddings_and_missing_model() -> None:
    caps = lmstudio_capabilities(None, LMS_V0, "text-embedding-nomic-embed-text-v1.5")
    assert caps is not None and caps.vision is False and "embedding" in joined(caps)
    caps = lmstudio_capabilities(None, LMS_V0, "nope")
    assert caps is not None and caps.kind == "lmstudio" and caps.context_per_request is None
    assert "no model nope" in joined(caps)


def test_lmstudio_v1_loaded() -> None:
    caps = lmstudio_capabilities(LMS_V1, LMS_V0, "google/gemma-4-26b-a4b")
    assert caps is not None and caps.kind == "lmstudio"
    assert caps.context_per_request == 4096 and caps.context_trained == 262144
    assert caps.vision is True and caps.tools is True and caps.anthropic is None
    notes = joined(caps)
    assert "loaded_instances[].config.context_length" in notes and "0.4.1" in notes and "4 predictions" in notes
    variant = lmstudio_capabilities(LMS_V1, None, "google/gemma-4-26b-a4b@q4_k_m")
    assert variant is not None and variant.context_per_request == 4096


def test_lmstudio_v1_not_loaded_and_no_native_tools() -> None:
    caps = lmstudio_capabilities(LMS_V1, None, "deepseek-r1")
    assert caps is not None and caps.context_per_request is None and caps.context_trained == 131072
    assert caps.tools is None and caps.vision is False
    assert "not loaded" in joined(caps) and "default tool-call format" in joined(caps)


def test_lmstudio_v1_instances() -> None:
    v1 = copy.deepcopy(LMS_V1)
    v1["models"][0]["loaded_instances"].append(
        {"id": "google/gemma-4-26b-a4b:2", "config": {"context_length": 16384}})
    v1["models"][0]["loaded_instances"][0]["config"]["context_length"] = 65536
    by_key = lmstudio_capabilities(v1, None, "google/gemma-4-26b-a4b")
    assert by_key is not None and by_key.context_per_request == 16384 and "2 loaded instances" in joined(by_key)
    by_instance = lmstudio_capabilities(v1, None, "google/gemma-4-26b-a4b:2")
    assert by_instance is not None and by_instance.context_per_request == 16384


@pytest.mark.parametrize(
    ("v1", "v0"),
    [
        (None, None),
        ({"models": []}, {"object": "list", "data": []}),
        ({"models": [{"key": "a"}]}, LMS_OPENAI_MODELS),  # v1 without loaded_instances; /v1/models shape
        (OLLAMA_PS_LOADED, OLLAMA_OPENAI_MODELS),
        (VLLM_MODELS, VLLM_MODELS),
        (LLAMACPP_MODELS, LLAMACPP_MODELS),
        ([], []),
        ({"data": LMS_V0["data"]}, None),  # the v0 shape at the v1 path is not v1
    ],
)
def test_lmstudio_not_identified(v1: Any, v0: Any) -> None:
    assert lmstudio_capabilities(v1, v0, "qwen2.5-7b-instruct") is None


@pytest.mark.parametrize("bad", GARBAGE)
def test_lmstudio_garbage_leaves_figures_unknown(bad: Any) -> None:
    v0 = {"data": [bad, {"id": "m", "state": "loaded", "type": bad, "max_context_length": bad,
                         "loaded_context_length": bad, "capabilities": bad}]}
    caps = lmstudio_capabilities(None, v0, "m")
    assert caps is not None and caps.context_per_request is None and caps.context_trained is None
    assert caps.tools in (None, True) and caps.vision is None
    v1 = {"models": [bad, {"key": "m", "loaded_instances": [bad, {"id": bad, "config": bad},
                                                            {"config": {"context_length": bad, "parallel": bad}}],
                           "max_context_length": bad, "capabilities": bad, "variants": bad, "type": bad}]}
    caps = lmstudio_capabilities(v1, None, "m")
    assert caps is not None and caps.context_per_request is None and caps.context_trained is None
    assert caps.tools is None and caps.vision is None
    assert all(len(n) < 400 for n in caps.notes)


# ----- vLLM: recorded answers --------------------------------------------------------------------


def test_vllm_max_model_len() -> None:
    caps = vllm_capabilities(VLLM_MODELS, VLLM_VERSION, "Qwen/Qwen3-8B")
    assert caps is not None and caps.kind == "vllm" and caps.version == "0.12.0"
    assert caps.context_per_request == 32768 and caps.anthropic is True
    assert caps.tools is None and caps.vision is None and caps.truncates_silently is False
    notes = joined(caps)
    assert "max_model_len 32,768" in notes and "--enable-auto-tool-choice" in notes


def test_vllm_lora_adapter_uses_its_base_model_length() -> None:
    caps = vllm_capabilities(VLLM_MODELS, VLLM_VERSION, "sql-lora")
    assert caps is not None and caps.context_per_request == 32768 and "adapter" in joined(caps)


def test_vllm_versions() -> None:
    old = vllm_capabilities(VLLM_MODELS, {"version": "0.10.2"}, "Qwen/Qwen3-8B")
    assert old is not None and old.anthropic is False
    bads: list[Any] = [None, {}, {"version": 12}, {"version": HUGE_TEXT}, {"version": "dev"}, []]
    for bad in bads:
        caps = vllm_capabilities(VLLM_MODELS, bad, "Qwen/Qwen3-8B")
        assert caps is not None and caps.anthropic is None and caps.context_per_request == 32768, bad


def test_vllm_unknown_model() -> None:
    caps = vllm_capabilities(VLLM_MODELS, VLLM_VERSION, "other")
    assert caps is not None and caps.context_per_request is None and "no model other" in joined(caps)


@pytest.mark.parametrize(
    "models", [None, [], {}, LLAMACPP_MODELS, LMS_OPENAI_MODELS, OLLAMA_OPENAI_MODELS, LMS_V0, {"data": "vllm"},
               {"data": [{"id": "m", "owned_by": "sglang", "max_model_len": 8192}]}]
)
def test_vllm_not_identified(models: Any) -> None:
    assert vllm_capabilities(models, VLLM_VERSION, "Qwen/Qwen3-8B") is None


@pytest.mark.parametrize("bad", GARBAGE)
def test_vllm_garbage_leaves_figures_unknown(bad: Any) -> None:
    models = {"data": [bad, {"id": "m", "owned_by": "vllm", "max_model_len": bad, "parent": bad}]}
    caps = vllm_capabilities(models, {"version": bad}, "m")
    assert caps is not None and caps.context_per_request is None and caps.anthropic is None


# ----- the probes over a fake fetch: request budgets ---------------------------------------------


def recording_fetch(answers: dict[tuple[str, str], Reply]) -> tuple[Fetch, list[tuple[str, str, Any]]]:
    calls: list[tuple[str, str, Any]] = []

    async def fetch(method: str, path: str, body: Any) -> Reply:
        calls.append((method, path, body))
        return answers.get((method, path), (404, None))

    return fetch, calls


async def test_probe_request_budgets() -> None:
    fetch, calls = recording_fetch({
        ("GET", "/api/version"): (200, OLLAMA_VERSION), ("GET", "/api/ps"): (200, OLLAMA_PS_EMPTY),
        ("POST", "/api/show"): (200, OLLAMA_SHOW),
    })
    assert (await probe_ollama(fetch, "qwen3")) is not None
    assert [c[1] for c in calls] == ["/api/version", "/api/ps", "/api/show"]
    assert calls[2][2] == {"model": "qwen3"}

    fetch, calls = recording_fetch({("GET", "/api/v1/models"): (200, LMS_V1), ("GET", "/api/v0/models"): (200, LMS_V0)})
    assert (await probe_lmstudio(fetch, "deepseek-r1")) is not None
    assert [c[1] for c in calls] == ["/api/v1/models"]

    fetch, calls = recording_fetch(
        {("GET", "/v1/models"): (200, VLLM_MODELS), ("GET", "/version"): (200, VLLM_VERSION)}
    )
    assert (await probe_vllm(fetch, "Qwen/Qwen3-8B")) is not None
    assert [c[1] for c in calls] == ["/v1/models", "/version"]


@pytest.mark.parametrize("prober", [probe_ollama, probe_lmstudio, probe_vllm])
async def test_probes_give_up_on_a_silent_or_failing_server(
    prober: Callable[[Fetch, str], Awaitable[LocalCapabilities | None]],
) -> None:
    answers: list[Reply] = [(0, None), (404, None), (500, {"error": "boom"}), (200, None), (200, HUGE_TEXT), (200, [])]
    for answer in answers:
        calls: list[str] = []

        async def always(
            method: str, path: str, body: Any, answer: Reply = answer, calls: list[str] = calls
        ) -> Reply:
            calls.append(path)
            return answer

        assert (await prober(always, "m")) is None
        assert len(calls) <= 2


# ----- the probe against the stand-ins -----------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def ollama() -> Iterator[OllamaLocal]:
    with OllamaLocal(models=("qwen3",)) as srv:
        yield srv


@pytest.fixture
def lmstudio() -> Iterator[LMStudioLocal]:
    with LMStudioLocal(models=("qwen2.5-7b-instruct", "qwen2-vl-7b-instruct")) as srv:
        yield srv


@pytest.fixture
def vllm() -> Iterator[VLLMLocal]:
    with VLLMLocal(models=("Qwen/Qwen3-8B",), max_model_len=40960, lora_adapters=("sql-lora",)) as srv:
        yield srv


async def probe_of(
    session: aiohttp.ClientSession, srv: OpenAILocal, model: str, hint: str | None = None
) -> LocalCapabilities:
    return await probe(aiohttp_fetch(session, srv.v1_url, "", 5.0), model, hint)


def paths(srv: StandinServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in srv.requests]


async def test_ollama_default_context(session: aiohttp.ClientSession, ollama: OllamaLocal) -> None:
    caps = await probe_of(session, ollama, "qwen3")
    assert caps.kind == "ollama" and caps.version == "0.14.2" and caps.probed_at > 0
    assert caps.context_per_request == 4096 and caps.truncates_silently is True
    assert caps.tools is True and caps.vision is False and caps.anthropic is True and caps.context_trained == 40960
    assert "default" in joined(caps) and "OLLAMA_CONTEXT_LENGTH" in joined(caps)
    # llama.cpp's /props was asked first and is not needed
    assert paths(ollama) == ["GET /props", "GET /api/version", "GET /api/ps", "POST /api/show"]
    show = ollama.requests[-1]
    assert show.json == {"model": "qwen3"}


async def test_ollama_num_ctx_and_loaded(session: aiohttp.ClientSession, ollama: OllamaLocal) -> None:
    ollama.num_ctx = 65536
    caps = await probe_of(session, ollama, "qwen3:latest")
    assert caps.kind == "ollama" and caps.context_per_request == 65536 and caps.truncates_silently
    ollama.loaded, ollama.context_length = True, 32768
    ollama.clear()
    caps = await probe_of(session, ollama, "qwen3", hint="ollama")
    assert caps.context_per_request == 32768 and "/api/ps" in joined(caps)
    assert paths(ollama) == ["GET /api/version", "GET /api/ps", "POST /api/show"]  # the hint skips /props


async def test_ollama_old_version_and_unknown_model(session: aiohttp.ClientSession) -> None:
    with OllamaLocal(models=("llama3.2",), version="0.13.5", capabilities=None) as srv:
        caps = await probe_of(session, srv, "llama3.2")
        assert caps.kind == "ollama" and caps.anthropic is False and caps.tools is None
        caps = await probe_of(session, srv, "missing")
        assert caps.kind == "ollama" and caps.context_per_request is None


async def test_lmstudio_loaded_and_not_loaded(session: aiohttp.ClientSession, lmstudio: LMStudioLocal) -> None:
    caps = await probe_of(session, lmstudio, "qwen2.5-7b-instruct")
    assert caps.kind == "lmstudio" and caps.context_per_request == 32768 and caps.context_trained == 131072
    assert caps.tools is True and caps.vision is False and caps.anthropic is None
    assert paths(lmstudio) == ["GET /props", "GET /api/version", "GET /api/v1/models"]

    caps = await probe_of(session, lmstudio, "qwen2-vl-7b-instruct")
    assert caps.kind == "lmstudio" and caps.context_per_request is None and caps.context_trained == 131072
    assert "not loaded" in joined(caps)

    lmstudio.loaded = False
    caps = await probe_of(session, lmstudio, "qwen2.5-7b-instruct")
    assert caps.kind == "lmstudio" and caps.context_per_request is None


async def test_lmstudio_0_3_answers_v0_only(session: aiohttp.ClientSession) -> None:
    with LMStudioLocal(models=("qwen2-vl-7b-instruct",), model_type="vlm", capabilities=None, api_v1=False,
                       loaded_context_length=8192) as srv:
        caps = await probe_of(session, srv, "qwen2-vl-7b-instruct")
        assert caps.kind == "lmstudio" and caps.context_per_request == 8192
        assert caps.vision is True and caps.tools is None
        assert paths(srv)[-2:] == ["GET /api/v1/models", "GET /api/v0/models"]
        srv.loaded = False
        caps = await probe_of(session, srv, "qwen2-vl-7b-instruct")
        assert caps.kind == "lmstudio" and caps.context_per_request is None and caps.context_trained == 131072


async def test_vllm_max_model_len_through_the_probe(session: aiohttp.ClientSession, vllm: VLLMLocal) -> None:
    caps = await probe_of(session, vllm, "Qwen/Qwen3-8B")
    assert caps.kind == "vllm" and caps.version == "0.12.0" and caps.context_per_request == 40960
    assert caps.anthropic is True and caps.tools is None and "--enable-auto-tool-choice" in joined(caps)
    assert paths(vllm) == ["GET /props", "GET /api/version", "GET /api/v1/models", "GET /api/v0/models",
                           "GET /v1/models", "GET /version"]
    caps = await probe_of(session, vllm, "sql-lora", hint="vllm")
    assert caps.kind == "vllm" and caps.context_per_request == 40960
    vllm.version = None
    caps = await probe_of(session, vllm, "Qwen/Qwen3-8B", hint="vllm")
    assert caps.kind == "vllm" and caps.version is None and caps.anthropic is None


async def test_plain_openai_server_is_openai(session: aiohttp.ClientSession, openai_local: OpenAILocal) -> None:
    caps = await probe_of(session, openai_local, "local-model")
    assert caps.kind == "openai" and caps.context_per_request is None and caps.anthropic is None


@pytest.mark.parametrize(
    ("prober", "kind"), [(probe_ollama, "ollama"), (probe_lmstudio, "lmstudio"), (probe_vllm, "vllm")]
)
async def test_no_probe_claims_another_kind(
    session: aiohttp.ClientSession,
    prober: Callable[[Fetch, str], Awaitable[LocalCapabilities | None]],
    kind: str,
) -> None:
    servers: dict[str, OpenAILocal] = {
        "ollama": OllamaLocal(loaded=True), "lmstudio": LMStudioLocal(), "vllm": VLLMLocal(), "openai": OpenAILocal(),
    }
    for name, srv in servers.items():
        with srv:
            found = await prober(aiohttp_fetch(session, srv.v1_url, "", 5.0), srv.models[0])
            if name == kind:
                assert found is not None and found.kind == kind
            else:
                assert found is None, f"{kind} probe took {name} for its own"


async def test_unreachable_server_is_unknown(session: aiohttp.ClientSession) -> None:
    srv = VLLMLocal().start()
    srv.stop()
    caps = await probe_of(session, srv, "Qwen/Qwen3-8B")
    assert caps.kind == "unknown" and not caps.known
