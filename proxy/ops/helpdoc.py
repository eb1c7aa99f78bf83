"""The ``--help`` of every ``switchyard`` command as Markdown, in the README (kept in sync by a test).

python -m proxy.ops.helpdoc --write    # regenerate the README's command reference after changing a command

The reference sits between two marker comments in README.md; nothing else in the README is touched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

DOC_PATH = Path(__file__).resolve().parents[2] / "README.md"
START = "<!-- switchyard-help:start -->"
END = "<!-- switchyard-help:end -->"
WIDTH = 100


def _help(command: click.Command, parent: click.Context | None, name: str) -> str:
    ctx = click.Context(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    return command.get_help(ctx)


def render() -> str:
    from proxy.cli import cli

    settings = {**cli.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    root = click.Context(cli, info_name="switchyard", **settings)
    parts = [
        "Generated from the commands' own `--help` by `python -m proxy.ops.helpdoc --write`;",
        "`tests/test_ops_help.py` fails when this section and the commands disagree.",
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
        parts += ["", f"### `switchyard {name}`", "", "```text", f"$ switchyard {name} --help"]
        parts += [_help(command, root, name), "```"]
    return "\n".join(parts) + "\n"


def current(readme: str) -> str:
    """The command reference as it stands in the README ('' when the markers are missing)."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        return ""
    return readme[start + len(START) : end].strip("\n") + "\n"


def updated(readme: str, reference: str) -> str:
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{DOC_PATH}: markers {START} / {END} not found")
    return readme[: start + len(START)] + "\n" + reference + readme[end:]


def main(argv: list[str]) -> int:
    text = render()
    if "--write" in argv:
        readme = DOC_PATH.read_text(encoding="utf-8")
        DOC_PATH.write_text(updated(readme, text), encoding="utf-8")
        print(f"updated the command reference in {DOC_PATH}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
