"""What the local server can take: llama.cpp's discovery answers (recorded from the real server and
live), a probe that never crashes or stalls on garbage, and how the proxy refreshes it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from proxy.capabilities import (
    UNKNOWN,
    Fetch,
    LocalCapabilities,
    Reply,
    capabilities_from_json,
    capabilities_json,
    llamacpp_capabilities,
    probe,
    probe_url,
    server_root,
)
from proxy.config import LocalConfig
from proxy.health import LocalHealth
from tests.llama_server import LlamaOptions, LlamaPool, qwen_template
from tests.proxy_harness import ProxyThread, make_config
from tests.standins import AnthropicUpstream, OpenAILocal

DATA = Path(__file__).parent / "data" / "llamacpp"


def recorded(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text())


# --- llama.cpp, from answers recorded off the real server (tests/data/llamacpp/README.md) -------


def test_llamacpp_default_slots_share_one_pool() -> None:
    caps = llamacpp_capabilities(recorded("props_smollm2_c8192_auto"), recorded("slots_smollm2_c8192_auto"))
    assert caps is not None
    assert (caps.kind, caps.context_per_request, caps.slots) == ("llama.cpp", 8192, 4)
    assert (caps.tools, caps.vision, caps.anthropic) == (False, False, True)
    assert caps.version == "b1-0c1e570"
    assert "per-slot context 8,192 from /slots" in caps.notes


def test_llamacpp_four_explicit_slots_each_get_a_quarter() -> None:
    caps = llamacpp_capabilities(
        recorded("props_smollm2_c32768_np4"),
        recorded("slots_smollm2_c32768_np4"),
        recorded("models_smollm2_c32768_np4"),
    )
    assert caps is not None
    assert (caps.context_per_request, caps.slots, caps.context_trained) == (8192, 4, 8192)
    assert caps.describe() == (
        "llama.cpp b1-0c1e570, 8,192 tokens per request (4 slots), its chat template takes no tools, no images, "
        "also speaks Anthropic /v1/messages"
    )


def test_llamacpp_template_that_takes_tools() -> None:
    caps = llamacpp_capabilities(recorded("props_smollm2_qwen_template_np1"))
    assert caps is not None and caps.tools is True and caps.slots == 1


def test_props_of_another_server_or_garbage_is_not_llamacpp() -> None:
    props: Any
    for props in (None, [], "x", {}, {"default_generation_settings": {}}, {"total_slots": 4}, {"data": []}):
        assert llamacpp_capabilities(props) is None


def test_garbage_figures_stay_unknown() -> None:
    props = {
        "default_generation_settings": {"n_ctx": "lots"},
        "total_slots": -3,
        "chat_template_caps": {"supports_tools": "yes"},
        "modalities": [],
        "build_info": 7,
    }
    models = {"data": [{"meta": {"n_ctx_train": 0}}]}
    caps = llamacpp_capabilities(props, slots=[{"n_ctx": True}, "junk"], models=models)
    assert caps is not None
    assert (caps.context_per_request, caps.slots, caps.tools, caps.vision, caps.version, caps.context_trained) == (
        None, None, None, None, None, None,
    )


def test_server_root() -> None:
    assert server_root("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080"
    assert server_root("http://127.0.0.1:8080/v1/") == "http://127.0.0.1:8080"
    assert server_root("http://h:1/api") == "http://h:1/api"


def test_json_round_trip_and_tolerance() -> None:
    caps = llamacpp_capabilities(recorded("props_smollm2_c32768_np4"), recorded("slots_smollm2_c32768_np4"))
    assert caps is not None
    assert capabilities_from_json(json.loads(json.dumps(capabilities_json(caps)))) == caps
    assert capabilities_from_json("garbage") == UNKNOWN
    assert capabilities_from_json({"kind": "evil", "tools": "yes", "context_per_request": -1}) == UNKNOWN


# --- the probe over a fetch that misbehaves --------------------------------------------------------


def fetch_of(answers: dict[str, Reply], calls: list[str] | None = None) -> Fetch:
    async def fetch(method: str, path: str, body: Any) -> Reply:
        if calls is not None:
            calls.append(path)
        return answers.get(path, (404, None))

    return fetch


async def test_probe_of_a_server_that_answers_nothing_is_unknown() -> None:
    caps = await probe(fetch_of({}), "m")
    assert caps.kind == "unknown" and not caps.known
    assert caps.notes == ("GET /v1/models answered 404",)
    dead = await probe(fetch_of({"/v1/models": (0, None)}), "m")
    assert dead.notes == ("GET /v1/models answered nothing",)


async def test_probe_of_a_server_answering_garbage_everywhere() -> None:
    garbage: dict[str, Reply] = {
        p: (200, "garbage")
        for p in ("/props", "/slots", "/api/version", "/api/ps", "/api/v0/models", "/v1/models", "/version")
    }
    caps = await probe(fetch_of(garbage), "m")
    assert caps.kind == "openai"  # it does answer /v1/models, with nothing we can read
    assert (caps.context_per_request, caps.tools, caps.vision, caps.anthropic) == (None, None, None, None)


async def test_a_refresh_asks_the_kind_found_last_time_first() -> None:
    answers: dict[str, Reply] = {
        "/props": (200, recorded("props_smollm2_c8192_auto")),
        "/slots": (200, recorded("slots_smollm2_c8192_auto")),
        "/v1/models": (200, {"data": []}),
    }
    calls: list[str] = []
    caps = await probe(fetch_of(answers, calls), "m", hint="llama.cpp")
    assert caps.kind == "llama.cpp"
    assert calls == ["/props", "/slots", "/v1/models"]


async def test_a_stalling_server_leaves_the_last_capabilities_and_never_holds_a_request(tmp_path: Path) -> None:
    """A server that accepts connections and never answers: the probe gives up within its budget."""
    stalled = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await stalled.wait()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    local = LocalConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", health_timeout_s=0.2)
    health = LocalHealth(local, cache_s=5.0)
    known = LocalCapabilities(kind="llama.cpp", context_per_request=4096)
    health.capabilities = known
    async with aiohttp.ClientSession() as session:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        caps = await health.refresh_capabilities(session)
        elapsed = loop.time() - t0
    stalled.set()
    server.close()
    await server.wait_closed()
    assert caps == known
    # 0.2 s per request, a handful of requests, plus the one-second margin of the whole-probe budget.
    assert elapsed < 0.2 * 4 + 1 + 0.5


async def test_capabilities_refresh_in_the_background_only_when_health_is_probed() -> None:
    with OpenAILocal() as srv:
        local = LocalConfig(base_url=srv.v1_url, model="local-model", health_timeout_s=1.0)
        health = LocalHealth(local, cache_s=60.0)
        async with aiohttp.ClientSession() as session:
            assert await health.is_up(session)
            assert health._cap_task is not None
            await health._cap_task
            assert health.capability_probes == 1
            for _ in range(5):  # within the health cache: no new probe of either kind
                assert await health.is_up(session)
            assert (health.checks, health.capability_probes) == (1, 1)
            await health.close()
    assert health.capabilities.kind == "openai"


# --- the real llama-server ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (LlamaOptions(ctx=8192, parallel=-1), (8192, 4, False)),
        (LlamaOptions(ctx=32768, parallel=4), (8192, 4, False)),
        (LlamaOptions(ctx=8192, parallel=1, chat_template_file=qwen_template()), (8192, 1, True)),
    ],
    ids=["auto-slots", "four-slots", "qwen-template"],
)
async def test_probe_reads_the_real_llama_server(
    llama: LlamaPool, options: LlamaOptions, expected: tuple[int, int, bool]
) -> None:
    server = llama.get(options)
    caps = await probe_url(server.v1_url, server.model)
    assert caps.kind == "llama.cpp"
    assert (caps.context_per_request, caps.slots, caps.tools) == expected
    assert caps.vision is False and caps.anthropic is True
    assert caps.context_trained == 8192
    # Ground truth: what the server reports for its slots.
    slots = server.get("/slots")
    assert min(s["n_ctx"] for s in slots) == caps.context_per_request


def test_proxy_health_reports_the_real_servers_capabilities(llama: LlamaPool, tmp_path: Path) -> None:
    server = llama.get(LlamaOptions(ctx=8192, parallel=-1))
    cfg = make_config(tmp_path, local_url=server.v1_url, local={"model": server.model})
    with ProxyThread(cfg) as proxy:
        body = httpx.get(f"{proxy.url}/health", headers=proxy.headers()).json()
    local = body["local"]
    assert (local["kind"], local["context_per_request"], local["tools"]) == ("llama.cpp", 8192, False)
    assert local["summary"].startswith("llama.cpp b1-0c1e570, 8,192 tokens per request (4 slots)")


def test_the_proxy_learns_how_the_local_server_counts_tokens(tmp_path: Path) -> None:
    """A server that counts more prompt tokens than the estimate: later requests are checked with its count."""
    from tests.proxy_harness import messages_body
    from tests.standins.openai_local import ChunkReply, chat_chunks

    with OpenAILocal() as srv, AnthropicUpstream() as cloud:
        cfg = make_config(
            tmp_path, local_url=srv.v1_url, cloud_url=cloud.url,
            local={"context_tokens": 6000, "output_reserve_tokens": 100},
        )
        with ProxyThread(cfg) as proxy:
            # ~5,600 tokens by the estimate: it fits 6,000 with the 100-token reserve, unless scaled.
            body = messages_body("word " * 4000, model="local", max_tokens=100, stream=True)  # explicit: local
            srv.script(ChunkReply(chat_chunks(text="ok", usage=(9000, 2))))
            assert httpx.post(f"{proxy.url}/v1/messages", headers=proxy.headers(), json=body).status_code == 200
            estimate = proxy.decisions(1)[0]
            health = httpx.get(f"{proxy.url}/health", headers=proxy.headers()).json()
            assert health["local_token_factor"]["samples"] == 1
            # The same size of request, now routed (not explicit): 9,000 / estimate of the server's tokens.
            routed = {**body, "model": "claude-sonnet-4-5"}
            httpx.post(f"{proxy.url}/v1/messages", headers=proxy.headers(), json=routed)
            rec = proxy.decisions(2)[1]
    assert estimate["input_tokens"] == 9000 and estimate["route"] == "local"
    assert rec["reason"] == "local-context"
    assert "the server's own counts" in rec["detail"] and "> 6,000 per request" in rec["detail"]
