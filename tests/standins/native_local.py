"""A stand-in local model server that speaks Anthropic's ``POST /v1/messages`` itself (llama.cpp,
Ollama 0.14+, LM Studio 0.4.1+, vLLM 0.12+), for the ``local.api = "anthropic"`` path.

It is :class:`~tests.standins.anthropic_upstream.AnthropicUpstream` (same scripting: ``Reply`` with
``chunk_chars``, ``RawReply`` for streams that break the grammar, ``Fault`` for byte-level cuts),
plus what such a server also answers: the classifier's requests with the verdict ``verdict`` on both
dialects (``POST /v1/chat/completions``, tagged ``"chat"``, and a ``/v1/messages`` request whose system
prompt asks for SIMPLE or COMPLEX, tagged ``"classify"``; streamed or not, as asked; neither takes a
scripted reply), ``GET /v1/models`` (the health probe)
and, with ``llamacpp=True``, ``GET /props`` so that the capability probe reads it as a llama.cpp
server with ``/v1/messages`` (``local.api = "auto"`` then picks the Anthropic dialect)::

    srv = NativeLocal(default=text_reply("hi")).start()
    srv.v1_url                                     # "http://127.0.0.1:PORT/v1"
    srv.script(text_reply('<tool_call>{"name": ...}</tool_call>', chunk_chars=3))
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .anthropic_upstream import AnthropicUpstream, AnyReply, text_reply
from .base import sse_data
from .openai_local import assemble_completion, chat_chunks


class NativeLocal(AnthropicUpstream):
    def __init__(self, default: AnyReply | None = None, *, llamacpp: bool = False, model: str = "local-model") -> None:
        super().__init__(default=default)
        self.llamacpp = llamacpp
        self.model = model
        #: What the OpenAI-dialect endpoint answers (the classifier asks there).
        self.verdict = "SIMPLE"

    @property
    def v1_url(self) -> str:
        return self.url + "/v1"

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        if self.llamacpp:
            app.router.add_get("/props", self._props)

    def tag_request(self, method: str, path: str, body_json: Any) -> str:
        if method == "POST" and path.rstrip("/") == "/v1/chat/completions":
            return "chat"
        if method == "POST" and path.rstrip("/") == "/v1/messages" and _is_classifier(body_json):
            return "classify"
        return super().tag_request(method, path, body_json)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        rec = self.record_of(request)
        if isinstance(rec.json, dict) and _is_classifier(rec.json):
            return await self._answer(request, rec.json, text_reply(self.verdict))
        return await super()._messages(request)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        rec = self.record_of(request)
        stream = isinstance(rec.json, dict) and rec.json.get("stream") is True
        chunks = chat_chunks(text=self.verdict, model=self.model)
        if not stream:
            return web.json_response(assemble_completion(chunks, self.model))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in chunks:
            await resp.write(sse_data(chunk))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _props(self, request: web.Request) -> web.StreamResponse:
        props: dict[str, Any] = {
            "default_generation_settings": {"n_ctx": 32768},
            "total_slots": 1,
            "chat_template_caps": {"supports_tools": True},
            "build_info": "b0000-standin",
        }
        return web.json_response(props)


def _is_classifier(body: Any) -> bool:
    """The classifier's request: its system prompt asks for the one-word verdict."""
    system = body.get("system") if isinstance(body, dict) else None
    return isinstance(system, str) and "SIMPLE or COMPLEX" in system
