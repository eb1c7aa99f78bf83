"""Installer pieces that need no live service: journal, rollback, answers, rendering, local advice."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from installer import answers as answers_mod
from installer import render
from installer.cli import TAKES_NOTHING, Declined, Installer, Out
from installer.journal import Journal, load, sha256_bytes
from installer.questions import local_findings
from installer.rollback import rollback
from proxy.capabilities import UNKNOWN, LocalCapabilities
from proxy.config import load_config
from proxy.host.envfile import read_env_file, render_env
from proxy.host.paths import Paths
from tests.test_installer_support import REPO, snapshot


def paths() -> Paths:
    return Paths.from_env()


# ---- journal + rollback ------------------------------------------------------------------------


def test_journal_records_and_rollback_restores_tree(tmp_path: Path) -> None:
    p = paths()
    user_file = tmp_path / "litellm.yaml"
    user_file.write_bytes(b"model_list: []\n")
    before = snapshot(p.home, tmp_path / "litellm.yaml")
    j = Journal(p.journal_file, p.backups_dir)
    j.write_file(p.config_file, b"x = 1\n", 0o644, step="render", role="config")
    j.patch_user_file(user_file, b"model_list: []\nlitellm_settings: {drop_params: true}\n",
                      [{"key": "litellm_settings", "action": "section_added"}], step="litellm_yaml")
    state = load(p.journal_file)
    assert state is not None
    assert state["files_created"][str(p.config_file)]["sha256"] == sha256_bytes(b"x = 1\n")
    rec = state["files_modified"][str(user_file)]
    assert Path(rec["backup"]).read_bytes() == b"model_list: []\n"
    assert rec["sha256_before"] == sha256_bytes(b"model_list: []\n")
    assert rec["sha256_after"] == sha256_bytes(user_file.read_bytes())
    assert state["runs"][-1]["status"] == "running"
    assert rollback(j) == []
    assert snapshot(p.home, tmp_path / "litellm.yaml") == before


def test_rerun_keeps_original_backup_and_notices_user_edits(tmp_path: Path) -> None:
    p = paths()
    user_file = tmp_path / "litellm.yaml"
    user_file.write_bytes(b"a: 1\n")
    j = Journal(p.journal_file, p.backups_dir)
    j.patch_user_file(user_file, b"a: 1\nb: 2\n", [{"key": "b"}], step="litellm_yaml")
    j.finish("complete")
    first = load(p.journal_file)["files_modified"][str(user_file)]  # type: ignore[index]
    user_file.write_bytes(b"a: 1\nb: 2\nmine: 3\n")  # the user edits between runs
    j2 = Journal(p.journal_file, p.backups_dir)
    j2.patch_user_file(user_file, b"a: 1\nb: 2\nmine: 3\nc: 4\n", [{"key": "c"}], step="litellm_yaml")
    j2.finish("complete")
    rec = load(p.journal_file)["files_modified"][str(user_file)]  # type: ignore[index]
    assert rec["backup"] == first["backup"]
    assert Path(rec["backup"]).read_bytes() == b"a: 1\n"
    assert rec["restore_exact"] is False
    assert [c["key"] for c in rec["yaml_changes"]] == ["b", "c"]
    # Only the original backup is left: the per-run safety copy of the second run is gone.
    assert sorted(x.name for x in p.backups_dir.rglob("*") if x.is_file()) == ["litellm.yaml.prev"]


def test_failed_rerun_rollback_restores_previous_journal(tmp_path: Path) -> None:
    p = paths()
    j = Journal(p.journal_file, p.backups_dir)
    j.write_file(p.config_file, b"v1\n", 0o644, step="render", role="config")
    j.finish("complete")
    before = snapshot(p.home)
    j2 = Journal(p.journal_file, p.backups_dir)
    j2.write_file(p.config_file, b"v2\n", 0o644, step="render", role="config")
    j2.write_file(p.env_file, b"K=v\n", 0o600, step="secrets", role="env")
    assert p.config_file.read_bytes() == b"v2\n"
    assert rollback(j2) == []
    assert snapshot(p.home) == before


def test_journal_is_valid_json_after_every_step(tmp_path: Path) -> None:
    p = paths()
    j = Journal(p.journal_file, p.backups_dir)
    for i in range(3):
        j.write_file(p.config_dir / f"f{i}", b"x", 0o644, step="render", role=f"r{i}")
        state = json.loads(p.journal_file.read_text())
        assert len(state["files_created"]) == i + 1
    assert stat.S_IMODE(p.journal_file.stat().st_mode) == 0o600



def test_patching_a_symlinked_config_writes_through_the_link(tmp_path: Path) -> None:
    """A LiteLLM config kept in a dotfiles checkout and linked into place stays a link to that file."""
    p = paths()
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "litellm.yaml"
    target.write_bytes(b"model_list: []\n")
    target.chmod(0o640)
    link_dir = tmp_path / "litellm"
    link_dir.mkdir()
    link = link_dir / "config.yaml"
    link.symlink_to(Path("..") / "dotfiles" / "litellm.yaml")  # relative, as `ln -s` users write them
    before = snapshot(link, target, link_dir, dotfiles)
    j = Journal(p.journal_file, p.backups_dir)
    patched = b"model_list: []\nlitellm_settings: {drop_params: true}\n"
    j.patch_user_file(link, patched, [{"key": "litellm_settings", "action": "section_added"}], step="litellm_yaml")
    assert link.is_symlink() and os.readlink(link) == str(Path("..") / "dotfiles" / "litellm.yaml")
    assert target.read_bytes() == patched and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(x.name for x in dotfiles.iterdir()) == ["litellm.yaml"]  # no temp file left beside it
    assert sorted(x.name for x in link_dir.iterdir()) == ["config.yaml"]
    state = load(p.journal_file)
    assert state is not None and list(state["files_modified"]) == [str(link)]  # the path as the user knows it
    rec = state["files_modified"][str(link)]
    assert Path(rec["backup"]).read_bytes() == b"model_list: []\n" and not Path(rec["backup"]).is_symlink()
    assert rec["sha256_after"] == sha256_bytes(patched)
    # Rolling back goes through the link too.
    assert rollback(j) == []
    assert snapshot(link, target, link_dir, dotfiles) == before


# ---- answers ------------------------------------------------------------------------------------


def test_layering_flags_beat_file_beat_previous_beat_defaults() -> None:
    ans, problems = answers_mod.layer(
        {"port": 4000}, {"port": "5000", "launcher_name": "from-file"}, {"launcher_name": "prev", "local_model": "m"}
    )
    assert problems == []
    assert ans.port == 4000 and ans.origin["port"] == "flag"
    assert ans.launcher_name == "from-file"
    assert ans.local_model == "m" and ans.origin["local_model"] == "previous run"
    assert ans.long_context_threshold == 60000 and ans.origin["long_context_threshold"] == "default"


def test_all_problems_reported_at_once() -> None:
    _ans, problems = answers_mod.layer({}, {"port": "abc", "classify_timeout_s": "soon"}, {})
    assert len(problems) == 2
    ans2, _ = answers_mod.layer({}, {"local_url": "localhost:1234", "launcher_name": "a/b"}, {})
    static = answers_mod.static_problems(ans2, require_all=True)
    text = "\n".join(static)
    for needle in ("local_url must be", "launcher_name must be", "local_model is missing",
                   "cloud_simple_model is missing", "litellm_restart is missing"):
        assert needle in text
    # Not required: without it, the config of the LiteLLM listening at litellm_url is used.
    assert "litellm_config is missing" not in text


def test_unknown_key_in_answers_file(tmp_path: Path) -> None:
    f = tmp_path / "a.yml"
    f.write_text("local_url: http://x\nlocal_modle: typo\n")
    with pytest.raises(answers_mod.AnswersError, match="local_modle"):
        answers_mod.read_answers_file(f)


def test_saved_answers_roundtrip_without_secrets(tmp_path: Path) -> None:
    ans, _ = answers_mod.layer({"local_url": "http://127.0.0.1:1234", "litellm_restart": "docker restart l"}, {}, {})
    data = answers_mod.dump_answers(ans)
    f = tmp_path / "answers.yml"
    f.write_bytes(data)
    back = answers_mod.read_answers_file(f)
    assert back["litellm_restart"] == "docker restart l"
    assert "key" not in " ".join(k for k in back if k != "litellm_key_env")


# ---- rendering ----------------------------------------------------------------------------------


def render_input(port: int = 3456) -> render.RenderInput:
    return render.RenderInput(
        paths=paths(), local_base_url="http://127.0.0.1:1234/v1", local_model='qwen "3" \\ local',
        litellm_url="http://127.0.0.1:4000", cloud_simple_model="cloud-simple", cloud_complex_model="cloud-complex",
        port=port, launcher_name="claude-routed", long_context_threshold=60000, classify_timeout_s=15,
        classify_max_tokens=8192, router_key_env="SWITCHYARD_ROUTER_KEY", litellm_key_env="SWITCHYARD_LITELLM_KEY",
    )


def test_config_renders_and_loads_with_proxy_loader(tmp_path: Path) -> None:
    data = render.render_config(render_input())
    f = tmp_path / "c.toml"
    f.write_bytes(data)
    cfg = load_config(f)
    p = paths()
    assert cfg.local.model == 'qwen "3" \\ local'
    assert cfg.listen.pidfile == str(p.pidfile)
    assert cfg.log.decisions == str(p.decisions_log)
    assert cfg.log.server == str(p.proxy_log)  # the proxy rotates the log systemd appends to
    assert cfg.routing.classify_timeout_s == 15.0
    assert cfg.cloud.key_env == "SWITCHYARD_LITELLM_KEY"
    assert cfg.local.context_tokens == 0  # read it from the server


def test_a_local_context_answer_reaches_the_config(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_bytes(render.render_config(dataclasses.replace(render_input(), local_context_tokens=32768)))
    assert load_config(f).local.context_tokens == 32768
    bad = answers_mod.Answers(local_context_tokens=-1)
    assert answers_mod.static_problems(bad, require_all=False) == [
        "local_context_tokens must be 0 (ask the server) or more, got -1"
    ]


def test_strict_undefined() -> None:
    env = render.environment()
    with pytest.raises(Exception, match="undefined"):
        env.from_string("{{ nope }}").render()


def test_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    p = paths()
    # ExecStart must name an existing executable for verify to pass.
    p.venv_python.parent.mkdir(parents=True)
    p.venv_python.symlink_to(sys.executable)
    unit = render.render_unit(render_input())
    text = unit.decode()
    for line in ("Type=exec", f"ExecStartPre=-/bin/rm -f {p.pidfile}",
                 f"ExecStart={p.venv_python} -m proxy serve --config {p.config_file}",
                 f"EnvironmentFile={p.env_file}", "Restart=on-failure", "WantedBy=default.target",
                 f"StandardOutput=append:{p.proxy_log}"):
        assert line in text.splitlines()
    assert render.verify_unit(unit) is None
    bad = unit.replace(b"Restart=on-failure", b"Restart=on-failure\nBogusKey=1")
    assert render.verify_unit(bad) is not None


def test_launcher_points_claude_at_switchyard(tmp_path: Path) -> None:
    """Run the rendered launcher with a fake `claude` on PATH that prints what it got."""
    p = paths()
    p.env_file.parent.mkdir(parents=True)
    # A router key holding what sh, systemd and a naive parser would each read differently.
    keys = {"SWITCHYARD_ROUTER_KEY": 'rk $1 "q" \\n', "SWITCHYARD_LITELLM_KEY": 'l$`"'}
    p.env_file.write_bytes(render_env(keys))
    launcher = tmp_path / "claude-routed"
    launcher.write_bytes(render.render_launcher(render_input(4567)))
    launcher.chmod(0o755)
    fake = tmp_path / "bin"
    fake.mkdir()
    script = ('#!/bin/sh\nprintf "%s|%s|%s|%s\\n" '
              '"$ANTHROPIC_BASE_URL" "$ANTHROPIC_AUTH_TOKEN" "${ANTHROPIC_API_KEY:-}" "$*"\n')
    (fake / "claude").write_text(script)
    (fake / "claude").chmod(0o755)
    import subprocess

    # (The status line it offers is tested in tests/test_ops_statusline.py.)
    env = {**os.environ, "PATH": f"{fake}:/usr/bin:/bin", "ANTHROPIC_API_KEY": "real-key", "SWITCHYARD_STATUSLINE": "0"}
    out = subprocess.run([str(launcher), "-p", "hi there"], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == 'http://127.0.0.1:4567|rk $1 "q" \\n||-p hi there'
    assert read_env_file(p.env_file) == keys


# ---- the test helpers themselves -----------------------------------------------------------------


def test_snapshot_sees_a_file_root_change(tmp_path: Path) -> None:
    """Tests pass single files (the LiteLLM config) as snapshot roots: a change to one must show."""
    f = tmp_path / "litellm.yaml"
    f.write_bytes(b"model_list: []\n")
    before = snapshot(f)
    assert before == {str(f): ("file", stat.S_IMODE(f.stat().st_mode), b"model_list: []\n")}
    f.write_bytes(b"model_list: []\n# edited\n")
    assert snapshot(f) != before
    f.write_bytes(b"model_list: []\n")
    assert snapshot(f) == before
    f.chmod(0o600)
    assert snapshot(f) != before
    # A symlink root is recorded as a link (a replaced link is a change), not followed.
    link = tmp_path / "link.yaml"
    link.symlink_to(f)
    assert snapshot(link) == {str(link): ("link", str(f))}
    assert snapshot(tmp_path / "missing") == {}


INSTALLED_CHECK = """
import sys
from pathlib import Path
from installer import deploy
from installer.journal import Journal
target, work = Path(sys.argv[1]), Path(sys.argv[2])
assert deploy.checkout_root() is None
assert deploy.package_dir("proxy") == target / "proxy", deploy.package_dir("proxy")
assert deploy.uninstall_script_source() == (target / "uninstaller" / "bootstrap.py").read_bytes()
reqs = deploy.requirements()
assert any(r.startswith("aiohttp") for r in reqs) and not any("pytest" in r for r in reqs), reqs
dp = deploy.plan(work / "venv", "inherit")
deploy.deploy(dp, Journal(work / "journal.json", work / "backups"))
print("deployed", (work / "venv" / "bin" / "python").exists())
"""


def test_installer_runs_from_a_pip_installed_distribution(tmp_path: Path) -> None:
    """``pip install .`` (not editable), then ``python -m installer``: deploys from the installed packages."""
    import subprocess
    import sys

    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                            "--target", str(target), str(REPO)], capture_output=True, text=True, timeout=600,
                           check=False)  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target)}
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([sys.executable, "-c", INSTALLED_CHECK, str(target), str(work)], capture_output=True,
                       text=True, timeout=300, check=False, env=env, cwd="/")
    assert r.returncode == 0 and "deployed True" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    help_ = subprocess.run([sys.executable, "-m", "installer", "--help"], capture_output=True, text=True,
                           timeout=120, check=False, env=env, cwd="/")
    assert help_.returncode == 0 and "--venv-mode" in help_.stdout, help_.stderr


# ---- what the local server can take --------------------------------------------------------------


def installer(yes: bool) -> Installer:
    return Installer(paths=paths(), flags={}, answers_file=None, yes=yes, dry_run=False, venv_mode="inherit",
                     wheelhouse=None, classifier_check=None, out=Out(False), interactive=not yes)  # fmt: skip


OLLAMA_4096 = LocalCapabilities(kind="ollama", version="0.14.2", context_per_request=4096, tools=True,
                                truncates_silently=True, notes=("Ollama's default context of 4,096 tokens assumed",))


def test_local_findings_are_shown_with_their_fixes(capsys: pytest.CaptureFixture[str]) -> None:
    installer(yes=True).show_local(OLLAMA_4096)
    out = capsys.readouterr().out
    assert out.startswith("  Local server: Ollama 0.14.2, 4,096 tokens per request, takes tools\n")
    assert "      Ollama's default context of 4,096 tokens assumed\n" in out  # how it was found
    assert ("  ! local context fits Claude Code: Ollama: 4,096 tokens per request; Claude Code's requests need "
            "about 19,000 plus 2,048 for the answer, so every one goes to the cloud\n") in out
    # The context's fix answers the truncation too: said once.
    assert out.count("      fix: set OLLAMA_CONTEXT_LENGTH=65536 for the Ollama server") == 1
    assert "! local server does not cut prompts silently" in out
    assert "local chat template takes tools" not in out  # OK findings are in the summary line only


def test_a_server_that_says_nothing_is_an_unknown_line_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    inst = installer(yes=False)
    inst.show_local(UNKNOWN)
    inst.accept_local(UNKNOWN)  # nothing to ask about
    out = capsys.readouterr().out
    assert "  Local server: an unknown server, context size unknown\n" in out
    assert "  ? local server capabilities: the local server did not answer its discovery endpoints\n" in out
    assert "      fix: check that it is running; Switchyard tries it and falls back to the cloud\n" in out
    assert local_findings(LocalCapabilities(kind="openai"))[0].state == "unknown"


def test_a_server_that_takes_nothing_is_asked_about(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, bool]] = []
    answer = [False]

    def confirm(question: str, default: bool = True) -> bool:
        asked.append((question, default))
        return answer[0]

    monkeypatch.setattr("installer.prompts.confirm", confirm)
    with pytest.raises(Declined, match="fix the local server"):
        installer(yes=False).accept_local(OLLAMA_4096)
    assert asked == [(f"Continue anyway? {TAKES_NOTHING}", False)]  # "no" is the default
    answer[0] = True
    installer(yes=False).accept_local(OLLAMA_4096)
    installer(yes=True).accept_local(OLLAMA_4096)  # --yes never asks
    fits = LocalCapabilities(kind="ollama", context_per_request=65536, tools=True, truncates_silently=True)
    installer(yes=False).accept_local(fits)
    assert len(asked) == 2
    assert TAKES_NOTHING == "Every Claude Code main request will go to the cloud until you fix the local server"
