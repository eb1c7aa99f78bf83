"""The real Claude Code CLI through Switchyard to a real llama.cpp server with a real model.

SmolLM2-135M answers whatever it answers: these tests assert on structure and routing (who answered,
why, what Claude Code did with it), never on the quality of the text.  The cloud is a stand-in
Anthropic server, so a request that must not reach the local model is seen arriving there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.claude_cli import ClaudeResult, run_claude
from tests.llama_server import LlamaOptions, LlamaPool, LlamaServer
from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config
from tests.standins import AnthropicUpstream
from tests.standins.anthropic_upstream import text_reply

CLOUD_TEXT = "Answered by the cloud stand-in."


@pytest.fixture
def smollm2(llama: LlamaPool) -> LlamaServer:
    """SmolLM2 with its own template (no tools), 8,192 tokens per request: what `-c 8192` gives."""
    return llama.get(LlamaOptions(ctx=8192, parallel=-1))


@pytest.fixture
def cloud() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as srv:
        srv.default = text_reply(CLOUD_TEXT)
        yield srv


# SmolLM2 samples (Claude Code sends no temperature): a "one short sentence" sometimes runs past 64
# tokens, and Claude Code turns a max_tokens stop into "response exceeded the 32000 output token
# maximum" (exit 1).  256 leaves room for the ramble and still bounds the turn.
CAP = 256

def proxy_for(tmp_path: Path, server: LlamaServer, cloud: AnthropicUpstream, **local: Any) -> ProxyThread:
    cfg = make_config(
        tmp_path,
        local_url=server.v1_url,
        cloud_url=cloud.url,
        local={"model": server.model, "first_token_timeout_s": 120.0, "read_timeout_s": 60.0, **local},
        routing={"classify_timeout_s": 60.0},
    )
    return ProxyThread(cfg)


def claude(claude_bin: str, proxy: ProxyThread, project: Path, prompt: str, *args: str,
           model: str | None = None) -> ClaudeResult:
    return run_claude(
        claude_bin, prompt, base_url=proxy.url, api_key=ROUTER_KEY, cwd=project, timeout=300,
        model=model, extra_args=args,
    )


def main_records(proxy: ProxyThread, n: int) -> list[dict[str, Any]]:
    return [r for r in proxy.decisions(n, timeout=30) if r["status"]]


def test_an_explicitly_local_request_is_answered_by_the_real_model(
    claude_bin: str, tmp_path: Path, project: Path, smollm2: LlamaServer, cloud: AnthropicUpstream
) -> None:
    with proxy_for(tmp_path, smollm2, cloud, max_output_tokens=CAP) as proxy:
        result = claude(claude_bin, proxy, project, "Say hello in one short sentence.", "--tools", "", model="local")
        recs = main_records(proxy, 1)
    assert result.returncode == 0, result.describe()
    assert result.stdout.strip(), result.describe()
    assert CLOUD_TEXT not in result.stdout
    assert cloud.requests_tagged("messages") == []
    assert recs, "no decision record"
    rec = recs[-1]
    assert (rec["route"], rec["reason"], rec["model"], rec["status"], rec["fallback"]) == (
        "local", "explicit", "smollm2", 200, None,
    )
    # The real server's own usage figures came back: it evaluated Claude Code's ~3,000-token prompt.
    assert rec["input_tokens"] > 1000
    assert 0 < rec["output_tokens"] <= CAP
    # ... and its prompt-cache figures, read from llama.cpp's timings.
    assert rec["cached_tokens"] is not None and 0 <= rec["cached_tokens"] < rec["input_tokens"]
    assert rec["prefill_ms"] > 0


def test_a_request_too_big_for_the_local_context_goes_to_the_cloud_without_asking_the_classifier(
    claude_bin: str, tmp_path: Path, project: Path, smollm2: LlamaServer, cloud: AnthropicUpstream
) -> None:
    with proxy_for(tmp_path, smollm2, cloud) as proxy:
        result = claude(claude_bin, proxy, project, "Create hello.txt containing a greeting.")
        recs = main_records(proxy, 1)
    assert result.returncode == 0, result.describe()
    assert CLOUD_TEXT in result.stdout
    rec = recs[-1]
    assert (rec["route"], rec["reason"], rec["model"]) == ("cloud", "local-context", "cloud-complex")
    assert rec["classify_ms"] is None
    # Both numbers: Claude Code's full request (~19,000 with its 24 tools) and what llama.cpp gives one request.
    assert "> 8,192 per request (llama.cpp)" in rec["detail"]
    estimate = int(rec["detail"].split()[0].lstrip("~").replace(",", ""))
    assert 15_000 < estimate < 25_000
    assert len(cloud.requests_tagged("messages")) == 1


def test_tools_for_a_template_that_takes_none_go_to_the_cloud(
    claude_bin: str, tmp_path: Path, project: Path, smollm2: LlamaServer, cloud: AnthropicUpstream
) -> None:
    # One tool keeps the request well inside 8,192 tokens, so only the missing tool support decides.
    with proxy_for(tmp_path, smollm2, cloud) as proxy:
        result = claude(claude_bin, proxy, project, "Read README.md and summarise it.", "--tools", "Read")
        recs = main_records(proxy, 1)
    assert result.returncode == 0, result.describe()
    assert CLOUD_TEXT in result.stdout
    rec = recs[-1]
    assert (rec["route"], rec["reason"]) == ("cloud", "local-no-tools")
    assert rec["detail"] == "1 tool; llama.cpp's chat template takes none (they would be dropped)"
    sent = cloud.requests_tagged("messages")[-1].json
    assert [t["name"] for t in sent["tools"]] == ["Read"]
