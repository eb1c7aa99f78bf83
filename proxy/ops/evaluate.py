"""``switchyard eval``: replay a labelled set of Claude Code requests through the proxy's classifier.

Each request is judged exactly as the proxy judges it: the same facts and compact view built from the
full Anthropic request, the same prompt, reply parsing, token budget (from the same probe) and
timeout.  The figures (agreement, local share, false local, false cloud, no verdict, timeout,
classify latency) are computed by pure functions over the results, per category and overall, for
each prompt and each way of reading the reply: early stop (what the proxy does: hang up once the
verdict is settled) and, on request, waiting for the whole reply, so the trade shows.

The labelled file is JSON Lines, one request per line (see the README, "Evaluating the classifier")::

    {"label": "SIMPLE", "category": "rename", "reason": "...", "request": {...an Anthropic Messages body...}}
    {"label": "COMPLEX", "category": "architecture", "messages": [...]}   # + Claude Code's captured system/tools
    {"label": "SIMPLE", "prompt": "Rename x to y in utils.py"}          # one user message, same base
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from proxy import jsonio
from proxy.capabilities import LocalCapabilities
from proxy.classifier import classify, classify_budget, classify_dialect, compact_view
from proxy.config import Config
from proxy.conversation import extract_facts
from proxy.ops.classify_suite import probe_local
from proxy.ops.stats import percentile
from proxy.routing import COMPLEX, NEED_CLASSIFICATION, SIMPLE, Classification, Decision, Signals, decide
from proxy.validation import check_messages_body

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_SET = DATA_DIR / "eval_set.jsonl"
BASE_FILE = DATA_DIR / "claude_code_base.json"
LABELS = (SIMPLE, COMPLEX)
EARLY = "early-stop"
WHOLE = "whole-reply"
WAY_NAMES = {EARLY: "early stop (what the proxy does)", WHOLE: "whole reply"}
_KNOWN_KEYS = frozenset({"id", "label", "category", "reason", "request", "messages", "prompt"})
_MAX_REPORTED = 10


class LabelledSetError(Exception):
    """A labelled file that cannot be used; the message names each bad line and what is wrong."""


@dataclass(frozen=True)
class Labelled:
    id: str
    label: str
    category: str
    reason: str
    request: dict[str, Any]
    line: int


def base_request() -> dict[str, Any]:
    """The captured Claude Code first turn without its messages (model, system prompt, tools, settings)."""
    data = json.loads(BASE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def parse_line(text: str, line: int, base: Mapping[str, Any]) -> Labelled:
    """One labelled request from one line; ValueError saying what is wrong (without the line number)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc.args[0] if exc.args else exc})") from None
    if not isinstance(data, dict):
        raise ValueError("each line must be a JSON object")
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}: allowed are {', '.join(sorted(_KNOWN_KEYS))}")
    label = data.get("label")
    if label not in LABELS:
        raise ValueError(f'"label" must be "SIMPLE" or "COMPLEX", got {json.dumps(label)[:40]}')
    for key in ("id", "category", "reason"):
        if key in data and not isinstance(data[key], str):
            raise ValueError(f'"{key}" must be a string')
    given = [k for k in ("request", "messages", "prompt") if k in data]
    if len(given) != 1:
        raise ValueError('give exactly one of "request" (a whole Messages body), "messages" or "prompt"')
    request: Any
    if "request" in data:
        request = data["request"]
    elif "messages" in data:
        request = {**base, "messages": data["messages"]}
    else:
        prompt = data["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError('"prompt" must be a non-empty string')
        request = {**base, "messages": [{"role": "user", "content": prompt}]}
    problem = check_messages_body(request, require_max_tokens=False)
    if problem:
        raise ValueError(f"the request is not one the proxy would accept: {problem}")
    if not any(m.get("role") == "user" for m in request["messages"]):
        raise ValueError("the request has no user message: there is nothing to judge")
    return Labelled(
        id=str(data.get("id") or f"line {line}"),
        label=str(label),
        category=str(data.get("category") or "uncategorised"),
        reason=str(data.get("reason") or ""),
        request=request,
        line=line,
    )


def parse_set(lines: Iterable[str], source: str, base: Mapping[str, Any]) -> list[Labelled]:
    """Every labelled request of a file, or LabelledSetError naming each bad line (blank lines are skipped)."""
    items: list[Labelled] = []
    problems: list[str] = []
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            items.append(parse_line(text, n, base))
        except ValueError as exc:
            problems.append(f"{source} line {n}: {exc}")
    seen: dict[str, int] = {}
    for item in items:
        if item.id in seen:
            problems.append(f"{source} line {item.line}: id {item.id!r} is already used on line {seen[item.id]}")
        seen.setdefault(item.id, item.line)
    if problems:
        more = len(problems) - _MAX_REPORTED
        shown = problems[:_MAX_REPORTED] + ([f"... and {more} more bad line(s)"] if more > 0 else [])
        raise LabelledSetError("\n".join(shown) + "\nfix these lines (the format is in the README) and run again")
    if not items:
        raise LabelledSetError(f"{source} holds no labelled request: one JSON object per line is expected")
    return items


def load_set(path: Path) -> list[Labelled]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledSetError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_set(text.splitlines(), str(path), base_request())


def view_of(item: Labelled) -> str:
    """What the classifier sees for this request: the proxy's own facts and compact view."""
    return compact_view(extract_facts(item.request, {}, len(jsonio.dumps(item.request))))


def pre_route(item: Labelled, cfg: Config, caps: LocalCapabilities) -> str | None:
    """The reason the proxy's rules route this request before the classifier is asked (None: it asks)."""
    facts = extract_facts(item.request, {}, len(jsonio.dumps(item.request)))
    outcome = decide(facts, Signals(local_up=True, capabilities=caps), cfg)
    if outcome is NEED_CLASSIFICATION or not isinstance(outcome, Decision):
        return None
    return outcome.reason


# --- results and figures (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    item: Labelled
    result: Classification

    @property
    def agrees(self) -> bool:
        return self.result.verdict == self.item.label


@dataclass(frozen=True)
class Run:
    prompt: str  # a name for the prompt: "configured" or the prompt file's name
    way: str  # EARLY | WHOLE
    judged: tuple[Judged, ...]


@dataclass(frozen=True)
class Figures:
    n: int
    simple: int  # labelled SIMPLE
    complex: int  # labelled COMPLEX
    agreed: int
    judged_simple: int
    false_local: int  # labelled COMPLEX, judged SIMPLE
    false_cloud: int  # labelled SIMPLE, judged COMPLEX
    no_verdict: int  # the reply had no verdict, or the call failed (not a timeout)
    timeouts: int
    p50_ms: float | None
    p95_ms: float | None

    @staticmethod
    def rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    def to_dict(self) -> dict[str, Any]:
        r = self.rate
        return {
            "n": self.n,
            "labelled_simple": self.simple,
            "labelled_complex": self.complex,
            "agreed": self.agreed,
            "agreement": r(self.agreed, self.n),
            "local_share": r(self.judged_simple, self.n),
            "false_local": self.false_local,
            "false_local_rate": r(self.false_local, self.complex),
            "false_cloud": self.false_cloud,
            "false_cloud_rate": r(self.false_cloud, self.simple),
            "no_verdict": self.no_verdict,
            "no_verdict_rate": r(self.no_verdict, self.n),
            "timeouts": self.timeouts,
            "timeout_rate": r(self.timeouts, self.n),
            "classify_ms_p50": self.p50_ms,
            "classify_ms_p95": self.p95_ms,
        }


def figures(judged: Sequence[Judged]) -> Figures:
    ms = sorted(j.result.elapsed_ms for j in judged)
    return Figures(
        n=len(judged),
        simple=sum(1 for j in judged if j.item.label == SIMPLE),
        complex=sum(1 for j in judged if j.item.label == COMPLEX),
        agreed=sum(1 for j in judged if j.agrees),
        judged_simple=sum(1 for j in judged if j.result.verdict == SIMPLE),
        false_local=sum(1 for j in judged if j.item.label == COMPLEX and j.result.verdict == SIMPLE),
        false_cloud=sum(1 for j in judged if j.item.label == SIMPLE and j.result.verdict == COMPLEX),
        no_verdict=sum(1 for j in judged if j.result.verdict is None and j.result.mode != "timeout"),
        timeouts=sum(1 for j in judged if j.result.mode == "timeout"),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
    )


def by_category(judged: Sequence[Judged]) -> dict[str, Figures]:
    groups: dict[str, list[Judged]] = {}
    for j in judged:
        groups.setdefault(j.item.category, []).append(j)
    return {name: figures(group) for name, group in groups.items()}


@dataclass(frozen=True)
class Setup:
    """What the run was judged with (shown above the figures)."""

    source: str
    model: str
    base_url: str
    dialect: str
    capabilities: LocalCapabilities
    budget: int
    timeout_s: float
    pre_routed: dict[str, int]  # the proxy's rules route this many before classifying, by reason


def report_json(setup: Setup, runs: Sequence[Run]) -> dict[str, Any]:
    return {
        "set": setup.source,
        "model": setup.model,
        "base_url": setup.base_url,
        "dialect": setup.dialect,
        "server": setup.capabilities.describe(),
        "reasoning_template": setup.capabilities.reasoning,
        "budget_tokens": setup.budget,
        "timeout_s": setup.timeout_s,
        "pre_routed": setup.pre_routed,
        "runs": [
            {
                "prompt": run.prompt,
                "way": run.way,
                "overall": figures(run.judged).to_dict(),
                "categories": {k: v.to_dict() for k, v in by_category(run.judged).items()},
                "results": [
                    {
                        "id": j.item.id,
                        "category": j.item.category,
                        "label": j.item.label,
                        "verdict": j.result.verdict,
                        "mode": j.result.mode,
                        "detail": j.result.detail,
                        "classify_ms": round(j.result.elapsed_ms, 1),
                        "last_line": j.result.last_line,
                    }
                    for j in run.judged
                ],
            }
            for run in runs
        ],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _secs(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f}s"


_HEAD = f"{'agree':>6} {'local':>6} {'false-local':>11} {'false-cloud':>11} {'no-verdict':>10} {'timeout':>8}"
_HEAD += f" {'p50':>7} {'p95':>7}"


def _row(f: Figures) -> str:
    r = Figures.rate
    return (
        f"{_pct(r(f.agreed, f.n)):>6} {_pct(r(f.judged_simple, f.n)):>6} {_pct(r(f.false_local, f.complex)):>11} "
        f"{_pct(r(f.false_cloud, f.simple)):>11} {_pct(r(f.no_verdict, f.n)):>10} {_pct(r(f.timeouts, f.n)):>8} "
        f"{_secs(f.p50_ms):>7} {_secs(f.p95_ms):>7}"
    )


def render_text(setup: Setup, runs: Sequence[Run], verbose: bool = False) -> list[str]:
    caps = setup.capabilities
    think: dict[bool | None, str] = {
        True: "its chat template has a reasoning block",
        False: "its chat template has no reasoning block",
        None: "reasoning unknown",
    }
    n = len(runs[0].judged) if runs else 0
    labels = figures(runs[0].judged) if runs else None
    lines = [
        f"{n} requests ({labels.simple if labels else 0} SIMPLE, {labels.complex if labels else 0} COMPLEX) "
        f"from {setup.source}",
        f"classifier: {setup.model} at {setup.base_url} ({setup.dialect} API; {caps.describe()})",
        f"budget {setup.budget:,} tokens ({think[caps.reasoning]}), "
        f"timeout {setup.timeout_s:g} s",
    ]
    if setup.pre_routed:
        total = sum(setup.pre_routed.values())
        why = ", ".join(f"{k} {v}" for k, v in sorted(setup.pre_routed.items()))
        lines.append(f"note: the proxy's own rules would route {total} of these before asking the classifier ({why})")
    lines.append("false-local: hard requests judged SIMPLE (share of the COMPLEX-labelled); false-cloud: the reverse")
    width = max([len("overall"), *(len(c) for r in runs for c in by_category(r.judged))]) + 2
    for run in runs:
        lines += ["", f"prompt {run.prompt}, {WAY_NAMES.get(run.way, run.way)}"]
        lines.append(f"{'category':<{width}}{'n':>4} {_HEAD}")
        for name, f in sorted(by_category(run.judged).items()):
            lines.append(f"{name:<{width}}{f.n:>4} {_row(f)}")
        overall = figures(run.judged)
        lines.append(f"{'overall':<{width}}{overall.n:>4} {_row(overall)}")
        if verbose:
            for j in run.judged:
                if not j.agrees:
                    got = j.result.verdict or f"NO VERDICT ({j.result.mode})"
                    lines.append(f"  ✗ {j.item.id}: {got}, labelled {j.item.label} ({j.item.reason})")
    if len(runs) > 1:
        pw = max(len(r.prompt) for r in runs) + 2
        lines += ["", "side by side (overall)", f"{'prompt':<{pw}}{'way':<13}{_HEAD}"]
        for run in runs:
            lines.append(f"{run.prompt:<{pw}}{run.way:<13}{_row(figures(run.judged))}")
    return lines


# --- the run (I/O) -----------------------------------------------------------------------------------


async def evaluate(
    cfg: Config,
    items: Sequence[Labelled],
    prompts: Sequence[tuple[str, str]],
    api_key: str,
    ways: Sequence[str] = (EARLY,),
    source: str = "",
) -> tuple[Setup, list[Run]]:
    """Judge every item with every prompt, each way; one request at a time, as the proxy sends them
    (a local server often has one slot, and parallel calls would distort the latency)."""
    runs: list[Run] = []
    async with aiohttp.ClientSession() as session:
        caps = await probe_local(session, cfg, api_key)
        dialect = classify_dialect(cfg.local, caps)
        budget = classify_budget(cfg.routing, caps)
        views = [view_of(item) for item in items]
        for name, prompt in prompts:
            judged: dict[str, list[Judged]] = {way: [] for way in ways}
            for n, (item, view) in enumerate(zip(items, views, strict=True)):
                # Both ways of one request back to back, taking turns at going first: the second
                # call finds the prompt in the server's cache, and neither way should always get that.
                for way in ways if n % 2 == 0 else tuple(reversed(ways)):
                    result = await classify(
                        session, cfg.local, cfg.routing, prompt, view, api_key,
                        dialect=dialect, max_tokens=budget, early_stop=way == EARLY,
                    )  # fmt: skip
                    judged[way].append(Judged(item, result))
            runs += [Run(name, way, tuple(judged[way])) for way in ways]
    pre: dict[str, int] = {}
    for item in items:
        reason = pre_route(item, cfg, caps)
        if reason is not None:
            pre[reason] = pre.get(reason, 0) + 1
    setup = Setup(source, cfg.local.model, cfg.local.base_url, dialect, caps, budget, cfg.routing.classify_timeout_s,
                  pre)  # fmt: skip
    return setup, runs


def run(
    cfg: Config,
    items: Sequence[Labelled],
    prompts: Sequence[tuple[str, str]],
    api_key: str,
    ways: Sequence[str] = (EARLY,),
    source: str = "",
) -> tuple[Setup, list[Run]]:
    return asyncio.run(evaluate(cfg, items, prompts, api_key, ways, source))
