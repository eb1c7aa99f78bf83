"""Switchyard → a real LiteLLM proxy → a stand-in Anthropic upstream, driven by the official SDK."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.conftest import LiteLLMCloud
from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config, messages_body, sdk_final_or_error
from tests.standins.anthropic_faults import VIOLATIONS, boundaries, encode, frames
from tests.standins.anthropic_upstream import Fault, RawReply, stream_events, text_reply, tool_use_reply

pytestmark = pytest.mark.litellm


@pytest.fixture
def proxy(tmp_path: Path, cloud: LiteLLMCloud) -> Iterator[ProxyThread]:
    cfg = make_config(
        tmp_path, cloud_url=cloud.url, cloud={"simple_model": cloud.simple_model, "complex_model": cloud.complex_model}
    )
    env = {"SWITCHYARD_ROUTER_KEY": ROUTER_KEY, "SWITCHYARD_LITELLM_KEY": cloud.master_key}
    with ProxyThread(cfg, env) as p:
        yield p


def sdk(proxy: ProxyThread) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=ROUTER_KEY, max_retries=0, timeout=60)


def test_sdk_stream_through_switchyard_and_litellm(proxy: ProxyThread, cloud: LiteLLMCloud) -> None:
    cloud.upstream.script(tool_use_reply("Read", {"file_path": "/etc/hosts"}, text_before="Let me look."))
    with sdk(proxy).messages.stream(
        model="cloud",
        max_tokens=100,
        messages=[{"role": "user", "content": "what is in /etc/hosts?"}],
        tools=[
            {
                "name": "Read",
                "description": "read a file",
                "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
            }
        ],
    ) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "text" and final.content[0].text == "Let me look."
    assert final.content[1].type == "tool_use" and final.content[1].input == {"file_path": "/etc/hosts"}
    assert events[0] == "message_start" and events[-1] == "message_stop"
    sent = cloud.upstream.requests_tagged("messages")[-1]
    assert sent.json["messages"][0]["content"] == "what is in /etc/hosts?"
    rec = proxy.decisions()[0]
    assert (rec["route"], rec["model"], rec["status"]) == ("cloud", "cloud-complex", 200)


def test_sdk_non_streaming_and_model_mapping(proxy: ProxyThread, cloud: LiteLLMCloud) -> None:
    cloud.upstream.script(text_reply("simple tier answer"))
    msg = sdk(proxy).messages.create(
        model="cloud,cloud-simple", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text == "simple tier answer"
    rec = proxy.decisions()[0]
    assert rec["model"] == "cloud-simple" and rec["input_tokens"] == 25


def test_overloaded_upstream_is_retried_through_litellm(proxy: ProxyThread, cloud: LiteLLMCloud) -> None:
    cloud.upstream.fail_next(1, status=529)
    cloud.upstream.script(text_reply("ok"))
    r = httpx.post(
        proxy.url + "/v1/messages", headers=proxy.headers(), json=messages_body(model="cloud", stream=True), timeout=60
    )
    assert r.status_code == 200 and b"message_stop" in r.content
    # LiteLLM may retry on its own as well; what matters is the client never saw the 529.
    assert len(cloud.upstream.requests_tagged("messages")) >= 2


def test_wrong_litellm_key_is_reported_not_retried_forever(tmp_path: Path, cloud: LiteLLMCloud) -> None:
    cfg = make_config(tmp_path, cloud_url=cloud.url, cloud={"max_attempts": 3})
    env = {"SWITCHYARD_ROUTER_KEY": ROUTER_KEY, "SWITCHYARD_LITELLM_KEY": "sk-wrong"}
    with ProxyThread(cfg, env) as p:
        r = httpx.post(p.url + "/v1/messages", headers=p.headers(), json=messages_body(model="cloud"), timeout=60)
    assert 400 <= r.status_code < 600 and r.status_code != 200
    body = r.json()
    assert body["type"] == "error" and body["error"]["message"]
    assert "sk-wrong" not in r.text
    assert cloud.upstream.requests_tagged("messages") == []


def test_upstream_cut_mid_event_through_litellm_raises_in_the_sdk(proxy: ProxyThread, cloud: LiteLLMCloud) -> None:
    # The upstream dies inside an event, after the text block; whatever LiteLLM makes of it, the
    # SDK must not get a quiet partial message.
    reply = tool_use_reply("Write", {"file_path": "/tmp/a", "content": "x" * 40}, text_before="Writing it now.")
    cut = b"".join(stream_events(reply, "m")).find(b'"type":"tool_use"') + 10
    # Every attempt (LiteLLM's own retries included) gets the same fault; the fixture clears the rest.
    cloud.upstream.script(*[replace(reply, fault=Fault(cut_at=cut, stall_at=300, stall_s=0.2))] * 6)
    outcome = sdk_final_or_error(proxy)
    assert isinstance(outcome, anthropic.APIStatusError), outcome
    assert proxy.decisions()[0]["route"] == "cloud"


def test_text_delta_in_a_tool_block_through_litellm_is_not_passed_on(proxy: ProxyThread, cloud: LiteLLMCloud) -> None:
    raw = b"".join(stream_events(tool_use_reply("Write", {"file_path": "/tmp/a"}, tool_id="toolu_1"), "m"))
    bad = encode(VIOLATIONS["text_delta inside tool_use"](frames(raw)))
    cloud.upstream.script(*[RawReply(bad, fault=Fault(stall_at=boundaries(bad)[2], stall_s=0.2))] * 6)
    outcome = sdk_final_or_error(proxy)
    # Before: a Write call with input {} and stop_reason tool_use.
    assert isinstance(outcome, anthropic.APIStatusError), outcome
