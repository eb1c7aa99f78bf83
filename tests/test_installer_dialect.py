"""The installer's choice of ``local.api``: a one-token /v1/messages probe against stand-ins, the
proposal and its reason, and the answer reaching the rendered config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from installer import answers as answers_mod
from installer import probes, render
from installer.dialect import propose_local_api
from proxy.capabilities import UNKNOWN, LocalCapabilities
from proxy.config import load_config
from tests.standins import OpenAILocal
from tests.standins.anthropic_upstream import ErrorReply, text_reply
from tests.standins.native_local import NativeLocal
from tests.test_installer_units import render_input

LLAMA = LocalCapabilities(kind="llama.cpp", anthropic=True)


def test_the_probe_tells_a_server_that_speaks_anthropic_from_one_that_does_not(openai_local: OpenAILocal) -> None:
    with NativeLocal(default=text_reply("x")) as native:
        worked, what = probes.local_messages_probe(native.url, "local-model")
        [rec] = native.requests_tagged("messages")
        native.script(ErrorReply(400, "no such model"))
        refused = probes.local_messages_probe(native.url, "local-model")
    assert (worked, what) == (True, "HTTP 200, stop_reason 'end_turn'")
    assert rec.json == {"model": "local-model", "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
    assert refused == (False, "HTTP 400")
    assert probes.local_messages_probe(openai_local.v1_url, "local-model") == (False, "HTTP 404")
    assert probes.local_messages_probe("http://127.0.0.1:9", "m")[0] is False


def test_the_proposal_says_why() -> None:
    assert propose_local_api(LLAMA, (True, "HTTP 200, stop_reason 'max_tokens'")) == (
        "anthropic",
        "llama.cpp answered a one-token POST /v1/messages (HTTP 200, stop_reason 'max_tokens'): "
        "its own template renders the prompt",
    )
    assert propose_local_api(LLAMA, (False, "HTTP 404")) == (
        "openai",
        "llama.cpp did not answer POST /v1/messages usably (HTTP 404)",
    )
    old_ollama = LocalCapabilities(kind="ollama", anthropic=False)
    assert propose_local_api(old_ollama, None) == ("openai", "Ollama does not serve Anthropic's /v1/messages")
    assert propose_local_api(UNKNOWN, (True, "x"), "openai")[0] == "openai"  # the user's answer wins
    assert propose_local_api(UNKNOWN, None)[0] == "openai"


def test_the_dialect_reaches_the_config_and_bad_answers_are_refused(tmp_path: Path) -> None:
    for api in ("openai", "anthropic", "auto"):
        f = tmp_path / f"{api}.toml"
        f.write_bytes(render.render_config(dataclasses.replace(render_input(), local_api=api)))
        assert load_config(f).local.api == api
    bad = answers_mod.Answers(local_api="claude")
    assert answers_mod.static_problems(bad, require_all=False) == [
        "local_api must be one of openai, anthropic, auto, got 'claude'"
    ]
