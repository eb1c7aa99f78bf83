"""Stand-ins for Ollama, LM Studio and vLLM: :class:`~.openai_local.OpenAILocal` (chat completions,
``/v1/models``, faults, scripting: all unchanged) plus each server's own discovery endpoints, in the
shapes the real servers answer (each handler cites its source).  None of them serves llama.cpp's
``/props``, so a probe must tell them apart by their own endpoints.

Every setting is a plain attribute read at request time, so a test may change it on a running server::

    srv = OllamaLocal(models=("qwen3",), num_ctx=65536).start()
    srv.loaded = True; srv.context_length = 32768        # now /api/ps lists it
    lms = LMStudioLocal(models=("qwen2.5-7b-instruct",), loaded=False, api_v1=False)   # LM Studio 0.3.x
    vllm = VLLMLocal(models=("Qwen/Qwen3-8B",), max_model_len=32768, version="0.12.0")
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from .openai_local import OpenAILocal

_DIGEST = "2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8"


def _ollama_name(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


class OllamaLocal(OpenAILocal):
    """Ollama: ``GET /api/version``, ``GET /api/ps``, ``POST /api/show``, ``GET /api/tags``, ``GET /``.

    ``models`` are listed under their full names (``"qwen3"`` → ``"qwen3:latest"``).  ``loaded``: the
    first model is in ``/api/ps`` with ``context_length`` (None: an Ollama before 0.10.0 that omits
    it).  ``num_ctx``: a ``num_ctx`` line in ``/api/show`` ``parameters`` (None: not set).
    ``capabilities=None`` omits the field (Ollama before capabilities existed).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Sequence[str] = ("qwen3",),
        version: str = "0.14.2",
        loaded: bool = False,
        context_length: int | None = 4096,
        num_ctx: int | None = None,
        capabilities: Sequence[str] | None = ("completion", "tools", "thinking"),
        architecture: str = "qwen3",
        trained_context: int | None = 40960,
    ) -> None:
        super().__init__(host, port, models=models)
        self.version = version
        self.loaded = loaded
        self.context_length = context_length
        self.num_ctx = num_ctx
        self.capabilities = None if capabilities is None else tuple(capabilities)
        self.architecture = architecture
        self.trained_context = trained_context

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/show", self._show)

    def _details(self) -> dict[str, Any]:
        # api/types.go ModelDetails
        return {"parent_model": "", "format": "gguf", "family": self.architecture, "families": [self.architecture],
                "parameter_size": "8.2B", "quantization_level": "Q4_K_M"}

    async def _root(self, request: web.Request) -> web.StreamResponse:
        # server/routes.go: r.GET("/", ... "Ollama is running")
        return web.Response(text="Ollama is running")

    async def _models(self, request: web.Request) -> web.StreamResponse:
        # openai/openai.go ToListCompletion: owned_by is the name's namespace ("library")
        data = [{"id": _ollama_name(m), "object": "model", "created": 0, "owned_by": "library"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _version(self, request: web.Request) -> web.StreamResponse:
        # server/routes.go: r.GET("/api/version", ... gin.H{"version": version.Version})
        return web.json_response({"version": self.version})

    async def _ps(self, request: web.Request) -> web.StreamResponse:
        # api/types.go ProcessResponse{Models []ProcessModelResponse}; server/routes.go PsHandler;
        # context_length since 0.10.0 (ollama/ollama#11331); docs/api.md "List Running Models"
        models: list[dict[str, Any]] = []
        if self.loaded:
            name = _ollama_name(self.models[0])
            entry: dict[str, Any] = {
                "name": name, "model": name, "size": 5137025024, "digest": _DIGEST, "details": self._details(),
                "expires_at": "2030-06-04T14:38:31.83753-07:00", "size_vram": 5137025024,
            }
            if self.context_length is not None:
                entry["context_length"] = self.context_length
            models.append(entry)
        return web.json_response({"models": models})

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        # api/types.go ListResponse{Models []ListModelResponse}; docs/api.md "List Local Models"
        return web.json_response({"models": [
            {"name": _ollama_name(m), "model": _ollama_name(m), "modified_at": "2025-01-01T00:00:00Z",
             "size": 5137025024, "digest": _DIGEST, "details": self._details()}
            for m in self.models
        ]})

    async def _show(self, request: web.Request) -> web.StreamResponse:
        # server/routes.go ShowHandler / GetModelInfo; api/types.go ShowResponse; docs/api.md "Show Model Information"
        body = self.record_of(request).json
        if not isinstance(body, dict):
            return web.json_response({"error": "missing request body"}, status=400)
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            return web.json_response({"error": "model is required"}, status=400)
        if _ollama_name(name) not in {_ollama_name(m) for m in self.models}:
            return web.json_response({"error": f"model '{_ollama_name(name)}' not found"}, status=404)
        params = ['stop                           "<|im_start|>"', 'stop                           "<|im_end|>"',
                  "temperature                    0.6"]
        if self.num_ctx is not None:
            params.insert(0, f"{'num_ctx':<30} {self.num_ctx}")
        info: dict[str, Any] = {"general.architecture": self.architecture, "general.parameter_count": 8190735360,
                                f"{self.architecture}.block_count": 36}
        if self.trained_context is not None:
            info[f"{self.architecture}.context_length"] = self.trained_context
        out: dict[str, Any] = {
            "license": "Apache License 2.0",
            "parameters": "\n".join(params),
            "template": "{{ .Prompt }}",
            "details": self._details(),
            "model_info": info,
            "modified_at": "2025-01-01T00:00:00Z",
        }
        if self.capabilities is not None:
            out["capabilities"] = list(self.capabilities)
        return web.json_response(out)


class LMStudioLocal(OpenAILocal):
    """LM Studio: ``GET /api/v0/models``, ``GET /api/v0/models/{id}`` and (``api_v1=True``, LM Studio 0.4+)
    ``GET /api/v1/models``.

    ``model_type``: the v0 ``type`` (``"llm"``, ``"vlm"``, ``"embeddings"``).  ``loaded``: the first
    model is loaded with ``loaded_context_length`` (None: an LM Studio that omits it).
    ``capabilities``: the v0 list (``"tool_use"`` → v1 ``trained_for_tool_use``); None omits it (before 0.3.16).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Sequence[str] = ("qwen2.5-7b-instruct",),
        loaded: bool = True,
        loaded_context_length: int | None = 32768,
        max_context_length: int = 131072,
        model_type: str = "llm",
        capabilities: Sequence[str] | None = ("tool_use",),
        api_v1: bool = True,
        parallel: int = 4,
    ) -> None:
        super().__init__(host, port, models=models)
        self.loaded = loaded
        self.loaded_context_length = loaded_context_length
        self.max_context_length = max_context_length
        self.model_type = model_type
        self.capabilities = None if capabilities is None else tuple(capabilities)
        self.api_v1 = api_v1
        self.parallel = parallel

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/api/v0/models", self._v0_models)
        app.router.add_get("/api/v0/models/{model:.+}", self._v0_model)
        app.router.add_get("/api/v1/models", self._v1_models)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        # /v1/models carries ids only (lmstudio-ai/lmstudio-bug-tracker#2139 quotes the real answer)
        data = [{"id": m, "object": "model", "owned_by": "organization_owner"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    def _is_loaded(self, model: str) -> bool:
        return self.loaded and model == self.models[0]

    def _v0_entry(self, model: str) -> dict[str, Any]:
        # lmstudio-ai/docs 1_developer/2_rest/endpoints.mdx (GET /api/v0/models); loaded_context_length as
        # in real answers (zed-industries/zed#25606); capabilities list since 0.3.16 (api-changelog.md)
        entry: dict[str, Any] = {
            "id": model, "object": "model", "type": self.model_type, "publisher": "lmstudio-community",
            "arch": "qwen2", "compatibility_type": "gguf", "quantization": "Q4_K_M",
            "state": "loaded" if self._is_loaded(model) else "not-loaded",
            "max_context_length": self.max_context_length,
        }
        if self._is_loaded(model) and self.loaded_context_length is not None:
            entry["loaded_context_length"] = self.loaded_context_length
        if self.capabilities is not None:
            entry["capabilities"] = list(self.capabilities)
        return entry

    async def _v0_models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [self._v0_entry(m) for m in self.models]})

    async def _v0_model(self, request: web.Request) -> web.StreamResponse:
        model = request.match_info["model"]
        if model not in self.models:
            return web.json_response({"error": f"Model '{model}' not found"}, status=404)
        return web.json_response(self._v0_entry(model))

    async def _v1_models(self, request: web.Request) -> web.StreamResponse:
        # lmstudio-ai/docs 1_developer/2_rest/list.md (GET /api/v1/models, LM Studio 0.4.0+)
        if not self.api_v1:
            return web.json_response({"error": "Unexpected endpoint or method. (GET /api/v1/models)"}, status=404)
        out: list[dict[str, Any]] = []
        for m in self.models:
            instances: list[dict[str, Any]] = []
            if self._is_loaded(m):
                config: dict[str, Any] = {"eval_batch_size": 512, "parallel": self.parallel, "flash_attention": True,
                                          "offload_kv_cache_to_gpu": True}
                if self.loaded_context_length is not None:
                    config["context_length"] = self.loaded_context_length
                instances.append({"id": m, "config": config})
            entry: dict[str, Any] = {
                "type": "embedding" if self.model_type == "embeddings" else "llm",
                "publisher": "lmstudio-community", "key": m, "display_name": m, "architecture": "qwen2",
                "quantization": {"name": "Q4_K_M", "bits_per_weight": 4}, "size_bytes": 4683073952,
                "params_string": "7B", "loaded_instances": instances,
                "max_context_length": self.max_context_length, "format": "gguf",
            }
            if self.model_type != "embeddings":
                entry["capabilities"] = {
                    "vision": self.model_type == "vlm",
                    "trained_for_tool_use": "tool_use" in (self.capabilities or ()),
                }
                entry["description"] = None
            out.append(entry)
        return web.json_response({"models": out})


class VLLMLocal(OpenAILocal):
    """vLLM: ``GET /v1/models`` with vLLM's model cards and ``GET /version`` (``version=None``: 404).

    ``lora_adapters``: extra cards with ``parent`` = the first model and no ``max_model_len``, as vLLM
    lists LoRA adapters.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Sequence[str] = ("Qwen/Qwen3-8B",),
        version: str | None = "0.12.0",
        max_model_len: int | None = 32768,
        root: str | None = None,
        lora_adapters: Sequence[str] = (),
        strict_fields: Sequence[str] = (),
    ) -> None:
        super().__init__(host, port, models=models, strict_fields=strict_fields)
        self.version = version
        self.max_model_len = max_model_len
        self.root = root
        self.lora_adapters = tuple(lora_adapters)

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/version", self._version)

    @staticmethod
    def _permission() -> dict[str, Any]:
        # vllm/entrypoints/openai/protocol.py ModelPermission
        return {"id": "modelperm-standin", "object": "model_permission", "created": int(time.time()),
                "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                "organization": "*", "group": None, "is_blocking": False}

    async def _models(self, request: web.Request) -> web.StreamResponse:
        # vllm/entrypoints/openai/protocol.py ModelCard / ModelList; serving_models.py show_available_models
        created = int(time.time())
        data: list[dict[str, Any]] = [
            {"id": m, "object": "model", "created": created, "owned_by": "vllm", "root": self.root or m,
             "parent": None, "max_model_len": self.max_model_len, "permission": [self._permission()]}
            for m in self.models
        ]
        data += [
            {"id": a, "object": "model", "created": created, "owned_by": "vllm", "root": f"/loras/{a}",
             "parent": self.models[0], "max_model_len": None, "permission": [self._permission()]}
            for a in self.lora_adapters
        ]
        return web.json_response({"object": "list", "data": data})

    async def _version(self, request: web.Request) -> web.StreamResponse:
        # vllm/entrypoints/openai/api_server.py: @router.get("/version") -> {"version": VLLM_VERSION}
        if self.version is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        return web.json_response({"version": self.version})


__all__ = ["LMStudioLocal", "OllamaLocal", "VLLMLocal"]
