"""Each routing rule, in order, on the pure decision function."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from proxy.capabilities import LocalCapabilities
from proxy.config import Config
from proxy.conversation import ExplicitChoice, RequestFacts
from proxy.routing import NEED_CLASSIFICATION, NEED_HEALTH, Classification, Decision, Signals, decide
from tests.proxy_harness import make_config


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return make_config(tmp_path)


BASE = RequestFacts(
    model="claude-sonnet-4-5",
    explicit=None,
    has_messages=True,
    plan_mode=False,
    estimated_tokens=20000,
    background=False,
    server_tools=(),
    session="s1",
    turn_key="0:abc",
    latest_user_text="fix the typo in README",
    first_user_text="fix the typo in README",
    turns=1,
    tool_calls=0,
    body_bytes=78000,
    stream=True,
)
UP = Signals(local_up=True)


def facts(**kw: object) -> RequestFacts:
    return dataclasses.replace(BASE, **kw)  # type: ignore[arg-type]


def d(outcome: object) -> Decision:
    assert isinstance(outcome, Decision), outcome
    return outcome


def test_explicit_local_and_cloud_win_over_everything(cfg: Config) -> None:
    hard = {"plan_mode": True, "estimated_tokens": 10**6, "has_messages": False}
    r = d(decide(facts(explicit=ExplicitChoice("local", None, "explicit"), **hard), Signals(), cfg))
    assert (r.route, r.model, r.reason) == ("local", "local-model", "explicit")
    r = d(decide(facts(explicit=ExplicitChoice("local", "other-local", "explicit")), Signals(), cfg))
    assert (r.route, r.model) == ("local", "other-local")
    r = d(decide(facts(explicit=ExplicitChoice("cloud", None, "explicit")), Signals(), cfg))
    assert (r.route, r.model) == ("cloud", "cloud-complex")
    r = d(decide(facts(explicit=ExplicitChoice("cloud", "claude-opus", "subagent-tag")), Signals(), cfg))
    assert (r.route, r.model, r.reason) == ("cloud", "claude-opus", "subagent-tag")


def test_no_messages_goes_to_cloud(cfg: Config) -> None:
    r = d(decide(facts(has_messages=False), Signals(), cfg))
    assert (r.route, r.reason) == ("cloud", "no-messages")


def test_plan_mode_goes_to_cloud_complex_before_long_context(cfg: Config) -> None:
    r = d(decide(facts(plan_mode=True, estimated_tokens=10**6), UP, cfg))
    assert (r.route, r.model, r.reason) == ("cloud", "cloud-complex", "plan-mode")


def test_long_context_threshold_is_strictly_above(cfg: Config) -> None:
    at = cfg.routing.long_context_threshold
    assert decide(facts(estimated_tokens=at), Signals(), cfg) is NEED_HEALTH
    r = d(decide(facts(estimated_tokens=at + 1), Signals(), cfg))
    assert (r.route, r.model, r.reason) == ("cloud", "cloud-complex", "long-context")


def test_server_side_tool_goes_to_cloud(cfg: Config) -> None:
    r = d(decide(facts(server_tools=("web_search",)), UP, cfg))
    assert (r.route, r.reason, r.detail) == ("cloud", "server-tool", "web_search")


def test_turn_that_broke_locally_retries_on_cloud(cfg: Config) -> None:
    r = d(decide(facts(), Signals(local_up=True, turn_forced_cloud=True), cfg))
    assert (r.route, r.reason) == ("cloud", "retry-to-cloud")


def test_health_is_asked_only_when_needed(cfg: Config) -> None:
    assert decide(facts(), Signals(), cfg) is NEED_HEALTH


def test_background_local_when_up_else_cloud_simple(cfg: Config) -> None:
    bg = facts(background=True, model="claude-haiku-4-5")
    r = d(decide(bg, UP, cfg))
    assert (r.route, r.model, r.reason) == ("local", "local-model", "background")
    r = d(decide(bg, Signals(local_up=False), cfg))
    assert (r.route, r.model, r.reason) == ("cloud", "cloud-simple", "background")


def test_local_down_goes_to_cloud(cfg: Config) -> None:
    r = d(decide(facts(), Signals(local_up=False), cfg))
    assert (r.route, r.reason) == ("cloud", "local-down")


def test_cached_verdict_is_reused(cfg: Config) -> None:
    r = d(decide(facts(), Signals(local_up=True, cached=Classification("SIMPLE", "ok")), cfg))
    assert (r.route, r.reason, r.verdict) == ("local", "cached", "SIMPLE")
    r = d(decide(facts(), Signals(local_up=True, cached=Classification("COMPLEX", "ok")), cfg))
    assert (r.route, r.model, r.reason) == ("cloud", "cloud-complex", "cached")
    r = d(decide(facts(), Signals(local_up=True, cached=Classification(None, "timeout")), cfg))
    assert (r.route, r.reason) == ("cloud", "cached")


def test_classification_needed_then_obeyed(cfg: Config) -> None:
    assert decide(facts(), UP, cfg) is NEED_CLASSIFICATION
    r = d(decide(facts(), Signals(local_up=True, classification=Classification("SIMPLE", "ok")), cfg))
    assert (r.route, r.model, r.reason, r.verdict) == ("local", "local-model", "classified", "SIMPLE")
    r = d(decide(facts(), Signals(local_up=True, classification=Classification("COMPLEX", "ok")), cfg))
    assert (r.route, r.model, r.reason, r.verdict) == ("cloud", "cloud-complex", "classified", "COMPLEX")


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("timeout", "classify-timeout"), ("error", "classify-error"), ("empty", "classify-empty")],
)
def test_classifier_failures_go_to_cloud_with_their_reason(cfg: Config, mode: str, reason: str) -> None:
    c = Classification(None, mode, detail="why")
    r = d(decide(facts(), Signals(local_up=True, classification=c), cfg))
    assert (r.route, r.reason, r.detail) == ("cloud", reason, "why")


# --- rule 5: what the local server can take ------------------------------------------------------

LLAMA_8K = LocalCapabilities(kind="llama.cpp", context_per_request=8192, slots=4, tools=True)


def caps_signals(caps: LocalCapabilities | None, **kw: object) -> Signals:
    return Signals(local_up=True, capabilities=caps, **kw)  # type: ignore[arg-type]


def test_a_request_that_does_not_fit_the_local_context_goes_to_the_cloud_before_classifying(cfg: Config) -> None:
    r = d(decide(facts(estimated_tokens=19000, tool_count=24, max_tokens=64000), caps_signals(LLAMA_8K), cfg))
    assert (r.route, r.model, r.reason) == ("cloud", "cloud-complex", "local-context")
    # Both numbers, and the reserve kept for the answer, are in the detail.
    assert r.detail == "~19,000 tokens + 2,048 for the answer > 8,192 per request (llama.cpp)"


def test_the_output_reserve_is_what_the_request_asks_for_when_that_is_less(cfg: Config) -> None:
    fits = facts(estimated_tokens=8000, max_tokens=100)
    assert decide(fits, caps_signals(LLAMA_8K), cfg) is NEED_CLASSIFICATION
    too_big = facts(estimated_tokens=8000, max_tokens=500)
    assert d(decide(too_big, caps_signals(LLAMA_8K), cfg)).reason == "local-context"
    assert d(decide(too_big, caps_signals(LLAMA_8K), cfg)).detail.startswith("~8,000 tokens + 500 for")  # type: ignore[union-attr]


def test_a_configured_context_overrides_the_probe_and_works_without_one(cfg: Config) -> None:
    small = dataclasses.replace(cfg, local=dataclasses.replace(cfg.local, context_tokens=4096))
    r = d(decide(facts(estimated_tokens=3000), caps_signals(None), small))
    assert r.reason == "local-context" and "> 4,096 per request (the local server)" in (r.detail or "")
    big = dataclasses.replace(cfg, local=dataclasses.replace(cfg.local, context_tokens=131072))
    assert decide(facts(estimated_tokens=19000), caps_signals(LLAMA_8K), big) is NEED_CLASSIFICATION


def test_tools_for_a_template_that_takes_none_go_to_the_cloud(cfg: Config) -> None:
    no_tools = dataclasses.replace(LLAMA_8K, context_per_request=65536, tools=False)
    r = d(decide(facts(estimated_tokens=19000, tool_count=24), caps_signals(no_tools), cfg))
    assert (r.route, r.reason) == ("cloud", "local-no-tools")
    assert r.detail == "24 tools; llama.cpp's chat template takes none (they would be dropped)"
    # Without tools the same server is fine.
    assert decide(facts(estimated_tokens=19000, tool_count=0), caps_signals(no_tools), cfg) is NEED_CLASSIFICATION


def test_images_for_a_model_that_takes_none_go_to_the_cloud(cfg: Config) -> None:
    text_only = dataclasses.replace(LLAMA_8K, context_per_request=65536, vision=False)
    r = d(decide(facts(estimated_tokens=5000, has_images=True), caps_signals(text_only), cfg))
    assert (r.route, r.reason) == ("cloud", "local-no-images")
    seeing = dataclasses.replace(text_only, vision=True)
    assert decide(facts(estimated_tokens=5000, has_images=True), caps_signals(seeing), cfg) is NEED_CLASSIFICATION


def test_unknown_capabilities_mean_try_as_before(cfg: Config) -> None:
    for caps in (None, LocalCapabilities(), LocalCapabilities(kind="openai")):
        f = facts(estimated_tokens=50000, tool_count=24, has_images=True)
        assert decide(f, caps_signals(caps), cfg) is NEED_CLASSIFICATION


def test_capability_rules_come_before_a_cached_verdict_and_after_explicit_choices(cfg: Config) -> None:
    cached = Classification(verdict="SIMPLE", mode="ok")
    r = d(decide(facts(estimated_tokens=19000), caps_signals(LLAMA_8K, cached=cached), cfg))
    assert r.reason == "local-context"
    explicit = facts(estimated_tokens=19000, explicit=ExplicitChoice("local", None, "explicit"))
    assert d(decide(explicit, caps_signals(LLAMA_8K), cfg)).route == "local"


def test_a_background_request_that_does_not_fit_uses_the_simple_tier(cfg: Config) -> None:
    r = d(decide(facts(background=True, estimated_tokens=19000), caps_signals(LLAMA_8K), cfg))
    assert (r.route, r.model, r.reason) == ("cloud", "cloud-simple", "local-context")
    r = d(decide(facts(background=True, estimated_tokens=1000), caps_signals(LLAMA_8K), cfg))
    assert (r.route, r.reason) == ("local", "background")


def test_capabilities_are_not_consulted_when_the_local_server_is_down(cfg: Config) -> None:
    r = d(decide(facts(estimated_tokens=19000), Signals(local_up=False, capabilities=LLAMA_8K), cfg))
    assert r.reason == "local-down"


def test_the_context_check_scales_the_estimate_by_the_servers_own_counts(cfg: Config) -> None:
    caps = dataclasses.replace(LLAMA_8K, context_per_request=21000)
    f = facts(estimated_tokens=18500, max_tokens=64000)
    assert decide(f, caps_signals(caps), cfg) is NEED_CLASSIFICATION  # 18,500 + 2,048 fits 21,000
    r = d(decide(f, caps_signals(caps, local_token_factor=1.06), cfg))
    assert r.reason == "local-context"
    assert r.detail == (
        "~19,610 tokens (estimate x1.06: the server's own counts) + 2,048 for the answer > 21,000 per request "
        "(llama.cpp)"
    )
