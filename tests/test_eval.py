"""``switchyard eval``: the labelled set, its parsing, the figures, and the command against a stand-in
and against a real llama-server."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.classifier import compact_view
from proxy.classify_prompt import DEFAULT_PROMPT
from proxy.conversation import extract_facts
from proxy.ops import evaluate as ev
from proxy.routing import Classification
from tests import build_eval_set
from tests.conftest import UserPaths
from tests.llama_server import LlamaOptions, LlamaPool
from tests.standins import OpenAILocal
from tests.standins.openai_local import EndlessReply, StallReply
from tests.test_ops_support import run_cli, write_setup

EVERYDAY = {"rename", "explain", "small-fix", "tests", "docs", "config"}
HARD = {"architecture", "concurrency", "security-review", "multi-file-refactor", "debugging-after-failures"}


# ---------------------------------------------------------------- the shipped set


def test_shipped_set_is_what_the_builder_writes() -> None:
    base, jsonl = build_eval_set.build()
    assert ev.BASE_FILE.read_text(encoding="utf-8") == base, "run python -m tests.build_eval_set"
    assert ev.DEFAULT_SET.read_text(encoding="utf-8") == jsonl, "run python -m tests.build_eval_set"


def test_shipped_set_is_big_realistic_and_labelled_with_reasons() -> None:
    items = ev.load_set(ev.DEFAULT_SET)
    assert len(items) >= 80
    cats = Counter(i.category for i in items)
    assert set(cats) == EVERYDAY | HARD and min(cats.values()) >= 7
    assert all(i.label == ("SIMPLE" if i.category in EVERYDAY else "COMPLEX") for i in items)
    assert all(i.reason for i in items)
    session = json.loads(build_eval_set.SESSION.read_text())["requests"][0]["body"]
    for item in items:
        # Claude Code's own system prompt and 24 tools, its settings, and its first-turn shape.
        assert item.request["system"] == session["system"] and len(item.request["tools"]) == 24
        assert item.request["messages"][1] == session["messages"][1]
    facts = [extract_facts(i.request, {}, 0) for i in items]
    assert sum(1 for f in facts if f.tool_calls) >= 20, "tool-step histories where they fit"
    assert sum(1 for f in facts if f.turns > 1) >= 5, "later turns of a session"
    assert all(f.estimated_tokens > 15000 for f in facts), "the real size of a Claude Code request"


def test_the_view_is_the_proxys() -> None:
    item = next(i for i in ev.load_set(ev.DEFAULT_SET) if i.id == "debug-still-failing")
    view = ev.view_of(item)
    assert view == compact_view(extract_facts(item.request, {}, len(json.dumps(item.request))))
    assert view.startswith("Latest user request:\nStill failing after both fixes.")
    assert "The session began with:\ntest_concurrent_checkout fails, fix it." in view
    assert "3 user turn(s), 5 tool call(s)" in view


# ---------------------------------------------------------------- parsing and bad lines


BASE: dict[str, Any] = {"model": "m", "max_tokens": 10, "system": "s"}


def _line(**kw: Any) -> str:
    return json.dumps({"label": "SIMPLE", **kw})


def test_three_ways_to_give_a_request() -> None:
    whole = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    items = ev.parse_set(
        [_line(request=whole, id="a"), "", _line(messages=[{"role": "user", "content": "yo"}]), _line(prompt="p")],
        "f.jsonl",
        BASE,
    )
    assert [i.id for i in items] == ["a", "line 3", "line 4"]
    assert items[0].request == whole
    assert items[1].request == {**BASE, "messages": [{"role": "user", "content": "yo"}]}
    assert items[2].request["messages"] == [{"role": "user", "content": "p"}] and items[2].category == "uncategorised"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "each line must be a JSON object"),
        (json.dumps({"label": "EASY", "prompt": "x"}), 'must be "SIMPLE" or "COMPLEX", got "EASY"'),
        (json.dumps({"prompt": "x"}), 'must be "SIMPLE" or "COMPLEX", got null'),
        (_line(prompt="x", labell="SIMPLE"), "unknown key(s) labell"),
        (_line(), 'give exactly one of "request"'),
        (_line(prompt="x", messages=[]), 'give exactly one of "request"'),
        (_line(prompt="  "), '"prompt" must be a non-empty string'),
        (_line(prompt="x", category=3), '"category" must be a string'),
        (_line(messages=[{"role": "robot", "content": "x"}]), "messages.0.role must be one of user, assistant, system"),
        (_line(messages=[{"role": "system", "content": "x"}]), "no user message"),
        (_line(request={"messages": []}), "model: a non-empty string is required"),
    ],
)
def test_a_bad_line_is_named_with_what_is_wrong(line: str, problem: str) -> None:
    with pytest.raises(ev.LabelledSetError) as err:
        ev.parse_set([_line(prompt="fine"), line], "mine.jsonl", BASE)
    first = str(err.value).splitlines()[0]
    assert first.startswith("mine.jsonl line 2: ") and problem in first, first


def test_every_bad_line_is_reported_and_duplicates_too() -> None:
    lines = [_line(prompt="a", id="x"), "nope", _line(prompt="b", id="x"), *["nope"] * 12]
    with pytest.raises(ev.LabelledSetError) as err:
        ev.parse_set(lines, "f", BASE)
    text = str(err.value)
    assert "f line 2: not valid JSON" in text
    assert "... and 4 more bad line(s)" in text  # 12 + 1 + the duplicate, 10 shown
    assert text.endswith("fix these lines (the format is in the README) and run again")
    with pytest.raises(ev.LabelledSetError, match="holds no labelled request"):
        ev.parse_set(["", "  "], "empty.jsonl", BASE)


def test_duplicate_ids_name_both_lines() -> None:
    with pytest.raises(ev.LabelledSetError, match="f line 3: id 'x' is already used on line 1"):
        ev.parse_set([_line(prompt="a", id="x"), _line(prompt="b"), _line(prompt="c", id="x")], "f", BASE)


# ---------------------------------------------------------------- figures


def _judged(label: str, verdict: str | None, mode: str = "ok", ms: float = 100.0, cat: str = "c") -> ev.Judged:
    item = ev.Labelled(id=f"{label}{verdict}{ms}", label=label, category=cat, reason="", request={}, line=1)
    return ev.Judged(item, Classification(verdict, mode, None, ms))


def test_figures() -> None:
    judged = [
        _judged("SIMPLE", "SIMPLE", ms=100),
        _judged("SIMPLE", "COMPLEX", ms=200),  # false cloud
        _judged("SIMPLE", None, "empty", ms=300),  # no verdict
        _judged("COMPLEX", "COMPLEX", ms=400, cat="d"),
        _judged("COMPLEX", "SIMPLE", ms=500, cat="d"),  # false local
        _judged("COMPLEX", None, "timeout", ms=15000, cat="d"),
        _judged("COMPLEX", None, "error", ms=1, cat="d"),
    ]
    f = ev.figures(judged)
    assert (f.n, f.simple, f.complex, f.agreed, f.judged_simple) == (7, 3, 4, 2, 2)
    assert (f.false_local, f.false_cloud, f.no_verdict, f.timeouts) == (1, 1, 2, 1)
    assert (f.p50_ms, f.p95_ms) == (300, 15000)
    d = f.to_dict()
    assert d["false_local_rate"] == 0.25 and d["false_cloud_rate"] == pytest.approx(1 / 3)
    assert d["agreement"] == pytest.approx(2 / 7) and d["local_share"] == pytest.approx(2 / 7)
    cats = ev.by_category(judged)
    assert (cats["c"].n, cats["d"].n, cats["c"].false_local, cats["d"].false_local) == (3, 4, 0, 1)
    empty = ev.figures([])
    assert empty.to_dict()["agreement"] is None and empty.p50_ms is None


# ---------------------------------------------------------------- the command, against a stand-in


@pytest.fixture
def local(user_paths: UserPaths) -> Iterator[OpenAILocal]:
    with OpenAILocal(models=("local-model",)) as srv:
        write_setup(user_paths, port=1, local_url=srv.v1_url)
        yield srv


def _write_set(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_eval_reports_per_category_and_overall(local: OpenAILocal, user_paths: UserPaths) -> None:
    mine = _write_set(
        user_paths.home / "mine.jsonl",
        [
            {"id": "r", "label": "SIMPLE", "category": "rename", "prompt": "Rename x to y."},
            {"id": "a", "label": "COMPLEX", "category": "arch", "prompt": "Design a queue."},
            {"id": "b", "label": "COMPLEX", "category": "arch", "prompt": "Design a cache."},
        ],
    )
    # A verdict then endless talk (cut by the early stop), a false local, no verdict.
    local.script_classifier(EndlessReply("SIMPLE\n"), "Small.\nSIMPLE", "Hmm.")
    res = run_cli("eval", "--set", str(mine), "-v")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith(f"3 requests (1 SIMPLE, 2 COMPLEX) from {mine}\n")
    rows = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.split()[:1] in (["rename"], ["arch"],
                                                                                          ["overall"])}
    # n, agree, local, false-local, false-cloud, no-verdict, timeout, p50, p95
    assert rows["rename"][:7] == ["1", "100%", "100%", "-", "0%", "0%", "0%"]
    assert rows["arch"][:7] == ["2", "0%", "50%", "50%", "-", "50%", "0%"]
    assert rows["overall"][:7] == ["3", "33%", "67%", "50%", "0%", "33%", "0%"]
    assert "✗ a: SIMPLE, labelled COMPLEX" in out and "✗ b: NO VERDICT (empty)" in out
    assert len(local.wait_for_hangups(1)) == 1
    reqs = local.requests_tagged("classify")
    assert [r.json["messages"][0]["content"] for r in reqs] == [DEFAULT_PROMPT] * 3
    assert reqs[0].json["messages"][1]["content"].startswith("Latest user request:\nRename x to y.")
    assert all(r.json["max_tokens"] == 8192 and r.json["stream"] is True for r in reqs)


def test_eval_compares_prompts_and_both_ways_as_json(local: OpenAILocal, user_paths: UserPaths) -> None:
    a, b = user_paths.home / "a.txt", user_paths.home / "b.txt"
    a.write_text("Prompt A. Answer SIMPLE or COMPLEX on the last line.\n")
    b.write_text("Prompt B. Answer SIMPLE or COMPLEX on the last line.\n")
    # Per prompt: early stop, then the whole reply; the whole reply of A overturns its early verdict.
    local.script_classifier(
        "SIMPLE\nthough it touches many files...\nCOMPLEX",
        "SIMPLE\nthough it touches many files...\nCOMPLEX",
        "COMPLEX",
        "COMPLEX",
    )
    res = run_cli("eval", "--category", "architecture", "--limit", "1", "--prompt-file", str(a),
                  "--prompt-file", str(b), "--whole-reply", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["set"] == str(ev.DEFAULT_SET) and data["budget_tokens"] == 8192 and data["timeout_s"] == 5.0
    assert [(r["prompt"], r["way"]) for r in data["runs"]] == [
        ("a.txt", "early-stop"), ("a.txt", "whole-reply"), ("b.txt", "early-stop"), ("b.txt", "whole-reply"),
    ]
    assert [r["results"][0]["verdict"] for r in data["runs"]] == ["SIMPLE", "COMPLEX", "COMPLEX", "COMPLEX"]
    overall = data["runs"][0]["overall"]
    assert overall["n"] == 1 and overall["false_local"] == 1 and overall["agreement"] == 0.0
    assert set(data["runs"][0]["categories"]) == {"architecture"}
    assert {"classify_ms_p50", "classify_ms_p95", "timeout_rate", "no_verdict_rate"} <= set(overall)
    contents = [r.json["messages"][0]["content"] for r in local.requests_tagged("classify")]
    assert contents == [a.read_text()] * 2 + [b.read_text()] * 2
    # The stand-in takes tools, so the proxy's rules let this request reach the classifier.
    assert data["pre_routed"] == {}


def test_eval_side_by_side_table(local: OpenAILocal, user_paths: UserPaths) -> None:
    local.script_classifier("SIMPLE", StallReply(None))
    text = user_paths.home / "a.txt"
    text.write_text("Prompt A: SIMPLE or COMPLEX\n")
    cfg = user_paths.config / "switchyard" / "config.toml"
    cfg.write_text(cfg.read_text().replace("classify_timeout_s = 5.0", "classify_timeout_s = 0.5"))
    res = run_cli("eval", "--category", "rename", "--limit", "1", "--whole-reply")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    i = lines.index("side by side (overall)")
    assert lines[i + 2].split()[:3] == ["configured", "early-stop", "100%"]
    assert lines[i + 3].split()[:2] == ["configured", "whole-reply"] and lines[i + 3].split()[7] == "100%"  # timeout


def test_eval_bad_input(local: OpenAILocal, user_paths: UserPaths) -> None:
    bad = user_paths.home / "bad.jsonl"
    bad.write_text(json.dumps({"label": "SIMPLE", "prompt": "ok"}) + "\n" + '{"label": "simple", "prompt": "x"}\n')
    res = run_cli("eval", "--set", str(bad))
    assert res.returncode == 1
    assert f'{bad} line 2: "label" must be "SIMPLE" or "COMPLEX", got "simple"' in res.stderr
    res = run_cli("eval", "--set", str(user_paths.home / "missing.jsonl"))
    assert res.returncode == 1 and "cannot read" in res.stderr and "No such file" in res.stderr
    res = run_cli("eval", "--category", "renames")
    assert res.returncode == 2 and "renames is not a category" in res.stderr and "rename," in res.stderr
    assert local.requests_tagged("classify") == []


def test_eval_says_when_the_local_server_answers_nothing(user_paths: UserPaths) -> None:
    write_setup(user_paths, port=1, local_url="http://127.0.0.1:9/v1")
    res = run_cli("eval", "--limit", "2")
    assert res.returncode == 1
    assert "answered none of the requests" in res.stderr and "switchyard status" in res.stderr


# ---------------------------------------------------------------- against a real llama-server


def test_eval_against_a_real_llama_server(llama: LlamaPool, user_paths: UserPaths) -> None:
    server = llama.get(LlamaOptions(ctx=8192, parallel=1))
    # The installer's render writes classify_max_tokens = 8192: the ceiling the probe's budget stays under.
    write_setup(user_paths, port=1, local_url=server.v1_url, model=server.model)
    cfg = user_paths.config / "switchyard" / "config.toml"
    cfg.write_text(cfg.read_text().replace("classify_timeout_s = 5.0", "classify_timeout_s = 30.0"))
    res = run_cli("eval", "--category", "rename", "--category", "architecture", "--limit", "2", "--whole-reply",
                  "--json", timeout=600)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    # The probe read SmolLM2's template: no reasoning block, so the brief budget.
    assert data["reasoning_template"] is False and data["budget_tokens"] == 256
    # Its template takes no tools: the proxy would route Claude Code's requests before classifying.
    assert sum(data["pre_routed"].values()) == 2
    assert [r["way"] for r in data["runs"]] == ["early-stop", "whole-reply"]
    for run in data["runs"]:
        assert run["overall"]["n"] == 2 and run["overall"]["classify_ms_p50"] > 0
        for r in run["results"]:
            assert r["mode"] in ("ok", "empty", "timeout"), r
            assert (r["verdict"] is None) == (r["mode"] != "ok")
    table = run_cli("eval", "--category", "rename", "--limit", "1", timeout=600)
    assert table.returncode == 0, table.stderr
    assert "overall" in table.stdout and "budget 256 tokens" in table.stdout


def test_both_ways_take_turns_at_going_first(local: OpenAILocal) -> None:
    # The second call of a pair finds the prompt in a real server's cache: neither way always gets that.
    local.script_classifier("SIMPLE", "COMPLEX", "COMPLEX", "SIMPLE")  # item 1: early, whole; item 2: whole, early
    res = run_cli("eval", "--category", "rename", "--limit", "2", "--whole-reply", "--json")
    assert res.returncode == 0, res.stderr
    runs = {r["way"]: [x["verdict"] for x in r["results"]] for r in json.loads(res.stdout)["runs"]}
    assert runs == {"early-stop": ["SIMPLE", "SIMPLE"], "whole-reply": ["COMPLEX", "COMPLEX"]}
