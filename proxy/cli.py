"""The `switchyard` command (also `python -m proxy`)."""

from __future__ import annotations

import sys

import click

from proxy import __version__
from proxy.config import ConfigError, load_config
from proxy.ops.commands import COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="switchyard")
def cli() -> None:
    """Switchyard: route Claude Code between a local model and a cloud model, per request."""


@cli.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Router config file (TOML), as rendered by the installer.",
)
def serve(config_path: str) -> None:
    """Run the proxy in the foreground (what the systemd unit runs)."""
    from proxy.server import serve as run_server

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        click.echo(f"switchyard: {exc}", err=True)
        sys.exit(2)
    sys.exit(run_server(cfg))


# The ops toolkit (status, watch, stats, classify, eval, doctor, start, stop, restart, env): proxy/ops/.
for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli()
