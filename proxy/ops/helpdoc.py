"""The ``--help`` of every ``switchyard`` command as Markdown, for docs/help.md (kept in sync by a test).

python -m proxy.ops.helpdoc --write    # regenerate docs/help.md after changing a command
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "help.md"
WIDTH = 100


def _help(command: click.Command, parent: click.Context | None, name: str) -> str:
    ctx = click.Context(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    return command.get_help(ctx)


def render() -> str:
    from proxy.cli import cli

    settings = {**cli.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    root = click.Context(cli, info_name="switchyard", **settings)
    parts = [
        "# `switchyard` command reference",
        "",
        "Generated from the commands' own `--help` by `python -m proxy.ops.helpdoc --write`;",
        "`tests/test_ops_help.py` fails when this file and the commands disagree.",
        "`python -m proxy ...` is the same command.",
        "",
        "```text",
        "$ switchyard --help",
        cli.get_help(root),
        "```",
    ]
    for name in sorted(cli.list_commands(root)):
        command = cli.get_command(root, name)
        assert command is not None
        parts += ["", f"## `switchyard {name}`", "", "```text", f"$ switchyard {name} --help"]
        parts += [_help(command, root, name), "```"]
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--write" in argv:
        DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
        DOC_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {DOC_PATH}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
