"""Each routing rule, in order, on the pure decision function."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

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
