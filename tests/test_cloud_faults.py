"""The cloud fault suite: a recorded LiteLLM stream, broken at every frame boundary and inside frames,
stalled, garbled, framed with a wrong Content-Length, and bent out of the Anthropic grammar.

The strict client is the official ``anthropic`` SDK.  For every fault it must get either the complete
message (the same text, tool input and stop_reason as the intact stream) or an ``APIStatusError``:
an HTTP error status, or a well-formed ``error`` event at the end of the stream.  A partial message,
a wrong tool input, a JSON error, a dropped connection or a hang is a defect.  For streams the relayed
bytes are also checked on their own (a second request with a plain HTTP client): the client must get
a stream that keeps the grammar, ended by ``message_stop`` or by an ``error`` event.

The recorded stream (``tests/data/litellm_stream_tool_use.sse``) is what LiteLLM 1.106.2 sent for a
stand-in answer of one text block and one ``Write`` call.  The stand-in answers any retry with the
intact stream, so a fault that Switchyard retries away ends in the complete message.

``SWITCHYARD_FAULT_REPORT=FILE`` writes each case's outcome to FILE as JSON (the README's counts).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config
from tests.standins import AnthropicUpstream
from tests.standins.anthropic_faults import VIOLATIONS, boundaries, encode, frames, garbles, inner_offsets
from tests.standins.anthropic_upstream import Fault, RawReply, StallReply
from tests.standins.sse import anthropic_grammar_errors, parse_sse

RECORDED = (Path(__file__).parent / "data" / "litellm_stream_tool_use.sse").read_bytes()
EXPECTED_TEXT = "I'll create the file."
EXPECTED_INPUT = {"file_path": "/tmp/hello.txt", "content": "Hello, world!\n"}
TOOLS: list[Any] = [
    {
        "name": "Write",
        "description": "write a file",
        "input_schema": {
            "type": "object",
            "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
        },
    }
]
MESSAGE_JSON = (
    b'{"id":"msg_a72dd5d160924fbdbeb2f565","type":"message","role":"assistant","model":"cloud-complex",'
    b'"content":[{"type":"text","text":"I\'ll create the file."},{"type":"tool_use",'
    b'"id":"toolu_01AbCdEfGhIjKlMnOpQrStUv","name":"Write","input":{"file_path":"/tmp/hello.txt",'
    b'"content":"Hello, world!\\n"}}],"stop_reason":"tool_use","stop_sequence":null,'
    b'"usage":{"input_tokens":25,"output_tokens":12}}'
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as srv:
        yield srv


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, upstream: AnthropicUpstream) -> Iterator[ProxyThread]:
    tmp = tmp_path_factory.mktemp("faults")
    # Short timeouts so that stalls end quickly; generous enough for a busy 2-core machine.
    cfg = make_config(tmp, cloud_url=upstream.url, cloud={"timeout_s": 2.0, "first_byte_timeout_s": 4.0})
    with ProxyThread(cfg, {"SWITCHYARD_ROUTER_KEY": ROUTER_KEY}) as p:
        yield p


OUTCOMES: dict[str, dict[str, str]] = {}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    path = os.environ.get("SWITCHYARD_FAULT_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(OUTCOMES, f, indent=1, sort_keys=True)


@pytest.fixture
def cloud(upstream: AnthropicUpstream) -> Iterator[AnthropicUpstream]:
    upstream.reset_script()
    upstream.clear()
    upstream.default = RawReply(RECORDED)
    yield upstream
    upstream.reset_script()


@dataclass(frozen=True)
class Outcome:
    kind: str  # "complete", "error" (APIStatusError) or "defect"
    detail: str = ""


def _judge_message(msg: anthropic.types.Message) -> Outcome:
    got = [(b.type, getattr(b, "text", None), getattr(b, "input", None)) for b in msg.content]
    want = [("text", EXPECTED_TEXT, None), ("tool_use", None, EXPECTED_INPUT)]
    if got == want and msg.stop_reason == "tool_use":
        return Outcome("complete")
    return Outcome("defect", f"silent: stop_reason={msg.stop_reason!r} content={got!r}")


def _judge_exception(exc: Exception) -> Outcome:
    if isinstance(exc, anthropic.APIStatusError):
        return Outcome("error", f"{exc.status_code}: {str(exc)[:120]}")
    return Outcome("defect", f"{type(exc).__name__}: {str(exc)[:160]}")


def _client(proxy: ProxyThread) -> anthropic.AsyncAnthropic:
    # No retries: every outcome is the proxy's own.  The timeout only bounds a hang.
    return anthropic.AsyncAnthropic(base_url=proxy.url, api_key=ROUTER_KEY, max_retries=0, timeout=60)


async def sdk_stream(proxy: ProxyThread) -> Outcome:
    client = _client(proxy)
    try:
        async with client.messages.stream(
            model="cloud", max_tokens=200, messages=[{"role": "user", "content": "write it"}], tools=TOOLS
        ) as stream:
            async for _ in stream:
                pass
            return _judge_message(await stream.get_final_message())
    except Exception as exc:
        return _judge_exception(exc)
    finally:
        await client.close()


async def sdk_create(proxy: ProxyThread) -> Outcome:
    client = _client(proxy)
    try:
        msg = await client.messages.create(
            model="cloud", max_tokens=200, messages=[{"role": "user", "content": "write it"}], tools=TOOLS
        )
        return _judge_message(msg)
    except Exception as exc:
        return _judge_exception(exc)
    finally:
        await client.close()


async def relayed_stream_problems(proxy: ProxyThread) -> list[str]:
    """What is wrong with the bytes the client gets (empty: a valid stream, or a clean HTTP error)."""
    body = {"model": "cloud", "max_tokens": 200, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    try:
        async with httpx.AsyncClient(timeout=60) as c:
            r = await c.post(proxy.url + "/v1/messages", json=body, headers=proxy.headers())
    except httpx.HTTPError as exc:
        return [f"{type(exc).__name__}: {exc}"]
    if r.status_code != 200:
        ok = r.headers.get("content-type", "").startswith("application/json") and r.json().get("type") == "error"
        return [] if ok else [f"HTTP {r.status_code} without an Anthropic error body"]
    if not r.content.endswith(b"\n\n"):
        return ["the stream does not end on a frame boundary"]
    return anthropic_grammar_errors(parse_sse(r.content), allow_error=True)


def _remember(request: pytest.FixtureRequest, outcome: Outcome, problems: list[str] | None = None) -> None:
    OUTCOMES[request.node.name] = {**asdict(outcome), "relayed": "; ".join(problems or [])}


async def check_stream_fault(
    request: pytest.FixtureRequest, proxy: ProxyThread, cloud: AnthropicUpstream, reply: Any
) -> Outcome:
    cloud.script(reply)
    outcome = await sdk_stream(proxy)
    cloud.reset_script()
    cloud.script(reply)
    problems = await relayed_stream_problems(proxy)
    _remember(request, outcome, problems)
    assert outcome.kind != "defect", outcome.detail
    assert problems == [], problems
    return outcome


# ----- cut: every frame boundary, and inside every frame ----------------------------------------
CUTS = [("boundary", n) for n in boundaries(RECORDED)] + [("inside", n) for n in inner_offsets(RECORDED)]


@pytest.mark.parametrize(("where", "offset"), CUTS, ids=[f"{w}-{n}" for w, n in CUTS])
async def test_cut_stream(
    request: pytest.FixtureRequest, proxy: ProxyThread, cloud: AnthropicUpstream, where: str, offset: int
) -> None:
    outcome = await check_stream_fault(request, proxy, cloud, RawReply(RECORDED, fault=Fault(cut_at=offset)))
    if offset == len(RECORDED):
        assert outcome.kind == "complete"  # the whole stream, then the connection closes: nothing lost


# ----- stall at a byte, mid-stream (cloud.timeout_s ends it) ------------------------------------
STALLS = [boundaries(RECORDED)[1], boundaries(RECORDED)[3] + 9, RECORDED.find(b'"partial_json":"{'), len(RECORDED) - 5]


@pytest.mark.parametrize("offset", STALLS)
async def test_stall_stream(
    request: pytest.FixtureRequest, proxy: ProxyThread, cloud: AnthropicUpstream, offset: int
) -> None:
    await check_stream_fault(request, proxy, cloud, RawReply(RECORDED, fault=Fault(stall_at=offset)))


async def test_stall_before_headers(
    request: pytest.FixtureRequest, proxy: ProxyThread, cloud: AnthropicUpstream
) -> None:
    cloud.default = StallReply(None)
    outcome = await sdk_stream(proxy)
    _remember(request, outcome)
    assert outcome.kind == "error" and outcome.detail.startswith("504"), outcome.detail


def _mid_stream(body: bytes) -> Fault:
    """A pause after message_start and ping, so that they reach the client first and the fault
    arrives mid-stream.  (Were both to come in one read on a slow machine, the fault would be seen
    before the first byte and retried instead: also a right answer.)"""
    return Fault(stall_at=boundaries(body)[2], stall_s=0.2)


# ----- garbled bytes --------------------------------------------------------------------------------
GARBLES = garbles(RECORDED)


@pytest.mark.parametrize("name", sorted(GARBLES))
async def test_garbled_stream(
    request: pytest.FixtureRequest, proxy: ProxyThread, cloud: AnthropicUpstream, name: str
) -> None:
    fault = Fault(garble=(GARBLES[name],), stall_at=boundaries(RECORDED)[2], stall_s=0.2)
    await check_stream_fault(request, proxy, cloud, RawReply(RECORDED, fault=fault))


# ----- grammar violations ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(VIOLATIONS))
async def test_grammar_violation(
    request: pytest.FixtureRequest, proxy: ProxyThread, cloud: AnthropicUpstream, name: str
) -> None:
    bad = encode(VIOLATIONS[name](frames(RECORDED)))
    await check_stream_fault(request, proxy, cloud, RawReply(bad, fault=_mid_stream(bad)))


# ----- non-streaming answers: short, long, cut, garbled ------------------------------------------
HALF = len(MESSAGE_JSON) // 2
NON_STREAMING = {
    "cut at half its Content-Length": Fault(length=True, cut_at=HALF),
    "chunked, cut at half": Fault(cut_at=HALF),
    "chunked, cut 1 byte short": Fault(cut_at=len(MESSAGE_JSON) - 1),
    "Content-Length shorter than the body": Fault(content_length=HALF),
    "Content-Length longer than the body": Fault(content_length=len(MESSAGE_JSON) + 100),
    "cut right after the headers": Fault(length=True, cut_at=0),
    "garbled JSON": Fault(length=True, garble=((HALF, b"\x00"),)),
    "stalled mid-body": Fault(length=True, stall_at=HALF),
}
# A body that stops arriving may run into cloud.timeout_s as a whole (504) or between reads (502).
STATUSES = {name: ("502", "504") if "stalled" in name else ("502",) for name in NON_STREAMING}


@pytest.mark.parametrize("name", sorted(NON_STREAMING))
async def test_non_streaming_fault(
    request: pytest.FixtureRequest, proxy: ProxyThread, cloud: AnthropicUpstream, name: str
) -> None:
    reply = RawReply(MESSAGE_JSON, content_type="application/json", fault=NON_STREAMING[name])
    cloud.default = RawReply(MESSAGE_JSON, content_type="application/json", fault=Fault(length=True))
    cloud.script(reply)
    before = len(proxy.decisions(at_least=0))
    outcome = await sdk_create(proxy)
    _remember(request, outcome)
    assert outcome.kind == "error" and outcome.detail.startswith(STATUSES[name]), outcome.detail
    rec = proxy.decisions(at_least=before + 1)[-1]
    assert str(rec["status"]) == outcome.detail[:3] and "cloud" in rec["detail"], rec
