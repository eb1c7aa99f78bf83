"""Stand-in servers for Switchyard's tests: real aiohttp servers on loopback, each on its own thread.

- :mod:`.anthropic_upstream` — :class:`AnthropicUpstream`, a scriptable Anthropic Messages API.
- :mod:`.openai_local` — :class:`OpenAILocal`, a scriptable OpenAI-compatible local model server
  (chunk replay, faults, classifier mode) and :class:`StrictOpenAIUpstream`.
- :mod:`.native_local` — :class:`NativeLocal`, a local server that speaks Anthropic's ``/v1/messages``
  itself (``AnthropicUpstream`` plus ``/v1/models``, a classifier endpoint, optionally ``/props``).
- :mod:`.server_kinds` — :class:`OllamaLocal`, :class:`LMStudioLocal`, :class:`VLLMLocal`: ``OpenAILocal``
  plus each server's discovery endpoints (for the capability probe).
- :mod:`.base` — :class:`StandinServer` (lifecycle, request recording) and :class:`RecordedRequest`.

Reply types with the same name exist in both server modules (e.g. ``StallReply``): import them
from the module of the server you script.
"""

from .anthropic_upstream import AnthropicUpstream
from .base import RecordedRequest, StandinServer
from .openai_local import OpenAILocal, StrictOpenAIUpstream
from .server_kinds import LMStudioLocal, OllamaLocal, VLLMLocal

__all__ = [
    "AnthropicUpstream",
    "LMStudioLocal",
    "OllamaLocal",
    "OpenAILocal",
    "RecordedRequest",
    "StandinServer",
    "StrictOpenAIUpstream",
    "VLLMLocal",
]
