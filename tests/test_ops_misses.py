"""Routing misses: the pure tracker on hand-made rows, the keyed identifiers, and a log the real proxy wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from proxy import record_ids
from proxy.ops import stats
from proxy.ops.misses import Flags, Row, find_misses
from tests.proxy_harness import ROUTER_KEY, ProxyThread, make_config, messages_body
from tests.standins import AnthropicUpstream, OpenAILocal
from tests.standins.openai_local import HTTPErrorReply

KEY = b"k" * 32
CLAUDE_SYSTEM = [
    {"type": "text", "text": "You are Claude Code."},
    {"type": "text", "text": "# Environment\n - Primary working directory: /home/user/src/widgets\n - Shell: bash\n"},
]


def row(
    session: str | None = "s1",
    turn: int | None = 1,
    h: str | None = None,
    *,
    local: bool = True,
    ok: bool = True,
    failed: str | None = None,
    retry: bool = False,
    explicit: bool = False,
    project: str | None = "p1",
    day: str = "2026-11-20",
) -> Row:
    return Row(session, turn, h, project, day, Flags(local, ok and local and failed is None, failed, retry, explicit))


def test_each_kind_of_miss_counts_once_per_local_turn() -> None:
    rows = [
        # turn 1: local, three tool steps, fine
        row(turn=1, h="a"), row(turn=1, h="a"), row(turn=1, h="a"),
        # turn 2: local, fell back before output
        row(turn=2, h="b", local=True, failed="fallback"),
        # turn 3: local answer broke after content, then the retry went to the cloud
        row(turn=3, h="c", failed="broken"), row(turn=3, h="c", local=False, retry=True),
        # turn 4: local, then the user switched to the cloud explicitly (turn 5)
        row(turn=4, h="d"), row(turn=5, h="e", local=False, explicit=True),
        # the explicit cloud choice stays: a second explicit turn is no second miss
        row(turn=6, h="f", local=False, explicit=True),
        # turn 7 local; the user sends turn 7's message again as turn 8 (a repeat)
        row(turn=7, h="g"), row(turn=8, h="g", local=False),
        # another session, local, never missed
        row(session="s2", turn=1, h="x", project="p2", day="2026-11-21"),
    ]  # fmt: skip
    m = find_misses(rows)
    assert m.local_turns == 6  # s1 turns 1, 2, 3, 4, 7 and s2 turn 1
    assert m.missed == 4
    assert m.by_kind == {"fallback": 1, "broken": 1, "explicit": 1, "repeat": 1}
    assert m.by_day == {"2026-11-20": (5, 4), "2026-11-21": (1, 0)}
    assert m.by_project == {"p1": (5, 4), "p2": (1, 0)}
    assert m.rate == 4 / 6


def test_what_is_not_a_miss() -> None:
    rows = [
        # an explicit cloud turn after a *cloud* turn
        row(turn=1, h="a", local=False), row(turn=2, h="b", local=False, explicit=True),
        # the same message in a tool continuation (same turn) is no repeat
        row(turn=3, h="c"), row(turn=3, h="c"),
        # a message repeated after a *cloud* answer is no local miss
        row(turn=4, h="d", local=False), row(turn=5, h="d"),
        # the explicit switch comes after another cloud turn, not right after the local one
        row(turn=6, h="e"), row(turn=7, h="f", local=False), row(turn=8, h="g", local=False, explicit=True),
    ]  # fmt: skip
    m = find_misses(rows)
    assert (m.local_turns, m.missed, m.by_kind) == (3, 0, {})


def test_a_repeat_in_a_new_session_counts_and_records_without_session_are_turns_of_their_own() -> None:
    m = find_misses([row(session="s1", h="a"), row(session="s9", turn=1, h="a", local=False)])
    assert (m.missed, m.by_kind) == (1, {"repeat": 1})
    m = find_misses([row(session=None, turn=None), row(session=None, turn=None, failed="fallback")])
    assert (m.local_turns, m.missed) == (2, 1)


def test_a_log_written_before_turns_were_recorded_counts_each_local_record(tmp_path: Path) -> None:
    from proxy.decision_log import DecisionRecord, utc_iso

    lines = []
    for i in range(6):  # one session, identical local records, then one that fell back
        rec = DecisionRecord(ts=utc_iso(1_790_000_000 + i), id="r", session="s1", route="local", reason="cached",
                             status=200, fallback="connect-error" if i == 5 else None)  # fmt: skip
        data = json.loads(rec.to_json())
        old = {k: v for k, v in data.items() if k not in ("prompt_hash", "turn", "project", "project_name")}
        lines.append(json.dumps(old, separators=(",", ":")))
    log = tmp_path / "decisions.jsonl"
    log.write_text("\n".join(lines) + "\n")
    st = stats.compute_stats(log)
    assert (st.misses.local_turns, st.misses.missed, st.misses.by_kind) == (6, 1, {"fallback": 1})


def test_identifiers_are_keyed_short_and_need_a_key() -> None:
    h = record_ids.prompt_hash(KEY, "rename x to y")
    assert h is not None and len(h) == 16 and h == record_ids.prompt_hash(KEY, "rename x to y")
    assert h != record_ids.prompt_hash(b"other-key" * 4, "rename x to y")
    assert record_ids.prompt_hash(b"", "rename x to y") is None and record_ids.prompt_hash(KEY, "") is None
    cwd = record_ids.working_directory(CLAUDE_SYSTEM)
    assert cwd == "/home/user/src/widgets"
    pid = record_ids.project_id(KEY, cwd)
    assert pid is not None and len(pid) == 8 and pid == record_ids.project_id(KEY, cwd + "/")
    assert record_ids.project_name(cwd) == "widgets"
    assert record_ids.working_directory("no environment here") is None


def test_the_real_session_capture_names_its_directory() -> None:
    data = json.loads((Path(__file__).parent / "data" / "claude_code_session.json").read_text())
    assert record_ids.working_directory(data["requests"][0]["body"]["system"]) == "/home/user/project"


def _post(p: ProxyThread, text: str, *, session: str, model: str = "claude-sonnet-4-5", history: int = 0) -> None:
    msgs: list[dict[str, Any]] = []
    for i in range(history):  # earlier turns, so the turn count grows like Claude Code's transcript
        msgs += [{"role": "user", "content": f"earlier {i}"}, {"role": "assistant", "content": "ok"}]
    body = messages_body(text, model=model, system=CLAUDE_SYSTEM)
    body["messages"] = msgs + body["messages"]
    r = httpx.post(
        p.url + "/v1/messages", headers=p.headers(**{"X-Claude-Code-Session-Id": session}), json=body, timeout=30
    )
    assert r.status_code == 200, r.text


def test_misses_in_a_log_the_real_proxy_wrote(tmp_path: Path, local: OpenAILocal, upstream: AnthropicUpstream) -> None:
    cfg = make_config(tmp_path, local_url=local.v1_url, cloud_url=upstream.url, log={"project_names": True})
    env = {"SWITCHYARD_ROUTER_KEY": ROUTER_KEY, "SWITCHYARD_HASH_KEY": "h" * 64}
    local.default_verdict = "SIMPLE"
    with ProxyThread(cfg, env) as p:
        _post(p, "fix the typo in README", session="s1")  # local, fine
        _post(p, "fix the typo in README", session="s1", history=1)  # sent again: a repeat
        _post(p, "rename foo to bar", session="s1", history=2)  # local ...
        _post(p, "do it properly", session="s1", model="cloud", history=3)  # ... then the user picks the cloud
        local.script(HTTPErrorReply(500))
        _post(p, "add a test", session="s2")  # local fails before output: fallback
        recs = p.decisions(5)
    text = Path(cfg.log.decisions).read_text()
    assert "fix the typo" not in text and "widgets" in text  # the basename only, as allowed
    assert [r["turn"] for r in recs] == [1, 2, 3, 4, 1]
    assert recs[0]["prompt_hash"] == recs[1]["prompt_hash"] != recs[2]["prompt_hash"]
    assert {r["project"] for r in recs} == {record_ids.project_id(b"h" * 64, "/home/user/src/widgets")}
    assert recs[4]["fallback"] is not None and recs[4]["route"] == "cloud"
    st = stats.compute_stats(Path(cfg.log.decisions))
    assert (st.misses.local_turns, st.misses.missed) == (4, 3)
    assert st.misses.by_kind == {"fallback": 1, "explicit": 1, "repeat": 1}
    [label] = [st.project_label(p) for p in st.misses.by_project]
    assert label.startswith("widgets (")
    out = "\n".join(stats.render_text(st))
    assert "routing misses      75.0% (3 of 4 local turns)" in out


def test_without_a_hash_key_records_carry_no_hash_or_project(
    tmp_path: Path, local: OpenAILocal, upstream: AnthropicUpstream
) -> None:
    cfg = make_config(tmp_path, local_url=local.v1_url, cloud_url=upstream.url)
    with ProxyThread(cfg) as p:
        _post(p, "hello", session="s1", model="cloud")
        [rec] = p.decisions(1)
    assert (rec["prompt_hash"], rec["project"], rec["project_name"], rec["turn"]) == (None, None, None, 1)


def _rows_from_records(records: list[dict[str, Any]]) -> list[Row]:
    """The tracker's rows, computed the obvious way from parsed records."""
    out = []
    for r in records:
        if r["reason"] in ("bad-request", "unauthorized", "background"):
            continue
        broken = (r["detail"] or "").startswith("local stream broke after content")
        failed = "fallback" if r["fallback"] else "broken" if broken else None
        local = r["route"] == "local" or r["fallback"] is not None
        ok = r["route"] == "local" and 200 <= r["status"] < 300
        out.append(
            Row(r["session"], r["turn"], r["prompt_hash"], r["project"], r["ts"][:10],
                Flags(local, ok, failed, r["reason"] == "retry-to-cloud", r["reason"] == "explicit" and not local))
        )  # fmt: skip
    return out


def test_stats_finds_the_same_misses_as_the_tracker_on_parsed_records(tmp_path: Path) -> None:
    import random

    from proxy.decision_log import DecisionRecord, utc_iso

    rng = random.Random(4)
    records: list[dict[str, Any]] = []
    t = 1_790_000_000.0
    for s in range(40):
        session = None if s % 9 == 0 else f"sess-{s}"
        for turn in range(1, rng.randrange(2, 9)):
            h = f"{rng.randrange(30):016x}"  # few distinct messages: repeats happen
            route = rng.choice(["local", "local", "cloud"])
            reason = rng.choice(["classified", "cached", "explicit", "retry-to-cloud", "background", "bad-request"])
            for _step in range(rng.randrange(1, 6)):  # tool steps of the turn, mostly routed alike
                fallback = "connect-error" if rng.random() < 0.05 else None
                detail = "local stream broke after content: dropped" if rng.random() < 0.05 else None
                t += rng.uniform(1, 4000)
                rec = DecisionRecord(
                    ts=utc_iso(t), id="r", session=session, route="cloud" if fallback else route, reason=reason,
                    status=rng.choice([200, 200, 200, 500]), fallback=fallback, detail=detail, prompt_hash=h,
                    turn=turn, project=f"p{s % 3}",
                )  # fmt: skip
                records.append(json.loads(rec.to_json()))
    log = tmp_path / "decisions.jsonl"
    log.write_text("".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records))
    st = stats.compute_stats(log, chunk_bytes=3000)  # many chunks: state carried across them
    expected = find_misses(_rows_from_records(records))
    assert expected.missed > 5 and len(expected.by_kind) >= 4  # the data exercises the kinds
    assert (st.misses.local_turns, st.misses.missed, st.misses.by_kind) == (
        expected.local_turns, expected.missed, expected.by_kind,
    )  # fmt: skip
    assert st.misses.by_day == expected.by_day
    assert {p: v for p, v in st.misses.by_project.items()} == expected.by_project


def test_a_local_answer_that_broke_then_its_retry_is_one_miss(
    tmp_path: Path, local: OpenAILocal, upstream: AnthropicUpstream
) -> None:
    from tests.standins.openai_local import ChunkReply, chat_chunks

    cfg = make_config(tmp_path, local_url=local.v1_url, cloud_url=upstream.url)
    env = {"SWITCHYARD_ROUTER_KEY": ROUTER_KEY, "SWITCHYARD_HASH_KEY": "h" * 64}
    local.script(ChunkReply(chat_chunks(text="Here is the first part of a long answer", piece=8), drop_after=4))
    local.script_classifier("SIMPLE")
    body = messages_body("explain the module", stream=True, system=CLAUDE_SYSTEM)
    headers = {"X-Claude-Code-Session-Id": "s-42"}
    with ProxyThread(cfg, env) as p:
        for _ in range(2):  # the answer breaks off; Claude Code retries the same turn
            r = httpx.post(p.url + "/v1/messages", headers=p.headers(**headers), json=body, timeout=30)
            assert r.status_code == 200
        recs = p.decisions(2)
    assert [(r["route"], r["reason"]) for r in recs] == [("local", "classified"), ("cloud", "retry-to-cloud")]
    st = stats.compute_stats(Path(cfg.log.decisions))
    assert (st.misses.local_turns, st.misses.missed, st.misses.by_kind) == (1, 1, {"broken": 1})
