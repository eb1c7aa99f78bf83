"""The README shows each command's real --help."""

from __future__ import annotations

from proxy.cli import cli
from proxy.ops import helpdoc
from tests.test_ops_support import run_cli


def test_help_doc_is_in_sync() -> None:
    assert helpdoc.current(helpdoc.DOC_PATH.read_text(encoding="utf-8")) == helpdoc.render(), (
        "the README's command reference is out of date: run python -m proxy.ops.helpdoc --write"
    )


def test_every_command_is_documented() -> None:
    text = helpdoc.DOC_PATH.read_text(encoding="utf-8")
    for name in ("serve", "status", "watch", "stats", "classify", "eval", "doctor", "start", "stop", "restart", "env"):
        assert name in cli.commands
        assert f"### `switchyard {name}`" in text


def test_python_dash_m_proxy_is_the_same_command() -> None:
    res = run_cli("stats", "--help")
    assert res.returncode == 0
    assert "--since WHEN" in res.stdout


def test_unknown_command_is_a_clear_error() -> None:
    res = run_cli("stauts")
    assert res.returncode == 2
    assert "No such command 'stauts'" in res.stderr
