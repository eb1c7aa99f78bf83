"""Build ``switchyard eval``'s labelled set from the real captured Claude Code request shape.

    python -m tests.build_eval_set          # rewrite proxy/ops/data/claude_code_base.json and eval_set.jsonl

The base (model, system prompt, 24 tools, thinking and the other settings) is request 0 of
``tests/data/claude_code_session.json`` without its messages.  Each case is a conversation shaped
like that session: a first user message carrying Claude Code's currentDate reminder, the agent-list
system message Claude Code sends after it, and, where it fits, tool steps (assistant ``tool_use``,
user ``tool_result``) and earlier turns.  ``tests/test_eval.py`` checks that the shipped files are
what this script writes.
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SESSION = REPO / "tests" / "data" / "claude_code_session.json"
DATA = REPO / "proxy" / "ops" / "data"
BASE_FILE = DATA / "claude_code_base.json"
SET_FILE = DATA / "eval_set.jsonl"

# A tool step: (tool name, input, result text, is_error).
Step = tuple[str, dict[str, Any], str, bool]


@dataclass(frozen=True)
class Turn:
    text: str
    steps: tuple[Step, ...] = ()
    answer: str | None = None  # the assistant's closing text (None: the turn is still running)


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    label: str
    reason: str
    turns: tuple[Turn, ...]
    extra: dict[str, Any] = field(default_factory=dict)


def read(path: str, text: str) -> Step:
    numbered = "\n".join(f"{n}\t{line}" for n, line in enumerate(text.splitlines(), 1))
    return ("Read", {"file_path": f"/home/user/project/{path}"}, numbered, False)


def bash(command: str, output: str, error: bool = False, description: str = "") -> Step:
    return ("Bash", {"command": command, "description": description or command}, output, error)


def grep(pattern: str, output: str) -> Step:
    return ("Bash", {"command": f"grep -rn {json.dumps(pattern)} .", "description": f"Search for {pattern}"}, output,
            False)


def edit(path: str, old: str, new: str) -> Step:
    return (
        "Edit",
        {"replace_all": False, "file_path": f"/home/user/project/{path}", "old_string": old, "new_string": new},
        f"The file /home/user/project/{path} has been updated successfully.",
        False,
    )


def case(cid: str, category: str, label: str, reason: str, *turns: Turn | str) -> Case:
    return Case(cid, category, label, reason, tuple(t if isinstance(t, Turn) else Turn(t) for t in turns))


S, C = "SIMPLE", "COMPLEX"

UTILS = "def calc(xs):\n    tmp = 0\n    for x in xs:\n        tmp += x\n    return tmp\n"
PYTEST_FAIL = (
    "FAILED tests/test_orders.py::test_concurrent_checkout - AssertionError: assert 3 == 2\n"
    "==== 1 failed, 41 passed in 3.12s ===="
)

CASES: list[Case] = [
    # ---------------------------------------------------------------- SIMPLE: rename
    case("rename-variable", "rename", S, "one identifier in one small file",
         "Rename the variable `tmp` to `total` in utils/math.py."),
    case("rename-after-read", "rename", S, "a mechanical rename; the file has been read, the edit is trivial",
         Turn("Rename `calc` to `sum_values` in utils/math.py and update its one caller in app.py.",
              (read("utils/math.py", UTILS),
               grep("calc(", "./app.py:12:    total = calc(prices)\n./utils/math.py:1:def calc(xs):")))),
    case("rename-css-class", "rename", S, "a find-and-replace across two templates",
         "Rename the CSS class `btn-primary-old` to `btn-primary` in templates/base.html and templates/form.html."),
    case("rename-env-var", "rename", S, "renaming a config key in three known places",
         Turn("Rename the environment variable APP_DEBUG to MYAPP_DEBUG everywhere it is read.",
              (grep("APP_DEBUG", "./settings.py:8:DEBUG = os.environ.get(\"APP_DEBUG\") == \"1\"\n"
                    "./docker-compose.yml:14:      - APP_DEBUG=1\n"
                    "./README.md:40:Set APP_DEBUG=1 for verbose logs."),))),
    case("rename-file", "rename", S, "a git mv plus one import",
         "Rename helpers.py to text_helpers.py with git mv and fix the import in main.py."),
    case("rename-test", "rename", S, "naming only",
         "The test `test_1` in tests/test_parser.py should be called `test_parses_empty_input`. Rename it."),
    case("rename-followup", "rename", S, "a follow-up rename in a session that already did one",
         Turn("Rename `tmp` to `total` in utils/math.py.", (edit("utils/math.py", "tmp", "total"),), "Renamed."),
         "Also rename the parameter `xs` to `values` in the same function."),
    # ---------------------------------------------------------------- SIMPLE: explain
    case("explain-git", "explain", S, "a factual question about a common tool",
         "What does `git rebase -i HEAD~3` do?"),
    case("explain-regex", "explain", S, "reading a short regex",
         "Explain what this regex matches: ^\\d{3}-\\d{4}$"),
    case("explain-function", "explain", S, "explaining one short function already read",
         Turn("What does `calc` in utils/math.py do?", (read("utils/math.py", UTILS),))),
    case("explain-error", "explain", S, "a common error message",
         "What does `TypeError: 'NoneType' object is not subscriptable` mean and where should I look?"),
    case("explain-dockerfile", "explain", S, "walking through a small file",
         Turn("Explain this Dockerfile line by line.",
              (read("Dockerfile", "FROM python:3.11-slim\nWORKDIR /app\nCOPY requirements.txt .\n"
                    "RUN pip install -r requirements.txt\nCOPY . .\nCMD [\"python\", \"main.py\"]"),))),
    case("explain-decorator", "explain", S, "a language feature question",
         "How does `functools.lru_cache` work, and when is it a bad idea?"),
    case("explain-test-output", "explain", S, "reading a test run the assistant just made",
         Turn("Run the tests and tell me which ones fail.",
              (bash("pytest -q",
                    "..F.....\nFAILED tests/test_slug.py::test_unicode - AssertionError\n1 failed, 7 passed",
                    True),))),
    # ---------------------------------------------------------------- SIMPLE: small fix
    case("fix-typo", "small-fix", S, "a one-word string change",
         "Fix the typo 'recieve' in the error message in server.js."),
    case("fix-off-by-one", "small-fix", S, "a local bug with an obvious fix",
         Turn("The pagination shows one item too few on the last page. Fix it.",
              (read("pager.py", "def last_page(items, size):\n    return items[-(len(items) % size) - 1:]"),))),
    case("fix-null-check", "small-fix", S, "a guard clause in one function",
         "get_user() crashes when the id is not found; return None instead of raising KeyError."),
    case("fix-import", "small-fix", S, "a missing import the error names",
         Turn("Running main.py fails, fix it.",
              (bash("python main.py", "Traceback (most recent call last):\n  File \"main.py\", line 3, in <module>\n"
                    "    data = json.loads(raw)\nNameError: name 'json' is not defined", True),))),
    case("fix-lint", "small-fix", S, "mechanical lint fixes",
         "Fix the three ruff warnings in app/models.py (unused import, line too long, f-string without placeholders)."),
    case("fix-default-arg", "small-fix", S, "a well-known Python pitfall in one place",
         "The function add_tag(tag, tags=[]) keeps tags between calls. Fix the mutable default argument."),
    case("fix-status-code", "small-fix", S, "one return value",
         "The /login endpoint returns 200 on a wrong password; make it return 401."),
    # ---------------------------------------------------------------- SIMPLE: tests
    case("test-slugify", "tests", S, "unit tests for one pure function",
         "Write a unit test for the `slugify` function: empty string, spaces, and unicode."),
    case("test-parametrize", "tests", S, "restructuring existing tests",
         "Turn the four near-identical tests in tests/test_price.py into one pytest.mark.parametrize test."),
    case("test-edge-cases", "tests", S, "tests for a small function already read",
         Turn("Add tests for the edge cases of `last_page` in pager.py.",
              (read("pager.py", "def last_page(items, size):\n    if size <= 0:\n        raise ValueError(size)\n"
                    "    rest = len(items) % size or size\n    return items[-rest:]"),))),
    case("test-fixture", "tests", S, "a fixture for an existing test file",
         "Add a pytest fixture that creates a temporary SQLite database for tests/test_repo.py."),
    case("test-run-one", "tests", S, "running one test",
         "Run only tests/test_slug.py::test_unicode with -vv and show me the output."),
    case("test-mock", "tests", S, "mocking one call",
         "Write a test for fetch_weather() that mocks requests.get so it does not hit the network."),
    case("test-after-write", "tests", S, "a tool step in a test-writing turn",
         Turn("Write a test for the new `clamp` helper.",
              (("Write", {"file_path": "/home/user/project/tests/test_clamp.py",
                          "content": "from helpers import clamp\n\n"
                                     "def test_clamp():\n    assert clamp(5, 0, 3) == 3\n"},
                "File created successfully at: /home/user/project/tests/test_clamp.py", False),
               bash("pytest -q tests/test_clamp.py", "1 passed in 0.02s")))),
    # ---------------------------------------------------------------- SIMPLE: docs
    case("docs-docstring", "docs", S, "one docstring",
         "Add a docstring to the `parse_args` function in cli.py."),
    case("docs-readme-section", "docs", S, "describing an existing command",
         "Add a 'Running the tests' section to README.md: install dev deps, then run pytest."),
    case("docs-type-hints", "docs", S, "annotations on three small functions",
         "Add type hints to the three functions in helpers.py."),
    case("docs-changelog", "docs", S, "summarising the last commits",
         Turn("Write a CHANGELOG entry for the last three commits.",
              (bash("git log --oneline -3", "a1b2c3d Fix login status code\n9f8e7d6 Add clamp helper\n"
                    "1234abc Rename calc to sum_values"),))),
    case("docs-comment", "docs", S, "a comment explaining a constant",
         "Add a comment above RETRY_LIMIT in client.py saying why it is 5."),
    case("docs-usage", "docs", S, "a usage example",
         "Add a usage example to the docstring of `Cache.get_or_set`."),
    case("docs-fix-link", "docs", S, "a broken link",
         "The link to CONTRIBUTING.md in the README is broken (it points to docs/contributing.md). Fix it."),
    # ---------------------------------------------------------------- SIMPLE: config
    case("config-port", "config", S, "one value in a config file",
         "Change the default port in config.yaml from 8080 to 9090."),
    case("config-gitignore", "config", S, "one ignore line",
         "Add a .gitignore entry for the build/ directory."),
    case("config-dependency", "config", S, "adding one dependency",
         "Add httpx>=0.27 to the dependencies in pyproject.toml."),
    case("config-ci-python", "config", S, "a version bump in CI",
         Turn("Make the CI workflow also test on Python 3.12.",
              (read(".github/workflows/ci.yml", "on: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n"
                    "    strategy:\n      matrix:\n        python: ['3.10', '3.11']"),))),
    case("config-eslint", "config", S, "one lint rule",
         "Turn off the `no-console` rule in .eslintrc.json for the scripts/ folder only."),
    case("config-env-example", "config", S, "documenting variables in .env.example",
         "Create a .env.example with DATABASE_URL, REDIS_URL and SECRET_KEY (placeholder values)."),
    case("config-logging", "config", S, "a log level",
         "Set the log level to DEBUG in logging.ini for the `app.db` logger only."),
    # ---------------------------------------------------------------- COMPLEX: architecture
    case("arch-job-queue", "architecture", C, "a distributed design with failure modes and a migration",
         "Design a sharded, multi-region job queue with exactly-once delivery on top of Postgres and explain "
         "the failure modes, then plan the migration from our current Redis queue without downtime."),
    case("arch-billing-split", "architecture", C, "splitting a monolith with a consistency requirement",
         "Re-architect the monolith's billing module into separate services with an event-sourced ledger, "
         "keeping invoices consistent during the cut-over."),
    case("arch-crdt", "architecture", C, "an algorithm choice that needs a convergence argument",
         "Design the conflict-resolution algorithm for offline-first collaborative editing of rich text (CRDT "
         "versus OT), with a proof sketch of convergence."),
    case("arch-plugin-system", "architecture", C, "a new extension architecture across the codebase",
         Turn("Design a plugin system for this app: discovery, versioned hooks, sandboxing of third-party code, "
              "and how the current hard-coded exporters move onto it.",
              (bash("ls app", "exporters\nimporters\ncore\napi\ncli.py\nsettings.py"),
               grep("class .*Exporter", "./app/exporters/csv.py:4:class CsvExporter:\n"
                    "./app/exporters/pdf.py:9:class PdfExporter:\n./app/exporters/xlsx.py:6:class XlsxExporter:")))),
    case("arch-multi-tenant", "architecture", C, "data isolation design with trade-offs",
         "We need multi-tenancy. Compare schema-per-tenant, row-level security and database-per-tenant for our "
         "Postgres + Django stack, pick one, and plan the migration of 400 existing customers."),
    case("arch-caching-layer", "architecture", C, "cache design with invalidation across services",
         "Design a caching layer for the product catalogue shared by the web, mobile and search services, "
         "including invalidation on price changes and what happens when the cache cluster fails."),
    case("arch-query-planner", "architecture", C, "a cost-based planner integrated with an executor",
         "Write a query planner for our custom DSL: cost-based join ordering, predicate pushdown and index "
         "selection, integrated with the existing executor."),
    case("arch-followup", "architecture", C, "the second turn turns a question into a system design",
         Turn("How many requests per second does the ingest endpoint take today?",
              (bash("cat metrics/ingest.txt", "p50 12ms p99 180ms peak 1,900 req/s"),), "Peak is about 1,900 req/s."),
         "We must reach 50,000 req/s next quarter. Design the new ingest pipeline (partitioning, backpressure, "
         "storage) and how we roll it out alongside the old one."),
    # ---------------------------------------------------------------- COMPLEX: concurrency
    case("conc-deadlock", "concurrency", C, "a lock-ordering cycle across many files",
         "Our service deadlocks under load about once a day. The lock ordering spans the cache, the "
         "connection pool and the metrics flusher across 14 files; find the cycle and redesign the locking."),
    case("conc-ring-buffer", "concurrency", C, "lock-free code with memory orderings and a proof",
         "Implement a lock-free multi-producer multi-consumer ring buffer in Rust with correct memory orderings "
         "and prove it is linearizable."),
    case("conc-race-checkout", "concurrency", C, "a race that only shows under concurrency, across layers",
         Turn("Two customers can sometimes buy the last item at the same time. Find the race in the checkout "
              "path (API handler, inventory service, Postgres transaction) and fix it without a global lock.",
              (bash("pytest -q tests/test_orders.py", PYTEST_FAIL, True),
               read("inventory/service.py", "def reserve(item_id, qty):\n    stock = repo.get(item_id)\n"
                    "    if stock.available >= qty:\n        repo.update(item_id, stock.available - qty)\n")))),
    case("conc-async-cancel", "concurrency", C, "cancellation semantics across an async pipeline",
         "When a client disconnects, our asyncio pipeline sometimes leaks the upstream connection and sometimes "
         "double-releases the semaphore. Audit the cancellation paths through the three stages and make them correct."),
    case("conc-actor-migration", "concurrency", C, "changing the concurrency model of a subsystem",
         "Move the order-matching engine from a thread pool with shared dicts to a single-writer actor model "
         "without losing ordering guarantees or throughput."),
    case("conc-distributed-lock", "concurrency", C, "distributed locking with failure analysis",
         "We use Redis SETNX as a distributed lock for payouts and saw a double payout when a node paused for GC. "
         "Explain why, and design a fencing-token scheme that is safe."),
    case("conc-gil-free", "concurrency", C, "thread safety of a C extension",
         "Make our C extension safe for free-threaded Python 3.13: audit every shared static, the reference "
         "counting around callbacks, and the buffer protocol implementation."),
    case("conc-flaky-ordering", "concurrency", C, "a flaky test caused by event ordering across workers",
         Turn("test_event_order fails about 1 in 50 runs on CI. The events come from three Celery workers and "
              "a websocket fan-out. Find the real ordering bug, not a sleep.",
              (bash("pytest -q tests/test_events.py --count 50", "FAILED test_event_order (2 of 50)", True),))),
    # ---------------------------------------------------------------- COMPLEX: security review
    case("sec-tenant-leak", "security-review", C, "an authorization hole across several layers",
         "Find the security hole: users can sometimes read other tenants' documents. Audit the auth middleware, "
         "the row-level security policies and the caching layer together."),
    case("sec-oauth-migration", "security-review", C, "an auth migration across three clients",
         "Migrate the authentication system from sessions to OAuth2 with PKCE and refresh-token rotation across "
         "the web app, the mobile API and the admin console without logging anyone out."),
    case("sec-ssrf", "security-review", C, "SSRF review with redirects and DNS rebinding",
         "Review our URL-preview feature for SSRF: redirects, DNS rebinding, IPv6 and cloud metadata endpoints. "
         "Propose a fix that holds against all of them."),
    case("sec-crypto-review", "security-review", C, "reviewing hand-written crypto",
         Turn("Review our token signing code for vulnerabilities.",
              (read("auth/tokens.py", "import hashlib\n\ndef sign(payload, key):\n"
                    "    return hashlib.sha256(key + payload).hexdigest()\n\n"
                    "def verify(payload, key, sig):\n    return sign(payload, key) == sig\n"),))),
    case("sec-threat-model", "security-review", C, "a threat model for a whole system",
         "Write a threat model for our file-sharing service (upload, virus scan, share links, previews), rank the "
         "risks and say which controls are missing."),
    case("sec-deserialization", "security-review", C, "tracing untrusted data through the codebase",
         "Audit the codebase for unsafe deserialization: pickle, yaml.load, and our custom RPC decoder; trace "
         "which of them can see attacker-controlled bytes."),
    case("sec-supply-chain", "security-review", C, "a review of the build and release pipeline",
         "Assess our release pipeline for supply-chain attacks: GitHub Actions permissions, third-party actions, "
         "the PyPI token and the Docker base images. What would an attacker do first?"),
    case("sec-sql-injection-sweep", "security-review", C, "a sweep across many query sites",
         Turn("We found one SQL injection in reports.py. Check every other raw query in the project for the same "
              "problem and fix them properly.",
              (grep("execute(f", "./reports.py:88:    cur.execute(f\"SELECT * FROM r WHERE id={rid}\")\n"
                    "./admin/search.py:41:    cur.execute(f\"... LIKE '%{term}%'\")\n"
                    "./billing/export.py:120:    cur.execute(f\"... ORDER BY {col}\")"),))),
    # ---------------------------------------------------------------- COMPLEX: multi-file refactor
    case("refactor-orm", "multi-file-refactor", C, "a library swap across 120 files with behaviour kept",
         "Plan and carry out a refactor that replaces our hand-rolled ORM with SQLAlchemy across 120 files, "
         "keeping behaviour identical, including transaction boundaries."),
    case("refactor-sync-to-async", "multi-file-refactor", C, "changing the execution model of a whole service",
         "Convert the Flask service to async (Quart or FastAPI), including the database layer and the 60 "
         "handlers, without breaking the existing API contract."),
    case("refactor-monorepo", "multi-file-refactor", C, "restructuring packages and imports everywhere",
         Turn("Split the `common` package into `common-core`, `common-db` and `common-http` and update every "
              "import in the five services that use it, keeping the release pipeline working.",
              (bash("ls services", "billing\ncatalog\ngateway\nnotify\nsearch"),
               grep("from common", "./services/billing/app.py:3:from common.db import session\n"
                    "./services/gateway/routes.py:1:from common.http import client\n... 212 more lines")))),
    case("refactor-error-handling", "multi-file-refactor", C, "a cross-cutting change of error semantics",
         "Replace our mix of error codes, None returns and exceptions with one Result-style error model across the "
         "domain layer (about 40 modules), and update all callers."),
    case("refactor-config-system", "multi-file-refactor", C, "replacing global settings used everywhere",
         "Get rid of the global `settings` module: introduce dependency-injected config objects across the app, "
         "workers and CLI, and keep the test suite green at every step."),
    case("refactor-typescript-strict", "multi-file-refactor", C, "turning on strict mode across a large codebase",
         "Turn on TypeScript strict mode for the whole frontend (about 300 files) and fix the errors properly, "
         "not with `any`."),
    case("refactor-api-versioning", "multi-file-refactor", C, "introducing API versioning across layers",
         "Introduce /v2 of the public API next to /v1: shared domain logic, versioned serializers, deprecation "
         "headers, and the client SDKs regenerated."),
    case("refactor-python2-remnants", "multi-file-refactor", C, "a repo-wide semantic cleanup",
         Turn("Remove the six/py2 compatibility layer from the whole repository, including the string/bytes "
              "handling in the protocol code.",
              (grep("import six", "./proto/codec.py:2:import six\n./net/frame.py:1:import six\n... 57 more"),))),
    # ---------------------------------------------------------------- COMPLEX: debugging after failed attempts
    case("debug-memory-leak", "debugging-after-failures", C, "a leak that survived three attempts, across layers",
         "Three previous attempts to fix this memory leak in the async stream pipeline failed; profile it, find "
         "the root cause across the event loop, the buffer pool and the C extension, and fix it properly."),
    case("debug-p99", "debugging-after-failures", C, "a latency regression needing correlation of several sources",
         "Our p99 latency doubled after the upgrade. Correlate the GC logs, the kernel scheduler traces and the "
         "connection-pool metrics to find the cause, then propose and validate a fix."),
    case("debug-still-failing", "debugging-after-failures", C, "the session's own fixes failed twice",
         Turn("test_concurrent_checkout fails, fix it.",
              (bash("pytest -q tests/test_orders.py", PYTEST_FAIL, True),
               edit("inventory/service.py", "stock = repo.get(item_id)", "stock = repo.get(item_id, for_update=True)"),
               bash("pytest -q tests/test_orders.py", PYTEST_FAIL, True)),
              "I added a row lock; the test should pass now."),
         Turn("It still fails, same assertion.",
              (edit("orders/api.py", "with db.transaction():", "with db.transaction(isolation='serializable'):"),
               bash("pytest -q tests/test_orders.py", PYTEST_FAIL, True)),
              "Serializable isolation should fix it."),
         "Still failing after both fixes. Stop guessing: find the actual root cause."),
    case("debug-heisenbug", "debugging-after-failures", C, "a crash that vanishes under the debugger",
         "The worker segfaults about once an hour in production but never under gdb or with ASAN. We already "
         "tried upgrading numpy and pinning the allocator. What next, concretely?"),
    case("debug-data-corruption", "debugging-after-failures", C, "intermittent corruption after failed fixes",
         Turn("Some exported CSV files have rows from other exports mixed in. Find out why.",
              (grep("tempfile", "./exports/writer.py:17:    path = f\"/tmp/export-{int(time.time())}.csv\""),
               edit("exports/writer.py", "int(time.time())", "int(time.time() * 1000)")),
              "Switched to millisecond timestamps so names no longer collide."),
         "Customers still see mixed rows today, even with the new names. The exports run on four workers "
         "behind a shared NFS mount. Find the real cause."),
    case("debug-k8s-restarts", "debugging-after-failures", C, "an operational failure across systems",
         "Pods restart every few hours with OOMKilled although heap usage looks flat. We raised the limit twice "
         "and it only delays it. Work out where the memory goes (page cache, native allocations, sidecars)."),
    case("debug-wrong-totals", "debugging-after-failures", C, "a numeric bug that survived earlier fixes",
         Turn("The monthly invoice totals are off by a few cents for some customers.",
              (edit("billing/totals.py", "round(x, 2)", "Decimal(x).quantize(Decimal('0.01'))"),
               bash("pytest -q tests/test_totals.py", "3 passed")),
              "Switched to Decimal rounding; the tests pass."),
         "Production totals are still off for the same customers after your Decimal change. They all have "
         "prorated plan changes and two currencies. Find it properly this time."),
    case("debug-ci-only", "debugging-after-failures", C, "an environment-dependent failure after attempts",
         Turn("The integration tests pass locally but fail on CI with a timeout; we already bumped timeouts and "
              "retried the job. Figure out what differs on CI.",
              (bash("gh run view 8812 --log | tail -5", "E   TimeoutError: database did not become ready in 60s\n"
                    "E   (connection refused 127.0.0.1:5432)", True),))),
]


def _base(session: dict[str, Any]) -> dict[str, Any]:
    body = session["requests"][0]["body"]
    return {k: v for k, v in body.items() if k != "messages"}


def _first_user(session: dict[str, Any], text: str) -> dict[str, Any]:
    reminder = session["requests"][0]["body"]["messages"][0]["content"][0]
    return {"role": "user", "content": [reminder, {"type": "text", "text": text}]}


def _messages(session: dict[str, Any], c: Case, ids: itertools.count[int]) -> list[dict[str, Any]]:
    agents = session["requests"][0]["body"]["messages"][1]
    out: list[dict[str, Any]] = []
    for n, turn in enumerate(c.turns):
        if n == 0:
            out += [_first_user(session, turn.text), agents]
        else:
            out.append({"role": "user", "content": [{"type": "text", "text": turn.text}]})
        for name, tool_input, result, is_error in turn.steps:
            tid = f"toolu_eval_{next(ids):04d}"
            out.append({"role": "assistant", "content": [{"type": "tool_use", "id": tid, "name": name,
                                                          "input": tool_input}]})
            block: dict[str, Any] = {"tool_use_id": tid, "type": "tool_result", "content": result}
            if is_error:
                block["is_error"] = True
            out.append({"role": "user", "content": [block]})
        if turn.answer is not None:
            out.append({"role": "assistant", "content": [{"type": "text", "text": turn.answer}]})
    return out


def build() -> tuple[str, str]:
    """(base JSON, eval set JSONL) as they are shipped."""
    session = json.loads(SESSION.read_text(encoding="utf-8"))
    ids = itertools.count(1)
    lines = []
    for c in CASES:
        line = {"id": c.id, "label": c.label, "category": c.category, "reason": c.reason,
                "messages": _messages(session, c, ids)}
        lines.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
    base = json.dumps(_base(session), ensure_ascii=False, separators=(",", ":"))
    return base + "\n", "\n".join(lines) + "\n"


def main() -> int:
    base, jsonl = build()
    DATA.mkdir(parents=True, exist_ok=True)
    BASE_FILE.write_text(base, encoding="utf-8")
    SET_FILE.write_text(jsonl, encoding="utf-8")
    print(f"wrote {BASE_FILE} and {SET_FILE} ({len(CASES)} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
