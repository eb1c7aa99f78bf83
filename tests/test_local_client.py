"""The local OpenAI-compatible client against the stand-in server on loopback: one test per failure cause.

Timeouts in these tests are small numbers only so that failures arrive quickly; nothing asserts on
elapsed time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from proxy.config import LocalConfig
from proxy.local_client import LocalFailure, complete_chat, stream_chat
from tests.standins import OpenAILocal
from tests.standins.openai_local import ChunkReply, GarbageReply, HTTPErrorReply, StallReply, chat_chunks

SECRET = "sk-local-SECRET-4242"
BODY = {
    "model": "local-model",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def cfg_for(url: str, **kw: Any) -> LocalConfig:
    kw.setdefault("first_token_timeout_s", 10.0)
    kw.setdefault("read_timeout_s", 10.0)
    return LocalConfig(base_url=url, model="local-model", **kw)


async def collect(session: aiohttp.ClientSession, cfg: LocalConfig, api_key: str = "") -> list[dict[str, Any]]:
    return [c async for c in stream_chat(session, cfg, BODY, api_key)]


async def failure(session: aiohttp.ClientSession, cfg: LocalConfig, api_key: str = "") -> LocalFailure:
    with pytest.raises(LocalFailure) as info:
        await collect(session, cfg, api_key)
    return info.value


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))


# ----- success paths --------------------------------------------------------------------------------
async def test_stream_yields_parsed_chunks_and_sends_the_key(
    openai_local: OpenAILocal, session: aiohttp.ClientSession
) -> None:
    openai_local.script(chat_chunks(text="Hello there, friend."))
    chunks = await collect(session, cfg_for(openai_local.v1_url), SECRET)
    assert text_of(chunks) == "Hello there, friend."
    assert chunks[-1]["usage"]["completion_tokens"] == 10
    (req,) = [r for r in openai_local.requests if r.tag == "chat"]
    assert req.path == "/v1/chat/completions"
    assert req.headers["Authorization"] == f"Bearer {SECRET}"
    assert req.json["stream"] is True and req.json["messages"] == BODY["messages"]


async def test_no_authorization_header_without_key(openai_local: OpenAILocal, session: aiohttp.ClientSession) -> None:
    openai_local.script(chat_chunks(text="x"))
    await collect(session, cfg_for(openai_local.v1_url))
    assert "Authorization" not in openai_local.requests[-1].headers


async def test_stream_without_done_ends_cleanly(openai_local: OpenAILocal, session: aiohttp.ClientSession) -> None:
    openai_local.script(ChunkReply(chat_chunks(text="no done here"), done=False))
    chunks = await collect(session, cfg_for(openai_local.v1_url))
    assert text_of(chunks) == "no done here"


async def test_done_ends_iteration_even_if_more_follows(
    openai_local: OpenAILocal, session: aiohttp.ClientSession
) -> None:
    first = chat_chunks(text="A", usage=None)
    openai_local.script(ChunkReply([*first, b"data: [DONE]\n\n", *chat_chunks(text="B")]))
    chunks = await collect(session, cfg_for(openai_local.v1_url))
    assert text_of(chunks) == "A"


async def test_crlf_comments_and_final_event_without_blank_line(
    openai_local: OpenAILocal, session: aiohttp.ClientSession
) -> None:
    raw = [
        b": keep-alive\r\n\r\n",
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\r\n\r\n',
        b'data: {"choices":[{"index":0,"delta":{"con',
        b'tent":"b"},"finish_reason":"stop"}]}\r\n\r\n',
        b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}',
    ]
    openai_local.script(ChunkReply(raw, done=False))
    chunks = await collect(session, cfg_for(openai_local.v1_url))
    assert text_of(chunks) == "ab"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


# ----- failure causes -------------------------------------------------------------------------------
async def test_connection_refused_is_connect_error(
    session: aiohttp.ClientSession, free_port: Callable[[], int]
) -> None:
    exc = await failure(session, cfg_for(f"http://127.0.0.1:{free_port()}/v1"))
    assert exc.cause == "connect-error"


async def test_non_2xx_is_http_status_with_secret_free_detail(
    openai_local: OpenAILocal, session: aiohttp.ClientSession
) -> None:
    openai_local.script(HTTPErrorReply(500, message=f"model crashed; key was {SECRET}"))
    exc = await failure(session, cfg_for(openai_local.v1_url), SECRET)
    assert exc.cause == "http-500"
    assert "model crashed" in exc.detail
    assert SECRET not in exc.detail and SECRET not in str(exc)


async def test_no_response_at_all_is_first_token_timeout(
    openai_local: OpenAILocal, session: aiohttp.ClientSession
) -> None:
    openai_local.script(StallReply(None))
    exc = await failure(session, cfg_for(openai_local.v1_url, first_token_timeout_s=0.3))
    assert exc.cause == "first-token-timeout"


async def test_headers_then_silence_is_first_token_timeout(
    openai_local: OpenAILocal, session: aiohttp.ClientSession
) -> None:
    openai_local.script(ChunkReply(chat_chunks(text="late"), stall_after=0, stall_seconds=None))
    exc = await failure(session, cfg_for(openai_local.v1_url, first_token_timeout_s=0.3))
    assert exc.cause == "first-token-timeout"


async def test_keepalive_comments_do_not_count_as_a_first_chunk(
    openai_local: OpenAILocal, session: aiohttp.ClientSession
) -> None:
    openai_local.script(ChunkReply([b": ping\n\n", *chat_chunks(text="x")], stall_after=1, stall_seconds=None))
    exc = await failure(session, cfg_for(openai_local.v1_url, first_token_timeout_s=0.3, read_timeout_s=30))
    assert exc.cause == "first-token-timeout"


async def test_silence_mid_stream_is_stall(openai_local: OpenAILocal, session: aiohttp.ClientSession) -> None:
    openai_local.script(ChunkReply(chat_chunks(text="some words here"), stall_after=2, stall_seconds=None))
    got: list[dict[str, Any]] = []
    with pytest.raises(LocalFailure) as info:
        async for chunk in stream_chat(session, cfg_for(openai_local.v1_url, read_timeout_s=0.3), BODY, ""):
            got.append(chunk)
    assert info.value.cause == "stall"
    assert len(got) == 2


async def test_garbage_bytes_are_malformed_stream(openai_local: OpenAILocal, session: aiohttp.ClientSession) -> None:
    openai_local.script(GarbageReply())
    exc = await failure(session, cfg_for(openai_local.v1_url))
    assert exc.cause == "malformed-stream"


async def test_non_json_data_is_malformed_stream(openai_local: OpenAILocal, session: aiohttp.ClientSession) -> None:
    openai_local.script(ChunkReply([b"data: <html>oops</html>\n\n"]))
    exc = await failure(session, cfg_for(openai_local.v1_url))
    assert exc.cause == "malformed-stream"


async def test_json_reply_to_a_stream_request_is_malformed_stream(
    openai_local: OpenAILocal, session: aiohttp.ClientSession
) -> None:
    openai_local.script(HTTPErrorReply(200, body={"error": {"message": "stream not supported"}}))
    exc = await failure(session, cfg_for(openai_local.v1_url))
    assert exc.cause == "malformed-stream"
    assert "stream not supported" in exc.detail


async def test_error_chunk_is_upstream_error(openai_local: OpenAILocal, session: aiohttp.ClientSession) -> None:
    openai_local.script(ChunkReply([chat_chunks(text="a")[0], {"error": {"message": "out of memory"}}]))
    exc = await failure(session, cfg_for(openai_local.v1_url))
    assert (exc.cause, exc.detail) == ("upstream-error", "out of memory")


async def test_connection_dropped_mid_stream_is_dropped(
    openai_local: OpenAILocal, session: aiohttp.ClientSession
) -> None:
    openai_local.script(ChunkReply(chat_chunks(text="some words here"), drop_after=3))
    got: list[dict[str, Any]] = []
    with pytest.raises(LocalFailure) as info:
        async for chunk in stream_chat(session, cfg_for(openai_local.v1_url), BODY, ""):
            got.append(chunk)
    assert info.value.cause == "dropped"
    assert len(got) == 3


async def test_eof_in_the_middle_of_an_event_is_dropped(
    openai_local: OpenAILocal, session: aiohttp.ClientSession
) -> None:
    openai_local.script(ChunkReply([chat_chunks(text="a")[0], b'data: {"choices":[{"ind'], done=False))
    exc = await failure(session, cfg_for(openai_local.v1_url))
    assert exc.cause == "dropped"


# ----- non-streaming and model list ----------------------------------------------------------------
async def test_complete_chat_returns_the_completion(openai_local: OpenAILocal, session: aiohttp.ClientSession) -> None:
    openai_local.script(chat_chunks(text="whole answer"))
    out = await complete_chat(session, cfg_for(openai_local.v1_url), BODY, SECRET)
    assert out["choices"][0]["message"]["content"] == "whole answer"
    sent = openai_local.requests[-1].json
    assert sent["stream"] is False and "stream_options" not in sent


@pytest.mark.parametrize(
    ("reply", "cause"),
    [(HTTPErrorReply(503, message="loading model"), "http-503"), (StallReply(None), "first-token-timeout")],
)
async def test_complete_chat_failures(
    openai_local: OpenAILocal, session: aiohttp.ClientSession, reply: Any, cause: str
) -> None:
    openai_local.script(reply)
    with pytest.raises(LocalFailure) as info:
        await complete_chat(session, cfg_for(openai_local.v1_url, first_token_timeout_s=0.3), BODY, "")
    assert info.value.cause == cause


async def test_complete_chat_connect_error(session: aiohttp.ClientSession, free_port: Callable[[], int]) -> None:
    with pytest.raises(LocalFailure) as info:
        await complete_chat(session, cfg_for(f"http://127.0.0.1:{free_port()}/v1"), BODY, "")
    assert info.value.cause == "connect-error"

