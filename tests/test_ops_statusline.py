"""``switchyard statusline`` and the launcher that offers it to Claude Code through --settings."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from installer import render
from proxy.cli import cli
from proxy.decision_log import DecisionRecord, utc_iso
from proxy.ops import statusline as sl
from tests.test_installer_units import paths, render_input

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def rec(hours_ago: float, route: str, session: str | None = "s1", **kw: object) -> str:
    r = DecisionRecord(
        ts=utc_iso((NOW - dt.timedelta(hours=hours_ago)).timestamp()),
        id="req_x",
        session=session,
        route=route,
        model="qwen-local" if route == "local" else "claude-sonnet",
        reason=str(kw.pop("reason", "classified")),
        status=200,
        **kw,  # type: ignore[arg-type]
    )
    return r.to_json()


def write(path: Path, lines: list[str], tail: str = "") -> Path:
    path.write_text("\n".join(lines) + "\n" + tail, encoding="utf-8")
    return path


def test_latest_answer_of_the_session_and_todays_share(tmp_path: Path) -> None:
    log = write(
        tmp_path / "d.jsonl",
        [
            rec(30, "local"),  # yesterday: not in today's share
            rec(3, "local", session="s2"),
            rec(2, "cloud", reason="explicit"),
            rec(1, "local", session="s2"),
            rec(0.5, "cloud", fallback="connect-error"),  # s1's latest
            rec(0.2, "local", session="s2"),
            rec(0.1, "cloud", session="s3", reason="bad-request"),  # refused: not routed
        ],
        tail='{"ts":"2026-11-21T11:59:59.000Z","id":"cut-by-a-cra',  # a crash mid-write
    )
    stdin = json.dumps({"session_id": "s1", "cwd": "/x", "model": {"id": "claude-opus", "display_name": "Opus"}})
    line = sl.line_for(log, stdin, NOW)
    assert line == "switchyard: cloud claude-sonnet (fallback: connect-error) · today 60% local"
    other = sl.line_for(log, json.dumps({"session_id": "s2"}), NOW)
    assert other.startswith("switchyard: local qwen-local (classified)")
    assert sl.line_for(log, "not json", NOW) == "switchyard: no answer yet · today 60% local"
    assert sl.line_for(tmp_path / "none.jsonl", "{}", NOW) == "switchyard: no answer yet"


def test_only_the_end_of_a_big_log_is_read_and_a_partial_day_is_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [rec(1 - i / 100000, "local" if i % 4 else "cloud", session=f"s{i % 7}") for i in range(4000)]
    log = write(tmp_path / "d.jsonl", lines)
    with monkeypatch.context() as mp:
        mp.setattr(sl, "SCAN_BYTES", 100_000)  # a window far smaller than the file
        g = sl.glance(log, "s3", "2026-11-21")
        assert g.latest is not None and g.latest["session"] == "s3"
        assert 0 < g.routed < 400 and not g.complete_day  # only the window's lines, so "~"
        assert "today ~" in sl.render(g)
    g = sl.glance(log, "s3", "2026-11-21")
    assert (g.routed, g.local, g.complete_day) == (4000, 3000, True)


def test_cli_statusline_never_fails(tmp_path: Path) -> None:
    log = write(tmp_path / "d.jsonl", [rec(0, "local")])
    res = CliRunner().invoke(cli, ["statusline", "--log", str(log)], input='{"session_id":"s1"}')
    assert res.exit_code == 0 and res.output.startswith("switchyard: local qwen-local (classified)")
    res = CliRunner().invoke(cli, ["statusline", "--config", str(tmp_path / "missing.toml")], input="{}")
    assert res.exit_code == 0 and "missing.toml does not exist" in res.output and res.output.count("\n") == 1


def _launcher(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    launcher = tmp_path / "claude-routed"
    launcher.write_bytes(render.render_launcher(render_input()))
    launcher.chmod(0o755)
    env_file = paths().env_file
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("SWITCHYARD_ROUTER_KEY=rk-1\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "claude"  # prints the arguments it was given, one per line
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(home)}
    return launcher, home, env


def _run(launcher: Path, env: dict[str, str], *args: str, cwd: Path | None = None) -> list[str]:
    out = subprocess.run([str(launcher), *args], env=env, capture_output=True, text=True, cwd=cwd, check=True)
    return out.stdout.splitlines()


def test_the_launcher_offers_the_status_line_only_where_there_is_none(tmp_path: Path) -> None:
    launcher, home, env = _launcher(tmp_path)
    work = tmp_path / "work"
    (work / ".claude").mkdir(parents=True)
    args = _run(launcher, env, "-p", "hi", cwd=work)
    assert args[0] == "--settings" and args[2:] == ["-p", "hi"]
    command = json.loads(args[1])["statusLine"]["command"]
    assert command.endswith(f"-m proxy.ops.statusline --config {paths().config_file}")
    # The user's own status line (user settings, project settings) is never replaced.
    (home / ".claude" / "settings.json").write_text('{"statusLine": {"type": "command", "command": "mine"}}')
    assert _run(launcher, env, "-p", "hi", cwd=work) == ["-p", "hi"]
    (home / ".claude" / "settings.json").unlink()
    (work / ".claude" / "settings.local.json").write_text('{"statusLine": {"type": "command", "command": "x"}}')
    assert _run(launcher, env, "-p", "hi", cwd=work) == ["-p", "hi"]
    (work / ".claude" / "settings.local.json").unlink()
    # Nor when the user passes --settings, or turns it off.
    assert _run(launcher, env, "--settings", "{}", cwd=work) == ["--settings", "{}"]
    assert _run(launcher, {**env, "SWITCHYARD_STATUSLINE": "0"}, "-p", "x", cwd=work) == ["-p", "x"]
    assert os.listdir(home / ".claude") == []  # nothing written into the user's settings


def test_the_module_entry_the_launcher_uses(tmp_path: Path) -> None:
    from tests.proxy_harness import make_config

    cfg = make_config(tmp_path)
    write(Path(cfg.log.decisions), [rec(0, "local")])
    config = tmp_path / "config.toml"
    config.write_text(f'[local]\nmodel = "m"\n[cloud]\nsimple_model = "a"\ncomplex_model = "b"\n'
                      f'[log]\ndecisions = "{cfg.log.decisions}"\n')  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = [sys.executable, "-m", "proxy.ops.statusline", "--config", str(config)]
    out = subprocess.run(argv, input='{"session_id":"s1"}', capture_output=True, text=True, env=env, check=True)
    assert out.stdout == "switchyard: local qwen-local (classified)\n"  # (that record is not from today)
    bad = subprocess.run([*argv[:-1], str(tmp_path / "nope.toml")], input="{}", capture_output=True, text=True,
                         env=env, check=False)  # fmt: skip
    assert bad.returncode == 0 and "nope.toml does not exist" in bad.stdout
