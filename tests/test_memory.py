"""What a local answer keeps alive while it streams (bench/bench_memory.py measures the RSS)."""

from __future__ import annotations

import contextlib
import json
import threading
import tracemalloc
from pathlib import Path

import httpx

from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config
from tests.standins import OpenAILocal
from tests.standins.openai_local import ChunkReply, chat_chunks

DATA = Path(__file__).parent / "data"
IN_FLIGHT = 10


def _allocated_by_switchyard(snapshot: tracemalloc.Snapshot, base: tracemalloc.Snapshot) -> int:
    """Bytes allocated since ``base`` and still alive, by code under proxy/ (not stand-ins, not httpx)."""
    only_proxy = [tracemalloc.Filter(True, str(Path(__file__).parents[1] / "proxy" / "*"), all_frames=True)]
    stats = snapshot.filter_traces(only_proxy).compare_to(base.filter_traces(only_proxy), "filename")
    return sum(s.size_diff for s in stats)


def test_a_streaming_local_answer_does_not_hold_the_parsed_request(tmp_path: Path) -> None:
    body = json.loads((DATA / "claude_code_turn1.json").read_text())
    body.update(model="local", stream=True)
    payload = json.dumps(body).encode()
    with OpenAILocal() as local:
        # Each answer stalls after its first chunk: the requests are all in flight at the snapshot.
        local.default = ChunkReply(chat_chunks(text="hello there"), stall_after=2, stall_seconds=None)
        with ProxyThread(make_config(tmp_path, local_url=local.v1_url)) as p:
            headers = {"x-api-key": ROUTER_KEY, "content-type": "application/json"}

            def client() -> None:
                # The stand-in never finishes: stopping it ends the stream, with an error.
                with contextlib.suppress(httpx.HTTPError):
                    httpx.post(p.url + "/v1/messages", headers=headers, content=payload, timeout=30)

            threads = [threading.Thread(target=client) for _ in range(IN_FLIGHT)]
            tracemalloc.start(40)
            try:
                base = tracemalloc.take_snapshot()
                for t in threads:
                    t.start()
                local.wait_for_requests(IN_FLIGHT, tag="chat", timeout=30)
                snapshot = tracemalloc.take_snapshot()
            finally:
                tracemalloc.stop()
            per_request = _allocated_by_switchyard(snapshot, base) / IN_FLIGHT
            local.stop()
            for t in threads:
                t.join(30)
    # The client's 78 KB stay (a fallback is spliced from them); the parsed body (~175 KB of
    # objects), the translated request and its encoding (~80 KB) must not outlive the request's
    # start.  Before they were let go, this was ~330 KB per request in flight.
    assert per_request < 200_000, f"{per_request / 1000:.0f} KB kept alive per streaming local answer"


def test_a_fallback_after_the_body_was_let_go_sends_the_cloud_what_the_client_sent(tmp_path: Path) -> None:
    from tests.standins import AnthropicUpstream
    from tests.standins.anthropic_upstream import text_reply
    from tests.standins.openai_local import HTTPErrorReply

    tag = "<CCR-SUBAGENT-MODEL>local,qwen</CCR-SUBAGENT-MODEL>"
    body = {
        "max_tokens": 50,  # "model" is not the first key: the cloud body is re-encoded, from a re-parse
        "model": "claude-sonnet-4-5",
        "system": [{"type": "text", "text": f"{tag}You are a subagent."}],
        "messages": [{"role": "user", "content": "do the subtask"}],
    }
    with OpenAILocal() as local, AnthropicUpstream() as up:
        local.script(HTTPErrorReply(500))
        up.script(text_reply("from the cloud"))
        with ProxyThread(make_config(tmp_path, local_url=local.v1_url, cloud_url=up.url)) as p:
            r = httpx.post(p.url + "/v1/messages", headers=p.headers(), json=body, timeout=30)
            assert r.status_code == 200 and r.json()["content"][0]["text"] == "from the cloud"
            [rec] = p.decisions()
    assert rec["fallback"] == "http-500"
    [sent] = up.requests_tagged("messages")
    assert sent.json["model"] == "cloud-simple"
    assert sent.json["system"] == [{"type": "text", "text": "You are a subagent."}]  # the tag is gone
    assert sent.json["messages"] == body["messages"]
