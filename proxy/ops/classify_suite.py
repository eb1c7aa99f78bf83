"""``switchyard classify``: run the proxy's own classifier (same prompt, parsing and budget) on prompts.

The built-in suite holds coding requests whose expected label is not in doubt: everyday work the
local model handles (SIMPLE) and work that needs the stronger model (COMPLEX).  Agreement with
those labels is how a prompt edit is judged before it is deployed (``--prompt-file``).  The
installer's classifier check runs a few of the same requests (:func:`check_cases`) through the same
code (:func:`run`), so the two can never drift apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from proxy.capabilities import LocalCapabilities, aiohttp_fetch, probe
from proxy.classifier import ClassifyResult, classify, classify_budget, classify_dialect, view_for_prompt
from proxy.config import Config
from proxy.routing import COMPLEX, SIMPLE

SIMPLE_CASES = (
    "Rename the variable `tmp` to `total` in utils/math.py.",
    "Add a docstring to the `parse_args` function in cli.py.",
    "Fix the typo 'recieve' in the error message in server.js.",
    "Write a unit test for the `slugify` function: empty string, spaces, and unicode.",
    "What does `git rebase -i HEAD~3` do?",
    "Add type hints to the three functions in helpers.py.",
    "Change the default port in config.yaml from 8080 to 9090.",
    "Sort the imports in app/models.py.",
    "Explain what this regex matches: ^\\d{3}-\\d{4}$",
    "Convert this for loop into a list comprehension: result = []\nfor x in xs:\n    result.append(x * 2)",
    "Add a .gitignore entry for the build/ directory.",
    "Run the test suite and tell me which tests fail.",
)
COMPLEX_CASES = (
    "Design a sharded, multi-region job queue with exactly-once delivery on top of Postgres and explain "
    "the failure modes, then plan the migration from our current Redis queue without downtime.",
    "Our service deadlocks under load about once a day. The lock ordering spans the cache, the "
    "connection pool and the metrics flusher across 14 files; find the cycle and redesign the locking.",
    "Re-architect the monolith's billing module into separate services with an event-sourced ledger, "
    "keeping invoices consistent during the cut-over.",
    "Find the security hole: users can sometimes read other tenants' documents. Audit the auth middleware, "
    "the row-level security policies and the caching layer together.",
    "Three previous attempts to fix this memory leak in the async stream pipeline failed; profile it, find "
    "the root cause across the event loop, the buffer pool and the C extension, and fix it properly.",
    "Implement a lock-free multi-producer multi-consumer ring buffer in Rust with correct memory orderings "
    "and prove it is linearizable.",
    "Plan and carry out a refactor that replaces our hand-rolled ORM with SQLAlchemy across 120 files, "
    "keeping behaviour identical, including transaction boundaries.",
    "Design the conflict-resolution algorithm for offline-first collaborative editing of rich text (CRDT "
    "versus OT), with a proof sketch of convergence.",
    "Our p99 latency doubled after the upgrade. Correlate the GC logs, the kernel scheduler traces and the "
    "connection-pool metrics to find the cause, then propose and validate a fix.",
    "Write a query planner for our custom DSL: cost-based join ordering, predicate pushdown and index "
    "selection, integrated with the existing executor.",
    "Migrate the authentication system from sessions to OAuth2 with PKCE and refresh-token rotation across "
    "the web app, the mobile API and the admin console without logging anyone out.",
)


@dataclass(frozen=True)
class Case:
    prompt: str
    expected: str | None  # "SIMPLE" | "COMPLEX" | None for an ad-hoc prompt


@dataclass(frozen=True)
class CaseResult:
    case: Case
    result: ClassifyResult

    @property
    def agrees(self) -> bool | None:
        if self.case.expected is None or self.result.verdict is None:
            return None
        return self.result.verdict == self.case.expected


def suite() -> list[Case]:
    return [Case(p, SIMPLE) for p in SIMPLE_CASES] + [Case(p, COMPLEX) for p in COMPLEX_CASES]


def check_cases() -> list[Case]:
    """The installer's quick check: two everyday requests and one hard one from the suite."""
    return [Case(SIMPLE_CASES[0], SIMPLE), Case(SIMPLE_CASES[4], SIMPLE), Case(COMPLEX_CASES[3], COMPLEX)]


async def probe_local(session: aiohttp.ClientSession, cfg: Config, api_key: str) -> LocalCapabilities:
    """What the proxy learns at start, learnt the same way (the classifier's budget depends on it)."""
    return await probe(aiohttp_fetch(session, cfg.local.base_url, api_key, cfg.local.health_timeout_s), cfg.local.model)


async def run_cases(
    cfg: Config, prompt: str, cases: Sequence[Case], api_key: str, *, early_stop: bool = True
) -> list[CaseResult]:
    """One case at a time, as the proxy would see them: a local server is often single-slot."""
    out: list[CaseResult] = []
    async with aiohttp.ClientSession() as session:
        caps = await probe_local(session, cfg, api_key)
        budget = classify_budget(cfg.routing, caps)
        for case in cases:
            result = await classify(
                session,
                cfg.local,
                cfg.routing,
                prompt,
                view_for_prompt(case.prompt),
                api_key,
                dialect=classify_dialect(cfg.local, caps),
                max_tokens=budget,
                early_stop=early_stop,
            )
            out.append(CaseResult(case, result))
    return out


def run(cfg: Config, prompt: str, cases: Sequence[Case], api_key: str) -> list[CaseResult]:
    return asyncio.run(run_cases(cfg, prompt, cases, api_key))


def advice(o: CaseResult, cfg: Config) -> str | None:
    """What a wrong or missing verdict means for the user's traffic, and what to tune; None when fine."""
    r, expected = o.result, o.case.expected
    tune = (
        "tune the classifier prompt (routing.classifier_prompt_file; try an edit first with "
        "`switchyard classify --suite --prompt-file FILE`)"
    )
    if r.verdict is None and r.mode == "timeout":
        return (
            f"no verdict within {cfg.routing.classify_timeout_s:g} s (classify-timeout): each such turn waits that "
            "long and then goes to the cloud; use a faster local model or raise routing.classify_timeout_s"
        )
    if r.verdict is None and r.mode == "empty":
        return (
            "no SIMPLE/COMPLEX in the reply (classify-empty): the proxy sends such turns to the cloud; "
            f"{tune}, or use a model that follows it"
        )
    if r.verdict is None:
        return f"the classifier call failed ({r.mode}: {r.detail}): the proxy sends such turns to the cloud"
    if expected == COMPLEX and r.verdict == SIMPLE:
        return (
            "a hard request judged SIMPLE (a false local): the proxy would answer work like this with the local "
            f"model; if it happens often, {tune} to raise the bar for SIMPLE"
        )
    if expected == SIMPLE and r.verdict == COMPLEX:
        return (
            "an everyday request judged COMPLEX (a false cloud): work like this would cost cloud tokens; "
            f"if it happens often, {tune} to lean further toward SIMPLE"
        )
    return None


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_outcome(o: CaseResult, width: int = 60) -> str:
    r = o.result
    verdict = r.verdict or "NO VERDICT"
    mark = {True: "✓", False: "✗", None: " "}[o.agrees]
    if o.case.expected is None:
        mark = " " if r.verdict else "!"
    elif r.verdict is None:
        mark = "!"
    line = f"{mark} {verdict:<10} {r.elapsed_ms / 1000:6.1f}s  {_one_line(o.case.prompt, width)}"
    if o.case.expected is not None:
        line += f"  (expected {o.case.expected})"
    if r.verdict is None:
        line += f"\n      {r.mode}: {r.detail or ''}"
    if r.last_line:
        line += f"\n      last line: {_one_line(r.last_line, 100)}"
    return line


@dataclass(frozen=True)
class Summary:
    total: int
    labelled: int
    agreed: int
    no_verdict: int
    by_mode: dict[str, int]

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.labelled if self.labelled else None


def summarize(outcomes: Sequence[CaseResult]) -> Summary:
    by_mode: dict[str, int] = {}
    for o in outcomes:
        by_mode[o.result.mode] = by_mode.get(o.result.mode, 0) + 1
    labelled = [o for o in outcomes if o.case.expected is not None]
    return Summary(
        total=len(outcomes),
        labelled=len(labelled),
        agreed=sum(1 for o in labelled if o.agrees),
        no_verdict=sum(1 for o in outcomes if o.result.verdict is None),
        by_mode=by_mode,
    )


def format_summary(s: Summary) -> str:
    # A missing verdict counts as a disagreement: the proxy would send it to the cloud.
    pct = f"{100 * s.agreement:.0f}%" if s.agreement is not None else "-"
    modes = ", ".join(f"{k} {v}" for k, v in sorted(s.by_mode.items()))
    return f"agreement {s.agreed}/{s.labelled} ({pct}); NO VERDICT {s.no_verdict}; modes: {modes}"
