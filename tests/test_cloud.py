"""The cloud path: byte-for-byte relay, headers, retries, and honest failure.

The stand-in Anthropic server plays LiteLLM directly where exact bytes and attempt counts matter;
`test_cloud_through_litellm.py` runs the same path through a real LiteLLM proxy.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from proxy.cloud import backoff_s, cloud_payload, retry_after_s
from proxy.config import CloudConfig
from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config, messages_body, sdk_final_or_error
from tests.standins import AnthropicUpstream, OpenAILocal
from tests.standins.anthropic_faults import VIOLATIONS, boundaries, encode, frames
from tests.standins.anthropic_upstream import (
    Fault,
    RawReply,
    StallReply,
    error_reply,
    text_reply,
    tool_use_reply,
)
from tests.standins.openai_local import StallReply as LocalStall
from tests.standins.sse import anthropic_grammar_errors, parse_sse


@pytest.fixture
def proxy(tmp_path: Path, upstream: AnthropicUpstream) -> Iterator[ProxyThread]:
    cfg = make_config(tmp_path, cloud_url=upstream.url)
    env = {"SWITCHYARD_ROUTER_KEY": ROUTER_KEY, "SWITCHYARD_LITELLM_KEY": "sk-litellm-test"}
    with ProxyThread(cfg, env) as p:
        yield p


def raw_direct(upstream: AnthropicUpstream, body: dict[str, object]) -> bytes:
    return httpx.post(upstream.url + "/v1/messages", json=body, timeout=10).content


def test_stream_is_relayed_byte_for_byte(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    reply = tool_use_reply("Write", {"file_path": "/tmp/a.txt", "content": "héllo\n" * 50}, text_before="Writing.")
    body = messages_body("write", model="cloud,claude-x", stream=True)
    upstream.script(reply)
    direct = raw_direct(upstream, {**body, "model": "claude-x"})
    upstream.script(reply)
    through = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=body, timeout=10)
    assert through.headers["content-type"].startswith("text/event-stream")
    # Message ids differ per response; everything else must be identical.
    import re

    def norm(b: bytes) -> bytes:
        return re.sub(rb'"id":\s*"msg_[^"]+"', b'"id":"X"', b)

    assert norm(through.content) == norm(direct)
    assert b"message_stop" in through.content


def test_non_streaming_relayed_unchanged(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    upstream.script(text_reply("plain"))
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud"))
    assert r.json()["content"] == [{"type": "text", "text": "plain"}]


def test_headers_forwarded_and_router_key_not(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    headers = proxy.headers(
        **{
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,fine-grained-tool-streaming-2025-05-14",
        }
    )
    httpx.post(proxy.url + "/v1/messages", headers=headers, json=messages_body(model="cloud,m1"))
    sent = upstream.requests_tagged("messages")[0]
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "claude-code-20250219,fine-grained-tool-streaming-2025-05-14"
    assert sent.headers["x-api-key"] == "sk-litellm-test"
    assert sent.headers["authorization"] == "Bearer sk-litellm-test"
    assert ROUTER_KEY not in str(dict(sent.headers))
    assert sent.json["model"] == "m1"


@pytest.mark.parametrize("status", [429, 529, 500, 503])
def test_retries_before_first_byte_then_succeeds(proxy: ProxyThread, upstream: AnthropicUpstream, status: int) -> None:
    upstream.fail_next(2, status=status, retry_after=0.2 if status == 429 else None)
    upstream.script(text_reply("lucky"))
    started = time.monotonic()
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud", stream=True))
    assert r.status_code == 200 and b"lucky" in r.content
    assert len(upstream.requests_tagged("messages")) == 3
    if status == 429:  # retry-after honoured: two waits of 0.2 s
        assert time.monotonic() - started >= 0.4


def test_gives_up_after_three_attempts_with_upstream_status(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    upstream.fail_next(5, status=529)
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud"))
    assert r.status_code == 529
    assert r.json()["error"]["type"] == "overloaded_error"
    assert len(upstream.requests_tagged("messages")) == 3
    [rec] = proxy.decisions()
    assert rec["status"] == 529 and "3 attempt(s)" in rec["detail"]


def test_client_errors_are_not_retried(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    upstream.script(error_reply(400, message="bad tool schema"))
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud"))
    assert r.status_code == 400 and r.json()["error"]["message"] == "bad tool schema"
    assert len(upstream.requests_tagged("messages")) == 1


def test_unreachable_cloud_is_a_clean_502(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, cloud_url="http://127.0.0.1:9")
    with ProxyThread(cfg) as p:
        r = httpx.post(p.url + "/v1/messages", headers=p.headers(), json=messages_body(model="cloud"))
    assert r.status_code == 502 and "cannot reach the cloud model" in r.json()["error"]["message"]


def test_mid_stream_drop_ends_with_an_error_event(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    upstream.script(text_reply("a long answer " * 20, drop_after_events=5))
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud", stream=True))
    assert r.status_code == 200
    assert b"message_stop" not in r.content
    assert r.content.rstrip().endswith(b"}")
    last = r.content.strip().split(b"\n\n")[-1]
    assert last.startswith(b"event: error\ndata: ")
    rec = proxy.decisions()[0]
    assert "cloud stream" in rec["detail"]


def test_retry_after_parsing_and_backoff() -> None:
    cfg = CloudConfig(backoff_base_s=0.5, backoff_max_s=8)
    assert retry_after_s({"retry-after": "3"}) == 3
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
    assert retry_after_s({}) is None
    assert [backoff_s(n, cfg, None) for n in (1, 2, 3, 6)] == [0.5, 1.0, 2.0, 8.0]
    assert backoff_s(1, cfg, {"retry-after": "2.5"}) == 2.5
    assert backoff_s(1, cfg, {"retry-after": "3600"}) is None  # too long to hold Claude Code: give up now


# ----- issue 13: faults on the cloud path ---------------------------------------------------------
RECORDED = (Path(__file__).parent / "data" / "litellm_stream_tool_use.sse").read_bytes()


def fault_proxy(tmp_path: Path, upstream: AnthropicUpstream, **cloud: Any) -> ProxyThread:
    # The runner serve uses: a client that disconnects cancels its handler (handler_cancellation).
    cfg = make_config(tmp_path, cloud_url=upstream.url, cloud=cloud)
    return ProxyThread(cfg, {"SWITCHYARD_ROUTER_KEY": ROUTER_KEY})


def stream_raw(p: ProxyThread, timeout: float = 60) -> httpx.Response:
    body = messages_body("write it", model="cloud", stream=True)
    return httpx.post(p.url + "/v1/messages", headers=p.headers(), json=body, timeout=timeout)


def test_cut_inside_an_event_ends_on_a_frame_boundary(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    # The case: five frames, twenty bytes of the sixth, then the connection closes.  The
    # pause after message_start makes the cut arrive after the first bytes went to the client.
    five = boundaries(RECORDED)[5]
    fault = Fault(cut_at=five + 20, stall_at=boundaries(RECORDED)[2], stall_s=0.2)
    upstream.script(RawReply(RECORDED, fault=fault))
    r = stream_raw(proxy)
    assert r.status_code == 200
    assert r.content.startswith(RECORDED[:five])
    rest = r.content[five:]
    assert rest.startswith(b"event: error\ndata: {") and rest.endswith(b"}\n\n") and rest.count(b"\n\n") == 1
    assert anthropic_grammar_errors(parse_sse(r.content), allow_error=True) == []
    rec = proxy.decisions()[0]
    assert rec["status"] == 200 and "unfinished event dropped" in rec["detail"]
    # The official SDK raises instead of returning the partial text.
    upstream.script(RawReply(RECORDED, fault=fault))
    assert isinstance(sdk_final_or_error(proxy), anthropic.APIStatusError)


def test_complete_stream_then_a_dropped_connection_is_complete(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    # message_stop arrived; the connection closing before the end of the chunked body loses nothing.
    upstream.script(RawReply(RECORDED, fault=Fault(cut_at=len(RECORDED))))
    r = stream_raw(proxy)
    assert r.content == RECORDED


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"], ids=["crlf", "cr"])
def test_other_line_endings_are_relayed_as_lf(proxy: ProxyThread, upstream: AnthropicUpstream, newline: bytes) -> None:
    upstream.script(RawReply(RECORDED.replace(b"\n", newline), fault=Fault(chunk_size=7)))
    assert stream_raw(proxy).content == RECORDED


@pytest.mark.parametrize(
    "fault", [Fault(length=True, cut_at=150), Fault(cut_at=150)], ids=["content-length", "chunked"]
)
def test_non_streaming_answer_cut_short_is_a_502(
    proxy: ProxyThread, upstream: AnthropicUpstream, fault: Fault
) -> None:
    upstream.script(text_reply("a non-streaming answer " * 20, fault=fault))
    # Bounded: before, a cut Content-Length body held the client for the keep-alive timeout (75 s).
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud"), timeout=30)
    assert r.status_code == 502 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["type"] == "api_error" and "cut short" in r.json()["error"]["message"]
    assert len(upstream.requests_tagged("messages")) == 1  # the work was done and billed: not repeated
    [rec] = proxy.decisions()
    assert rec["status"] == 502 and "cut short" in rec["detail"]


def test_non_streaming_answer_that_is_not_a_message_is_a_502(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    upstream.script(RawReply(b'{"id": "x", "content": []', content_type="application/json"))
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud"), timeout=30)
    assert r.status_code == 502 and "not valid JSON" in r.json()["error"]["message"]
    upstream.script(RawReply(b'{"id": "x"}', content_type="application/json"))
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud"), timeout=30)
    assert r.status_code == 502 and "not a message" in r.json()["error"]["message"]


def test_text_delta_inside_tool_use_is_not_relayed(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    bad = encode(VIOLATIONS["text_delta inside tool_use"](frames(RECORDED)))
    fault = Fault(stall_at=boundaries(bad)[2], stall_s=0.2)
    upstream.script(RawReply(bad, fault=fault))
    r = stream_raw(proxy)
    # Everything up to the tool block's start is passed on, then the error event; never the bad delta.
    good_end = bad.find(b"event: content_block_delta", bad.find(b'"type":"tool_use"'))
    assert r.content.startswith(bad[:good_end])
    assert r.content[good_end:].startswith(b"event: error\n")
    assert b"text_delta inside tool_use block 1" in r.content[good_end:]
    assert anthropic_grammar_errors(parse_sse(r.content), allow_error=True) == []
    rec = proxy.decisions()[0]
    assert "Anthropic grammar" in rec["detail"]
    upstream.script(RawReply(bad, fault=fault))
    assert isinstance(sdk_final_or_error(proxy), anthropic.APIStatusError)  # before: a Write call with input {}


def test_grammar_violation_before_the_first_byte_is_retried(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    # Sent in one piece, the violation is seen before anything went to the client: retried.
    upstream.script(RawReply(encode(VIOLATIONS["skipped block index"](frames(RECORDED)))), RawReply(RECORDED))
    r = stream_raw(proxy)
    assert r.content == RECORDED and len(upstream.requests_tagged("messages")) == 2


def test_error_event_instead_of_an_answer_is_an_http_error(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    err = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    upstream.script(*[RawReply(err)] * 3)
    r = stream_raw(proxy)
    # What Claude Code needs before the first byte: a real status, not an error event on a 200.
    assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
    assert len(upstream.requests_tagged("messages")) == 3


def test_events_after_message_stop_are_dropped(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    upstream.script(RawReply(encode(VIOLATIONS["events after message_stop"](frames(RECORDED)))))
    r = stream_raw(proxy)
    assert r.content == RECORDED  # the complete message, and nothing after it
    assert "after message_stop" in proxy.decisions()[0]["detail"]


def test_duplicate_model_keys_cannot_pass_the_router(proxy: ProxyThread, upstream: AnthropicUpstream) -> None:
    # The router reads the last "model" (not an explicit choice: routed to the cloud's complex tier,
    # the local server being down); the cloud must get that decision and nothing else.
    raw = (
        b'{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}],'
        b'"model":"some-expensive-model"}'
    )
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), content=raw, timeout=30)
    assert r.status_code == 200
    sent = upstream.requests_tagged("messages")[0].body
    models = [v for k, v in json.loads(sent, object_pairs_hook=list) if k == "model"]
    assert models == ["cloud-complex"]
    assert proxy.decisions()[0]["model"] == "cloud-complex"


def test_cloud_payload_sends_what_was_parsed() -> None:
    raw = (Path(__file__).parent / "data" / "claude_code_turn1.json").read_bytes()
    body = json.loads(raw)
    out = json.loads(cloud_payload(body, "cloud-complex"))
    assert out == {**body, "model": "cloud-complex"} and list(out) == list(body)
    dup = json.loads(b'{"model":"a","stream":true,"model":"b","stream":false}')
    sent = json.loads(cloud_payload(dup, "routed"), object_pairs_hook=list)
    assert sent == [("model", "routed"), ("stream", False)]


def test_a_cloud_that_stalls_before_its_headers_fails_within_the_first_byte_budget(
    tmp_path: Path, upstream: AnthropicUpstream
) -> None:
    upstream.default = StallReply(None)
    # timeout_s is the long-answer allowance; before, each of 3 attempts waited all of it.
    with fault_proxy(tmp_path, upstream, timeout_s=600.0, first_byte_timeout_s=1.0) as p:
        r = stream_raw(p, timeout=60)
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
        assert "within 1 s (cloud.first_byte_timeout_s)" in r.json()["error"]["message"]
        rec = p.decisions()[0]
    assert rec["status"] == 504
    upstream.wait_for_disconnects(1)  # the stalled upstream call was closed, not left hanging


def test_a_long_answer_may_outlast_the_first_byte_budget(tmp_path: Path, upstream: AnthropicUpstream) -> None:
    upstream.script(text_reply("slow but steady " * 4, event_delay=0.1))  # about 2 s in all
    with fault_proxy(tmp_path, upstream, first_byte_timeout_s=0.5) as p:
        r = stream_raw(p)
    assert r.status_code == 200 and b"message_stop" in r.content and b"event: error" not in r.content


def test_a_non_streaming_answer_gets_the_long_answer_allowance(tmp_path: Path, upstream: AnthropicUpstream) -> None:
    # A non-streaming answer arrives whole when it is done: its first byte is its last.
    upstream.script(StallReply(1.5, then=text_reply("took a while")))
    with fault_proxy(tmp_path, upstream, first_byte_timeout_s=0.5) as p:
        r = httpx.post(p.url + "/v1/messages", headers=p.headers(), json=messages_body(model="cloud"), timeout=60)
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "took a while"


def test_a_stalled_stream_ends_with_an_error_event(tmp_path: Path, upstream: AnthropicUpstream) -> None:
    upstream.script(RawReply(RECORDED, fault=Fault(stall_at=boundaries(RECORDED)[6])))
    with fault_proxy(tmp_path, upstream, timeout_s=1.0) as p:
        r = stream_raw(p)
        rec = p.decisions()[0]
    assert r.content.startswith(RECORDED[: boundaries(RECORDED)[6]])
    assert r.content.endswith(b"\n\n") and b"event: error" in r.content and b"stalled" in r.content
    assert "stalled" in rec["detail"]


def test_429_given_up_passes_retry_after_and_rate_limit_headers(
    proxy: ProxyThread, upstream: AnthropicUpstream
) -> None:
    limits = (("anthropic-ratelimit-requests-remaining", "0"), ("x-ratelimit-limit-requests", "50"))
    upstream.script(error_reply(429, retry_after=120, headers=limits))  # too long to wait for: given up at once
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud"), timeout=30)
    assert r.status_code == 429 and r.headers["retry-after"] == "120"
    assert r.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert r.headers["x-ratelimit-limit-requests"] == "50"
    assert len(upstream.requests_tagged("messages")) == 1
    upstream.clear()
    upstream.fail_next(3, status=429, retry_after=0.05)  # out of attempts: the last answer's header
    r = httpx.post(proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud"), timeout=30)
    assert r.status_code == 429 and r.headers["retry-after"] == "0.05"
    # Answers that succeed carry them too (Claude Code reads anthropic-ratelimit-* for its warnings).
    upstream.script(text_reply("ok", extra_headers=limits))
    assert stream_raw(proxy).headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_retry_after_beyond_the_first_byte_budget_is_given_up_at_once(
    tmp_path: Path, upstream: AnthropicUpstream
) -> None:
    upstream.fail_next(3, status=529, retry_after=5)
    with fault_proxy(tmp_path, upstream, first_byte_timeout_s=2.0) as p:
        r = stream_raw(p)
    assert r.status_code == 529 and r.headers["retry-after"] == "5"
    assert len(upstream.requests_tagged("messages")) == 1


def _send_and_hang_up(
    p: ProxyThread, upstream: AnthropicUpstream, body: dict[str, Any], requests: int, after: bytes = b""
) -> None:
    """Send a request on a raw socket, wait until the upstream got REQUESTS attempts (and the answer
    so far holds AFTER), then disconnect."""
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {ROUTER_KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
    ).encode()
    port = int(p.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + payload)
        upstream.wait_for_requests(requests, timeout=30, tag="messages")
        got = b""
        while after not in got:
            chunk = sock.recv(65536)
            assert chunk, f"the proxy closed the connection before sending {after!r}"
            got += chunk


def test_client_gone_mid_retry_stops_the_cloud_attempts(tmp_path: Path, upstream: AnthropicUpstream) -> None:
    upstream.fail_next(5, status=529, retry_after=1.0)
    with fault_proxy(tmp_path, upstream, backoff_base_s=1.0) as p:
        _send_and_hang_up(p, upstream, messages_body(model="cloud", stream=True), 1)
        rec = p.decisions(at_least=1, timeout=30)[0]
        time.sleep(2.0)  # longer than the backoff: a second attempt would have been made by now
        attempts = len(upstream.requests_tagged("messages"))
    assert rec["status"] == 499 and "the client went away" in rec["detail"]
    assert attempts == 1


def test_client_gone_while_the_cloud_stalls_closes_the_upstream_call(
    tmp_path: Path, upstream: AnthropicUpstream
) -> None:
    upstream.default = StallReply(None)
    with fault_proxy(tmp_path, upstream) as p:
        _send_and_hang_up(p, upstream, messages_body(model="cloud", stream=True), 1)
        upstream.wait_for_disconnects(1, timeout=30)  # the upstream connection was closed
        rec = p.decisions(at_least=1, timeout=30)[0]
        time.sleep(1.0)
        attempts = len(upstream.requests_tagged("messages"))
    assert rec["status"] == 499 and attempts == 1


def test_client_gone_mid_stream_closes_the_upstream_stream(tmp_path: Path, upstream: AnthropicUpstream) -> None:
    upstream.script(RawReply(RECORDED, fault=Fault(stall_at=boundaries(RECORDED)[6])))
    with fault_proxy(tmp_path, upstream) as p:
        _send_and_hang_up(p, upstream, messages_body(model="cloud", stream=True), 1, after=b"content_block_start")
        upstream.wait_for_disconnects(1, timeout=30)
        rec = p.decisions(at_least=1, timeout=30)[0]
    assert rec["status"] == 499 and rec["ttft_ms"] is not None
    assert "the client went away before the answer was complete after 200 was sent" in rec["detail"]


def test_no_cloud_fallback_for_a_client_that_has_left(tmp_path: Path, upstream: AnthropicUpstream) -> None:
    # A held local answer that fails after the client has gone must not call (and bill) the cloud.
    with OpenAILocal() as local:
        local.script(LocalStall(None))
        timeouts = {"first_token_timeout_s": 1.0}
        cfg = make_config(tmp_path, local_url=local.v1_url, cloud_url=upstream.url, local=timeouts)
        with ProxyThread(cfg, {"SWITCHYARD_ROUTER_KEY": ROUTER_KEY}) as p:
            payload = json.dumps(messages_body(model="local", stream=True)).encode()
            head = (
                f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {ROUTER_KEY}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
            ).encode()
            with socket.create_connection(("127.0.0.1", int(p.url.rsplit(":", 1)[1])), timeout=30) as sock:
                sock.sendall(head + payload)
                local.wait_for_requests(1, timeout=30, tag="chat")
            rec = p.decisions(at_least=1, timeout=30)[0]
    # The handler is cancelled as the client goes (serve's runner): the held answer stops there,
    # before its first-token timeout could fall back.
    assert (rec["route"], rec["status"], rec["fallback"]) == ("local", 499, None)
    assert upstream.requests_tagged("messages") == []
