"""Regenerate the captured Claude Code traffic in ``tests/data/`` from the real CLI.

    python -m tests.capture_claude_code [--claude PATH] [--out tests/data]

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claude", default=_find_claude(), help="path to the claude executable")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "data")
    args = parser.parse_args(argv)
    if not args.claude:
        print("claude not found: pass --claude or set SWITCHYARD_TEST_CLAUDE", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    summary = capture(args.claude, args.out)
    print(json.dumps(summary["calls"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
