"""Regenerate the captured Claude Code traffic in ``tests/data/`` from the real CLI.

    python -m tests.capture_claude_code [--claude PATH] [--out tests/data] [--session | --all]

(PATH defaults to ``$SWITCHYARD_TEST_CLAUDE``, then ``.ci-cache/node/node_modules/.bin/claude``,
then ``claude`` on PATH.)  Runs the CLI headless three times against a recording stand-in
Anthropic server on 127.0.0.1, never anywhere else, and writes:

- ``claude_code_turn1.json``: the first main-turn request body (a ``Write`` tool_use is answered);
- ``claude_code_turn2.json``: the tool-result continuation (answered with text);
- ``claude_code_haiku.json``: a haiku-class request (a subagent launched with ``model: haiku``;
  headless ``-p`` runs with non-essential traffic disabled send no title/summary requests);
- ``claude_code_plan.json``: the first request of a ``--permission-mode plan`` session;
- ``claude_code_headers.json``: the request headers of the first two sessions' calls, and the
  sequence of (method, path) calls per session.

With ``--session`` it writes only, and with ``--all`` also, ``claude_code_session.json``: one
conversation over three invocations in the same HOME and working directory (a first turn with
Write, Read and Bash steps; ``--continue`` with Edit and Bash; ``--continue --permission-mode plan``
with Read), holding every main-model request body in order with its selected headers
(see :func:`capture_session`).

Scrubbing: the temporary HOME becomes ``/home/user`` (the working directory is ``/home/user/project``,
also in Claude Code's munged ``-home-user-project`` form), the device id becomes 64 zeros,
session ids become fixed UUIDs, the bearer token becomes ``<redacted>``, the port becomes ``PORT``.
Bodies are written compactly (``separators=(",", ":")``, non-ASCII kept), which reproduces Claude
Code's own serialisation byte for byte before scrubbing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.claude_cli import run_claude
from tests.standins import AnthropicUpstream, RecordedRequest
from tests.standins.anthropic_upstream import AnyReply, text_reply, tool_use_reply

REPO_ROOT = Path(__file__).resolve().parents[1]
FAKE_HOME = "/home/user"
FAKE_DEVICE_ID = "0" * 64
DUMMY_TOKEN = "dummy-capture-token"  # not a secret: the stand-in accepts any token
REDACTED_HEADERS = {"authorization", "x-api-key"}
DROPPED_HEADERS = {"content-length"}


def _find_claude() -> str | None:
    env = os.environ.get("SWITCHYARD_TEST_CLAUDE")
    if env:
        return env
    cached = REPO_ROOT / ".ci-cache" / "node" / "node_modules" / ".bin" / "claude"
    if cached.exists():
        return str(cached)
    return shutil.which("claude")


def _has_tool_result(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    return isinstance(content, list) and any(isinstance(c, dict) and c.get("type") == "tool_result" for c in content)


class Scrubber:
    """Replaces machine- and run-specific strings everywhere in a JSON value."""

    def __init__(self, home: Path) -> None:
        self.replacements: list[tuple[str, str]] = [
            (str(home), FAKE_HOME),
            (re.sub(r"[^a-zA-Z0-9]", "-", str(home)), re.sub(r"[^a-zA-Z0-9]", "-", FAKE_HOME)),
        ]
        self.sessions: dict[str, str] = {}

    def learn(self, rec: RecordedRequest) -> None:
        """Collect the session id and device id of a request so they can be replaced."""
        sid = rec.header("x-claude-code-session-id")
        if sid and sid not in self.sessions:
            self.sessions[sid] = f"00000000-0000-4000-8000-{len(self.sessions) + 1:012d}"
        body = rec.json if isinstance(rec.json, dict) else {}
        user_id = (body.get("metadata") or {}).get("user_id")
        if isinstance(user_id, str):
            try:
                device = json.loads(user_id).get("device_id")
            except (ValueError, AttributeError):
                device = None
            if device:
                self.replacements.append((device, FAKE_DEVICE_ID))

    def text(self, s: str) -> str:
        for old, new in [*self.replacements, *self.sessions.items()]:
            s = s.replace(old, new)
        return s

    def value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {self.text(k): self.value(x) for k, x in v.items()}
        return v

    def headers(self, rec: RecordedRequest) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in rec.headers.items():
            if k.lower() in DROPPED_HEADERS:
                continue
            if k.lower() in REDACTED_HEADERS:
                v = ("Bearer <redacted>" if v.lower().startswith("bearer ") else "<redacted>")
            elif k.lower() == "host":
                v = "127.0.0.1:PORT"
            out[k] = self.text(v)
        return out


def capture(claude: str, out_dir: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="cc-capture-"))
    home = work / "home"
    project = home / "project"
    project.mkdir(parents=True)
    target = project / "hello.txt"

    def responder(rec: RecordedRequest) -> AnyReply:
        body = rec.json if isinstance(rec.json, dict) else {}
        model = str(body.get("model", ""))
        if "haiku" in model:
            return text_reply("The project directory contains hello.txt.")
        if _has_tool_result(body):
            return text_reply("Done.")
        if scenario == "write" and body.get("tools"):
            return tool_use_reply(
                "Write",
                {"file_path": str(target), "content": "Hello from Switchyard\n"},
                tool_id="toolu_capture_write_01",
            )
        if scenario == "agent" and body.get("tools"):
            return tool_use_reply(
                "Agent",
                {"description": "List project files", "prompt": "List the files in the project directory.",
                 "subagent_type": "Explore", "model": "haiku"},
                tool_id="toolu_capture_agent_01",
            )
        return text_reply("Here is the plan: create hello.txt with a greeting.")

    sessions: dict[str, list[RecordedRequest]] = {}
    results: dict[str, Any] = {}
    try:
        with AnthropicUpstream() as srv:
            srv.responder = responder
            for scenario, prompt, mode in (
                ("write", "Create hello.txt containing a greeting.", "acceptEdits"),
                ("agent", "Use an Explore agent to list the project files.", "acceptEdits"),
                ("plan", "Plan how to add a greeting file to this project.", "plan"),
            ):
                srv.clear()
                res = run_claude(claude, prompt, base_url=srv.url, api_key=DUMMY_TOKEN, cwd=project,
                                 home=home, permission_mode=mode, timeout=180)
                if res.returncode != 0:
                    raise SystemExit(f"{scenario}: {res.describe()}")
                sessions[scenario] = srv.requests
                results[scenario] = res.stdout.strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    scrub = Scrubber(home)
    for recs in sessions.values():
        for rec in recs:
            scrub.learn(rec)

    def messages(scenario: str) -> list[RecordedRequest]:
        return [r for r in sessions[scenario] if r.tag == "messages"]

    def save(name: str, rec: RecordedRequest) -> None:
        data = json.dumps(scrub.value(rec.json), ensure_ascii=False, separators=(",", ":"))
        (out_dir / name).write_text(data + "\n", encoding="utf-8")

    write_msgs = messages("write")
    save("claude_code_turn1.json", write_msgs[0])
    save("claude_code_turn2.json", next(r for r in write_msgs if _has_tool_result(r.json)))
    haiku = [r for r in messages("agent") if "haiku" in str(r.json.get("model", ""))]
    if haiku:
        save("claude_code_haiku.json", haiku[0])
    save("claude_code_plan.json", messages("plan")[0])
    headers = {
        "calls": {name: [f"{r.method} {r.path}" + ("?" + "&".join(f"{k}={v}" for k, v in r.query.items())
                                                    if r.query else "")
                         for r in recs] for name, recs in sessions.items()},
        "first_request": scrub.headers(sessions["write"][0]),
        "messages_main": scrub.headers(write_msgs[0]),
        "messages_haiku": scrub.headers(haiku[0]) if haiku else None,
        "stdout": results,
    }
    (out_dir / "claude_code_headers.json").write_text(json.dumps(headers, indent=2) + "\n", encoding="utf-8")
    return headers


SESSION_HEADERS = (
    "user-agent", "authorization", "x-api-key", "content-type", "anthropic-version", "anthropic-beta", "x-app",
    "x-claude-code-session-id", "x-claude-code-agent-id", "x-stainless-retry-count", "x-stainless-timeout",
)

# The scripted session: per CLI invocation (prompt, permission mode, --continue?) the stand-in's answers,
# one per main-model request: each tool step is answered by the next reply once its tool_result arrives.
SESSION_NOTES = "notes.txt"


def _session_invocations(project: Path) -> list[tuple[str, str, bool, list[AnyReply]]]:
    notes = str(project / SESSION_NOTES)
    return [
        (
            "Create notes.txt with a first line, read it back, then list the project directory.",
            "acceptEdits",
            False,
            [
                tool_use_reply("Write", {"file_path": notes, "content": "first line\n"},
                               text_before="I'll create the file first.", tool_id="toolu_session_write_01"),
                tool_use_reply("Read", {"file_path": notes}, tool_id="toolu_session_read_01"),
                tool_use_reply("Bash", {"command": "ls", "description": "List the project directory"},
                               tool_id="toolu_session_bash_01"),
                text_reply("Created notes.txt (one line: \"first line\") and it is the only file in the project."),
            ],
        ),
        (
            "Now append a second line to notes.txt.",
            "acceptEdits",
            True,
            [
                tool_use_reply("Edit", {"file_path": notes, "old_string": "first line\n",
                                        "new_string": "first line\nsecond line\n"},
                               tool_id="toolu_session_edit_01"),
                tool_use_reply("Bash", {"command": "cat notes.txt", "description": "Show notes.txt"},
                               tool_id="toolu_session_bash_02"),
                text_reply("notes.txt now has two lines."),
            ],
        ),
        (
            "Plan how to turn notes.txt into a README.md.",
            "plan",
            True,
            [
                tool_use_reply("Read", {"file_path": notes}, tool_id="toolu_session_read_02"),
                text_reply("Plan: 1. Create README.md with a title. 2. Move the two lines of notes.txt into it. "
                           "3. Delete notes.txt."),
            ],
        ),
    ]


def _strip_cache_control(v: Any) -> Any:
    if isinstance(v, list):
        return [_strip_cache_control(x) for x in v]
    if isinstance(v, dict):
        return {k: _strip_cache_control(x) for k, x in v.items() if k != "cache_control"}
    return v


def _as_blocks(message: Any) -> Any:
    """A message with string content as the equivalent one-text-block list (Claude Code sends a turn's
    prompt as a block list while it carries the cache_control marker, as a plain string afterwards)."""
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        return {**message, "content": [{"type": "text", "text": message["content"]}]}
    return message


def session_report(requests: list[dict[str, Any]]) -> list[str]:
    """Human-readable observations on a captured session: growth of the transcript per request,
    where ``role: "system"`` messages sit, where the cache_control markers are, and which earlier
    messages changed (ignoring cache_control; ``form`` = only string vs one-text-block content)."""
    lines: list[str] = []
    prev: list[Any] = []
    prev_body: dict[str, Any] = {}
    for i, req in enumerate(requests):
        body = req["body"]
        msgs = body["messages"]
        other = [k for k in body if k != "messages" and prev_body and body[k] != prev_body.get(k)]
        plain = _strip_cache_control(msgs)
        systems = [n for n, m in enumerate(msgs) if m.get("role") == "system"]
        changed = [
            f"{n}" + (" (form)" if _as_blocks(prev[n]) == _as_blocks(plain[n]) else "")
            for n in range(min(len(prev), len(plain)))
            if prev[n] != plain[n]
        ]
        marks = [n for n, m in enumerate(msgs) if "cache_control" in json.dumps(m)]
        size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
        lines.append(
            f"request {i}: {size} bytes, {len(msgs)} messages (+{len(msgs) - len(prev)}), system at {systems}, "
            f"cache_control on {marks}, earlier messages changed: {', '.join(changed) or 'none'}"
            + (f", other fields changed: {', '.join(other)}" if other else "")
            + ("" if len(plain) >= len(prev) else f", SHRANK from {len(prev)}")
        )
        prev, prev_body = plain, body
    return lines


def _call(rec: RecordedRequest) -> str:
    query = "&".join(f"{k}={v}" for k, v in rec.query.items())
    return f"{rec.method} {rec.path}" + (f"?{query}" if query else "")


def _session_problems(requests: list[dict[str, Any]]) -> list[str]:
    """Why a captured session would not be the one intended (a tool failed, no plan-mode notice)."""
    problems: list[str] = []
    last = requests[-1]["body"]["messages"] if requests else []
    for m in last:
        for block in m.get("content") if isinstance(m.get("content"), list) else []:
            if block.get("type") == "tool_result" and (
                block.get("is_error") or "tool_use_error" in json.dumps(block.get("content"))
            ):
                problems.append(f"tool {block.get('tool_use_id')} failed: {json.dumps(block.get('content'))[:300]}")
    if not any(
        m.get("role") == "system" and "Plan mode is active." in json.dumps(m.get("content")) for m in last
    ):
        problems.append("no mid-conversation system message with 'Plan mode is active.'")
    return problems


def capture_session(claude: str, out_dir: Path) -> dict[str, Any]:
    """A three-invocation conversation in one HOME and working directory (see ``claude_code_session.json``
    in tests/data/README.md): a first turn with Write, Read and Bash steps, a ``--continue`` turn with
    Edit and Bash, then a ``--continue --permission-mode plan`` turn.  Writes ``claude_code_session.json``
    with every main-model ``POST /v1/messages`` body in order."""
    work = Path(tempfile.mkdtemp(prefix="cc-session-"))
    home = work / "home"
    project = home / "project"
    project.mkdir(parents=True)
    invocations = _session_invocations(project)
    pending: list[AnyReply] = []

    def responder(rec: RecordedRequest) -> AnyReply:
        body = rec.json if isinstance(rec.json, dict) else {}
        if "haiku" in str(body.get("model", "")) or not body.get("tools"):
            return text_reply("OK.")
        if not pending:
            return text_reply("(the scripted session has no more answers)")
        return pending.pop(0)

    recorded: list[tuple[int, RecordedRequest]] = []
    runs: list[dict[str, Any]] = []
    try:
        with AnthropicUpstream() as srv:
            srv.responder = responder
            for n, (prompt, mode, cont, replies) in enumerate(invocations, 1):
                srv.clear()
                pending[:] = replies
                extra = ["--allowedTools", "Bash(ls:*)", "Bash(cat:*)", "Read", "Write", "Edit"]
                if cont:
                    extra.insert(0, "--continue")
                res = run_claude(claude, prompt, base_url=srv.url, api_key=DUMMY_TOKEN, cwd=project,
                                 home=home, permission_mode=mode, extra_args=extra, timeout=180)
                if res.returncode != 0:
                    raise SystemExit(f"session invocation {n}: {res.describe()}")
                if pending:
                    raise SystemExit(f"session invocation {n}: {len(pending)} scripted answers unused\n"
                                     + res.describe())
                runs.append({"args": ["claude", *res.args[1:]], "calls": [_call(r) for r in srv.requests],
                             "stdout": res.stdout.strip()})
                recorded += [(n, r) for r in srv.requests]
        final_notes = (project / SESSION_NOTES).read_text(encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    scrub = Scrubber(home)
    for _, rec in recorded:
        scrub.learn(rec)
    main_reqs: list[dict[str, Any]] = []
    for n, rec in recorded:
        body = rec.json if isinstance(rec.json, dict) else {}
        if rec.tag != "messages" or "haiku" in str(body.get("model", "")):
            continue
        runs[n - 1].setdefault("requests", []).append(len(main_reqs))
        headers = {k: v for k, v in scrub.headers(rec).items() if k.lower() in SESSION_HEADERS}
        main_reqs.append({"body": scrub.value(body), "headers": headers})
    for run in runs:
        run["args"] = scrub.value(run["args"])
        run["stdout"] = scrub.text(run["stdout"])
    problems = _session_problems(main_reqs)
    if problems:
        raise SystemExit("session capture looks wrong:\n" + "\n".join(problems))
    version = re.search(r"claude-cli/([0-9.]+)", main_reqs[0]["headers"].get("User-Agent", ""))
    data = {
        "cli_version": version.group(1) if version else None,
        "note": (
            "One Claude Code conversation over three headless invocations in the same HOME and cwd "
            "(see tests/data/README.md): requests are every main-model POST /v1/messages body in order "
            "(HEAD / and haiku requests left out); 'invocations' maps each CLI run to its request indices. "
            "Tool answers were scripted by a loopback stand-in; the CLI really ran the tools."
        ),
        "invocations": runs,
        "requests": main_reqs,
    }
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    (out_dir / "claude_code_session.json").write_text(text + "\n", encoding="utf-8")
    return {"invocations": runs, "report": session_report(main_reqs), "notes.txt": final_notes,
            "bytes": len(text.encode()) + 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claude", default=_find_claude(), help="path to the claude executable")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "data")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--session", action="store_true", help="only write claude_code_session.json")
    what.add_argument("--all", action="store_true", help="write the single-turn captures and the session")
    args = parser.parse_args(argv)
    if not args.claude:
        print("claude not found: pass --claude or set SWITCHYARD_TEST_CLAUDE", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.session:
        summary = capture(args.claude, args.out)
        print(json.dumps(summary["calls"], indent=2))
    if args.session or args.all:
        session = capture_session(args.claude, args.out)
        print(json.dumps({k: session[k] for k in ("invocations", "bytes", "notes.txt")}, indent=2))
        print("\n".join(session["report"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
