"""The routing decision: a pure function from request facts and signals to a decision.

The server calls ``decide`` repeatedly, filling in signals only when a rule asks for them: the local
health check and the classifier call cost time, so they are made only for the requests that reach
the rule needing them.  ``decide`` answers ``NEED_HEALTH`` or ``NEED_CLASSIFICATION`` in that case.

Rules, in order (issue 2):
 1. explicit choice (model ``local[,NAME]`` / ``cloud[,NAME]``, or a subagent tag) is obeyed
 2. no messages → cloud
 3. plan mode → cloud, complex tier
 4. long context → cloud, complex tier
    (also: a server-side tool such as web_search only the cloud can run → cloud, complex tier;
     a turn whose local answer broke mid-stream → cloud, so Claude Code's retry does not loop locally)
 5. what the local server can take (its probed capabilities; unknown means: try), before any
    classifier call: a request whose estimate plus an output reserve exceeds the context one
    request gets → ``local-context``; images for a model that takes none → ``local-no-images``;
    tools for a chat template that drops them → ``local-no-tools``.  Cloud, complex tier (simple
    tier for background requests).
 6. background (haiku-class model) → local when up, else cloud simple tier
 7. local server down → cloud, complex tier (difficulty unknown: err toward the stronger model)
 8. a verdict already made for this user turn is reused ("cached")
 9. classify: SIMPLE → local, COMPLEX → cloud complex tier; any classifier failure → cloud complex tier
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from proxy.capabilities import KIND_NAMES, LocalCapabilities
from proxy.config import Config
from proxy.conversation import RequestFacts
from proxy.tokens import scaled

LOCAL: Final = "local"
CLOUD: Final = "cloud"
SIMPLE: Final = "SIMPLE"
COMPLEX: Final = "COMPLEX"


@dataclass(frozen=True)
class Classification:
    """What the classifier said (or failed to say) for one user turn."""

    verdict: str | None  # SIMPLE | COMPLEX | None
    mode: str  # ok | timeout | error | empty
    detail: str | None = None
    elapsed_ms: float = 0.0
    last_line: str = ""


@dataclass(frozen=True)
class Signals:
    local_up: bool | None = None
    cached: Classification | None = None
    classification: Classification | None = None
    turn_forced_cloud: bool = False
    capabilities: LocalCapabilities | None = None
    # The local server's own prompt counts over the estimate, learnt from its answers (>= 1).
    local_token_factor: float = 1.0


@dataclass(frozen=True)
class Decision:
    route: str  # local | cloud
    model: str
    reason: str
    verdict: str | None = None
    detail: str | None = None


class _Need:
    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<need {self.what}>"


NEED_HEALTH: Final = _Need("health")
NEED_CLASSIFICATION: Final = _Need("classification")

Outcome = Decision | _Need

_FAILURE_REASONS = {"timeout": "classify-timeout", "error": "classify-error", "empty": "classify-empty"}


def _from_classification(c: Classification, cfg: Config, reason_if_ok: str) -> Decision:
    if c.mode == "ok" and c.verdict == SIMPLE:
        return Decision(LOCAL, cfg.local.model, reason_if_ok, verdict=SIMPLE)
    if c.mode == "ok" and c.verdict == COMPLEX:
        return Decision(CLOUD, cfg.cloud.complex_model, reason_if_ok, verdict=COMPLEX)
    reason = _FAILURE_REASONS.get(c.mode, "classify-error")
    if reason_if_ok == "cached":
        # A failed classification is reused for the turn too (no 15 s timeout per tool step).
        return Decision(CLOUD, cfg.cloud.complex_model, "cached", detail=f"turn classified as {reason}")
    return Decision(CLOUD, cfg.cloud.complex_model, reason, detail=c.detail)


def local_context(caps: LocalCapabilities | None, cfg: Config) -> int | None:
    """The context one local request gets: the configured figure, else the probed one."""
    if cfg.local.context_tokens:
        return cfg.local.context_tokens
    return caps.context_per_request if caps is not None else None


def output_reserve(facts: RequestFacts, cfg: Config) -> int:
    """Tokens kept free for the answer: the configured reserve, or less if the request asks for less."""
    reserve = cfg.local.answer_reserve
    return min(reserve, facts.max_tokens) if facts.max_tokens and facts.max_tokens > 0 else reserve


def local_misfit(
    facts: RequestFacts, caps: LocalCapabilities | None, cfg: Config, token_factor: float = 1.0
) -> tuple[str, str] | None:
    """Why the local server cannot take this request, as (reason, detail); None when it can (or may).

    ``token_factor``: how many of the local server's tokens one estimated token has turned out to be.
    """
    kind = KIND_NAMES.get(caps.kind, caps.kind) if caps is not None else "the local server"
    ctx = local_context(caps, cfg)
    if ctx is not None:
        reserve = output_reserve(facts, cfg)
        need = scaled(facts.estimated_tokens, token_factor)
        if need + reserve > ctx:
            how = f" (estimate x{token_factor:.2f}: the server's own counts)" if need != facts.estimated_tokens else ""
            detail = f"~{need:,} tokens{how} + {reserve:,} for the answer > {ctx:,} per request ({kind})"
            return "local-context", detail
    if caps is None:
        return None
    if facts.has_images and caps.vision is False:
        return "local-no-images", f"the request carries images; {kind}'s model takes none"
    if facts.tool_count and caps.tools is False:
        tools = f"{facts.tool_count} tool{'s' if facts.tool_count != 1 else ''}"
        return "local-no-tools", f"{tools}; {kind}'s chat template takes none (they would be dropped)"
    return None


def decide(facts: RequestFacts, signals: Signals, cfg: Config) -> Outcome:
    cloud = cfg.cloud
    if facts.explicit is not None:
        e = facts.explicit
        if e.route == LOCAL:
            return Decision(LOCAL, e.model or cfg.local.model, e.source)
        return Decision(CLOUD, e.model or cloud.complex_model, e.source)
    if not facts.has_messages:
        return Decision(CLOUD, cloud.simple_model, "no-messages")
    if facts.plan_mode:
        return Decision(CLOUD, cloud.complex_model, "plan-mode")
    if facts.estimated_tokens > cfg.routing.long_context_threshold:
        return Decision(
            CLOUD, cloud.complex_model, "long-context", detail=f"~{facts.estimated_tokens} tokens"
        )
    if facts.server_tools:
        return Decision(CLOUD, cloud.complex_model, "server-tool", detail=",".join(facts.server_tools))
    if signals.turn_forced_cloud:
        return Decision(CLOUD, cloud.simple_model, "retry-to-cloud")
    if signals.local_up is None:
        return NEED_HEALTH
    misfit = local_misfit(facts, signals.capabilities, cfg, signals.local_token_factor) if signals.local_up else None
    if facts.background:
        if misfit is not None:
            return Decision(CLOUD, cloud.simple_model, misfit[0], detail=misfit[1])
        if signals.local_up:
            return Decision(LOCAL, cfg.local.model, "background")
        return Decision(CLOUD, cloud.simple_model, "background", detail="local server down")
    if not signals.local_up:
        return Decision(CLOUD, cloud.complex_model, "local-down")
    if misfit is not None:
        return Decision(CLOUD, cloud.complex_model, misfit[0], detail=misfit[1])
    if signals.cached is not None:
        return _from_classification(signals.cached, cfg, "cached")
    if signals.classification is None:
        return NEED_CLASSIFICATION
    return _from_classification(signals.classification, cfg, "classified")
