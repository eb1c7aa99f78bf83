"""The click commands of the ops toolkit: thin wrappers that parse options, call the module that does
the work, print, and choose the exit status (non-zero whenever a check fails)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from proxy.ops import context
from proxy.ops.checks import Check, exit_code, render
from proxy.ops.context import config_option

if TYPE_CHECKING:
    from proxy.ops.prices import Cost
    from proxy.ops.stats import Stats


def _ascii_only() -> bool:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return encoding != "utf8"


def _print_checks(checks: Iterable[Check]) -> int:
    items = list(checks)
    ascii_only = _ascii_only()
    for check in items:
        click.echo(render(check, ascii_only))
    bad = sum(1 for c in items if c.failed)
    click.echo(f"\n{bad} problem(s) found" if bad else "\nall good")
    return exit_code(items)


def _log_path(log: str | None, config_path: str | None) -> Path:
    if log:
        return Path(log)
    cfg = context.load(config_path)
    path = context.decisions_path(cfg)
    if path is None:
        raise click.ClickException(
            f"no decision log is configured in {cfg.source}: set [log] decisions = "
            '"/absolute/path/decisions.jsonl" and restart (or pass --log FILE)'
        )
    return path


# ---------------------------------------------------------------- status


@click.command()
@config_option
def status(config_path: str | None) -> None:
    """Check the running service: one line per check, with the fix when one fails.

    Checks the service state (systemd, or the pidfile where there is no user manager), that
    its main PID is stable, that it holds its port, /health with the router key, the local
    model server with the configured model, what the local server can take (as the proxy
    reports it, else probed: context per request, tools, whether Claude Code's requests fit),
    LiteLLM, and lingering.  Exits 1 when any check fails.
    """
    from proxy.ops.status import run_status

    cfg = context.load(config_path)
    sys.exit(_print_checks(run_status(cfg, cfg.router_key())))


# ---------------------------------------------------------------- watch


@click.command()
@config_option
@click.option("--route", "routes", multiple=True, type=click.Choice(["local", "cloud"]), help="Only this route.")
@click.option(
    "--reason", "reasons", multiple=True, metavar="REASON", help="Only this reason (classify matches classify-*)."
)
@click.option("--session", "sessions", multiple=True, metavar="ID", help="Only sessions whose id starts with ID.")
@click.option("--json", "raw_json", is_flag=True, help="Print the raw JSON records.")
@click.option("-n", "--lines", default=10, show_default=True, help="Show this many past records first.")
@click.option("--no-follow", is_flag=True, help="Print the past records and exit.")
@click.option("--log", type=click.Path(dir_okay=False), help="Read this log instead of the configured one.")
def watch(
    config_path: str | None,
    routes: tuple[str, ...],
    reasons: tuple[str, ...],
    sessions: tuple[str, ...],
    raw_json: bool,
    lines: int,
    no_follow: bool,
    log: str | None,
) -> None:
    """Follow the decision log as readable lines (Ctrl-C to stop).

    Each line: local time, route, reason (and verdict), model, time to first token, total
    time, classify time, HTTP status when not 200, fallback, tokens, session, detail.
    """
    from proxy.ops import watch as w
    from proxy.ops.stats import log_files

    path = _log_path(log, config_path)
    filters = w.Filters(routes, reasons, sessions)
    if no_follow and not log_files(path):
        raise click.ClickException(f"no decision log at {path} yet: no request has been answered")
    start = w.position(path)
    past: list[str] = []
    if lines > 0:
        # The last N *records* that pass the filters: look further back than N lines for them.
        filtering = bool(filters.routes or filters.reasons or filters.sessions)
        candidates = w.last_lines(path, max(lines * 50, 1000) if filtering else lines + 100)
        past = [ln for ln in candidates if (rec := w.parse_line(ln)) is not None and filters.matches(rec)][-lines:]
    for out in w.render(past, filters, raw_json):
        click.echo(out)
    if no_follow:
        return
    try:
        for line in w.follow(path, start=start):
            for out in w.render([line], filters, raw_json):
                click.echo(out)
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------- stats


@click.command()
@config_option
@click.option("--since", metavar="WHEN", help="Only requests since WHEN: 30m, 24h, 7d, or a date/time (UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--no-chart", is_flag=True, help="Leave out the chart of the local share over time.")
@click.option("--width", default=60, show_default=True, help="Columns of the chart.")
@click.option("--log", type=click.Path(dir_okay=False), help="Read this log instead of the configured one.")
@click.option("--by", "by", type=click.Choice(["project"]), help="Split every figure by project.")
@click.option("--no-cost", is_flag=True, help="Do not ask LiteLLM for prices.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="Also write a self-contained page here.")
def stats(
    config_path: str | None,
    since: str | None,
    as_json: bool,
    no_chart: bool,
    width: int,
    log: str | None,
    by: str | None,
    no_cost: bool,
    html_file: str | None,
) -> None:
    """Summarize the decision log (and its rotated files).

    Requests, local share, counts by reason, fallbacks by cause, classifier failures by mode,
    classify latency p50/p95, time to first token and total latency by route, cloud tokens
    avoided by answering locally, routing misses (overall, per day, per project), and a chart
    of the local share over time.  A routing miss is a local turn that fell back or broke,
    was retried on the cloud, was followed by an explicit switch to the cloud, or whose
    message was sent again.  Corrupt or cut-off lines are skipped and counted.  Cost: with the
    prices LiteLLM publishes at its /model/info (URL and key from the config and env file), the
    money spent on the cloud and avoided by answering locally, with the source shown; without
    prices it says why.  --html FILE writes one page that opens offline and fetches nothing.
    """
    from proxy.ops import stats as s

    path = _log_path(log, config_path)
    if not s.log_files(path):
        raise click.ClickException(f"no decision log at {path} yet: no request has been answered")
    bound = None
    if since:
        try:
            bound = s.parse_since(since)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    result = s.compute_stats(path, since=bound, width=max(10, width), by_project=by == "project")
    money = None if no_cost else _cost(result, config_path)
    if html_file:
        from proxy.ops import html_report

        try:
            html_report.write(Path(html_file), result, money)
        except OSError as exc:
            raise click.ClickException(f"cannot write {html_file}: {exc.strerror or exc}") from None
        click.echo(f"wrote {html_file}", err=True)
    if as_json:
        data = result.to_dict()
        if money is not None:
            from proxy.ops.prices import cost_dict

            data["cost"] = cost_dict(money)
        click.echo(json.dumps(data, indent=2))
        return
    if by == "project":
        text = s.render_by_project(result, ascii_only=_ascii_only())
    else:
        text = s.render_text(result, chart=not no_chart, ascii_only=_ascii_only(), since=bound)
    if money is not None:
        from proxy.ops.prices import render_cost

        text += render_cost(money)
    for line in text:
        click.echo(line)


def _cost(result: Stats, config_path: str | None) -> Cost:
    """The cost at LiteLLM's prices (a Cost saying why when there are none)."""
    from proxy.ops import prices

    try:
        cfg = context.load(config_path)
    except click.ClickException as exc:
        return prices.Cost("", None, None, (), f"no config to find LiteLLM ({exc.message.splitlines()[0]})")
    found = prices.fetch_prices(cfg.cloud.base_url, cfg.cloud_key())
    local = (result.local_input_tokens, result.local_output_tokens)
    return prices.cost(found, result.cloud_tokens, local, cfg.cloud.simple_model)


# ---------------------------------------------------------------- statusline


@click.command()
@config_option
@click.option("--log", type=click.Path(dir_okay=False), help="Read this log instead of the configured one.")
def statusline(config_path: str | None, log: str | None) -> None:
    """One line for Claude Code's statusLine setting (reads Claude Code's JSON on stdin).

    Shows the route and model of this session's latest answer and why (classified, cached,
    fallback, ...), and today's local share (UTC).  Reads only the end of the decision log, so
    it stays fast on any log; a share marked ~ covers only the last few MB of today.  The
    launcher the installer writes passes it to Claude Code with --settings, unless you have a
    statusLine of your own (or set SWITCHYARD_STATUSLINE=0).  Always exits 0: a status line
    that fails would only go blank.
    """
    from proxy.ops import statusline as sl

    stdin_text = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read(1 << 20)
    try:
        path: Path | None = _log_path(log, config_path)
    except click.ClickException as exc:
        click.echo(f"switchyard: {exc.message.splitlines()[0][:200]}")
        return
    click.echo(sl.line_for(path, stdin_text))


# ---------------------------------------------------------------- classify


@click.command()
@config_option
@click.argument("prompt", required=False)
@click.option("--suite", is_flag=True, help="Run the built-in suite of known-easy and known-hard requests.")
@click.option(
    "--prompt-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Use this classifier prompt instead of the configured one (try an edit before deploying it).",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 100),
    help="With --suite: exit 1 when agreement (in %) is below this.",
)
def classify(
    config_path: str | None, prompt: str | None, suite: bool, prompt_file: str | None, min_agreement: float | None
) -> None:
    """Run the proxy's own classifier on PROMPT, or on the built-in suite.

    Uses the same prompt, reply parsing, token budget and timeout as the proxy, against the
    configured local model.  Prints each verdict, its time and the reply's last line, and
    flags NO VERDICT (the proxy would send such a request to the cloud).  Exits 1 when PROMPT
    gets no verdict, or when --min-agreement is not met.
    """
    from proxy.config import ConfigError, load_prompt
    from proxy.ops import classify_suite as cs

    if bool(prompt) == suite:
        raise click.UsageError('give either a PROMPT or --suite (e.g. switchyard classify "rename x to y")')
    cfg = context.load(config_path)
    if prompt_file:
        text = Path(prompt_file).read_text(encoding="utf-8")
        if not text.strip():
            raise click.BadParameter(f"{prompt_file} is empty", param_hint="--prompt-file")
    else:
        try:
            text = load_prompt(cfg)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    cases = cs.suite() if suite else [cs.Case(prompt or "", None)]
    if suite:
        click.echo(f"classifying {len(cases)} requests with {cfg.local.model} at {cfg.local.base_url} ...")
    outcomes = cs.run(cfg, text, cases, cfg.local_key())
    for o in outcomes:
        click.echo(cs.format_outcome(o))
    if suite:
        summary = cs.summarize(outcomes)
        click.echo("")
        click.echo(cs.format_summary(summary))
        if min_agreement is not None and 100 * (summary.agreement or 0) < min_agreement:
            sys.exit(1)
        return
    if outcomes[0].result.verdict is None:
        sys.exit(1)


# ---------------------------------------------------------------- eval


@click.command("eval")
@config_option
@click.option(
    "--set",
    "set_file",
    type=click.Path(dir_okay=False),
    help="A labelled JSONL file of your own (format in the README).  [default: the built-in set]",
)
@click.option(
    "--prompt-file",
    "prompt_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Judge with this classifier prompt instead of the configured one; repeat to compare prompts.",
)
@click.option(
    "--whole-reply",
    is_flag=True,
    help="Also judge each request waiting for the whole reply, to compare with the proxy's early stop.",
)
@click.option("--category", "categories", multiple=True, metavar="NAME", help="Only requests of this category.")
@click.option("--limit", type=click.IntRange(1), help="Only the first N requests (after --category).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures and each result as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="List each request the classifier got wrong.")
def eval_command(
    config_path: str | None,
    set_file: str | None,
    prompt_files: tuple[str, ...],
    whole_reply: bool,
    categories: tuple[str, ...],
    limit: int | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Replay a labelled set of Claude Code requests through the proxy's classifier.

    Each request is judged as the proxy would judge it: the same compact view of the full
    request, prompt, parsing, token budget and timeout, against the configured local model, one
    at a time.  Reports agreement with the labels, local share, false local (a hard request
    judged SIMPLE), false cloud, NO VERDICT and timeout rates and classify latency p50/p95, per
    category and overall.  The built-in set holds 82 realistic requests (system prompt, tools,
    tool steps) in 11 everyday and hard categories.  Exits 1 when the set has bad lines or no
    request got an answer.
    """
    from proxy.config import ConfigError, load_prompt
    from proxy.ops import evaluate as ev

    path = Path(set_file) if set_file else ev.DEFAULT_SET
    try:
        items = ev.load_set(path)
    except ev.LabelledSetError as exc:
        raise click.ClickException(str(exc)) from None
    if categories:
        known = sorted({i.category for i in items})
        unknown = [c for c in categories if c not in known]
        if unknown:
            raise click.BadParameter(
                f"{', '.join(unknown)} is not a category of {path} (it has: {', '.join(known)})",
                param_hint="--category",
            )
        items = [i for i in items if i.category in categories]
    items = items[:limit] if limit else items
    cfg = context.load(config_path)
    prompts: list[tuple[str, str]] = []
    for file in prompt_files:
        text = Path(file).read_text(encoding="utf-8")
        if not text.strip():
            raise click.BadParameter(f"{file} is empty", param_hint="--prompt-file")
        name = Path(file).name
        prompts.append((name if all(n != name for n, _ in prompts) else f"{name}#{len(prompts) + 1}", text))
    if not prompts:
        try:
            prompts.append(("configured", load_prompt(cfg)))
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    ways = (ev.EARLY, ev.WHOLE) if whole_reply else (ev.EARLY,)
    if not as_json:
        calls = len(items) * len(prompts) * len(ways)
        click.echo(f"judging {len(items)} requests ({calls} classifier calls) with {cfg.local.model} ...", err=True)
    setup, runs = ev.run(cfg, items, prompts, cfg.local_key(), ways, str(path))
    if as_json:
        click.echo(json.dumps(ev.report_json(setup, runs), indent=2))
    else:
        for line in ev.render_text(setup, runs, verbose):
            click.echo(line)
    results = [j.result for r in runs for j in r.judged]
    if all(r.mode == "error" for r in results):
        raise click.ClickException(
            f"the local server at {cfg.local.base_url} answered none of the requests ({results[0].detail}): "
            "check it with 'switchyard status'"
        )


# ---------------------------------------------------------------- doctor


@click.command()
@config_option
@click.option("--yes", "-y", is_flag=True, help="Run the LiteLLM check without asking (it sends a tiny cloud request).")
@click.option("--no-cloud", is_flag=True, help="Skip the LiteLLM check (no cloud request).")
def doctor(config_path: str | None, yes: bool, no_cloud: bool) -> None:
    """Look for each known fault and say how to fix it.

    Checks: the config loads and holds no literal $HOME or ~; the env file is 0600 and has the
    keys; no stale pidfile; the unit removes a leftover pidfile; nobody else holds the port;
    the launcher's key matches the service's; LiteLLM accepts the thinking fields (reasoning,
    thinking, enable_thinking; one tiny cloud request per cloud model, so it asks first); the local model is loaded;
    what the local server can take: Claude Code's requests fit one request's context, its chat
    template takes tools, it does not cut long prompts silently (Ollama); lingering is on; the
    decision log grows.  Exits 1 when any check fails.
    """
    from proxy.host.envfile import apply_env_file
    from proxy.ops import doctor as d

    path = context.resolve_config_path(config_path)
    apply_env_file(context.env_file_for(path), os.environ)
    allow = yes
    if not yes and not no_cloud:
        if sys.stdin.isatty():
            allow = click.confirm(
                "The LiteLLM check sends one tiny request per cloud model (a few tokens). Run it?", default=False
            )
        else:
            click.echo("(LiteLLM check skipped: no terminal to ask; use --yes to run it)", err=True)
    sys.exit(_print_checks(d.run_doctor(path, allow_cloud=allow and not no_cloud)))


# ---------------------------------------------------------------- start / stop / restart

_timeout = click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for /health to answer 200.")
_force = click.option("--force", is_flag=True, help="SIGKILL the proxy if it has not stopped after the grace period.")


def _finish(ok: bool, message: str) -> None:
    if ok:
        click.echo(message)
        return
    raise click.ClickException(message)


@click.command()
@config_option
@_timeout
def start(config_path: str | None, timeout: float) -> None:
    """Start the proxy and wait until /health answers.

    Through systemctl --user when the unit exists and a user manager answers; otherwise
    detached, with a pidfile, output appended to $XDG_STATE_HOME/switchyard/proxy.log.
    """
    from proxy.ops import lifecycle

    cfg = context.load(config_path)
    key = context.require_router_key(cfg)
    outcome = lifecycle.start(cfg, context.resolve_config_path(config_path), key, timeout)
    _finish(outcome.ok, outcome.message)


@click.command()
@config_option
@click.option("--timeout", type=float, help="Seconds to wait after SIGTERM.  [default: the grace period + 5]")
@_force
def stop(config_path: str | None, timeout: float | None, force: bool) -> None:
    """Stop the proxy (in-flight answers get the grace period to finish).

    A pidfile is trusted only while its process holds its lock, and it is never removed
    while that process still runs.
    """
    from proxy.ops import lifecycle

    cfg = context.load(config_path)
    outcome = lifecycle.stop(cfg, timeout, force)
    _finish(outcome.ok, outcome.message)


@click.command()
@config_option
@_timeout
@_force
def restart(config_path: str | None, timeout: float, force: bool) -> None:
    """Stop the proxy, start it again, and wait until /health answers."""
    from proxy.ops import lifecycle

    cfg = context.load(config_path)
    key = context.require_router_key(cfg)
    outcome = lifecycle.restart(cfg, context.resolve_config_path(config_path), key, timeout, force)
    _finish(outcome.ok, outcome.message)


# ---------------------------------------------------------------- env


@click.command()
@config_option
@click.option("--shell", type=click.Choice(["sh", "fish"]), default="sh", show_default=True, help="Syntax to print.")
def env(config_path: str | None, shell: str) -> None:
    """Print the lines that point Claude Code at Switchyard.

    Use as: eval "$(switchyard env)"   (fish: switchyard env --shell fish | source).
    This prints the router key, on purpose.
    """
    from proxy.ops.envcmd import env_vars, render

    cfg = context.load(config_path)
    key = context.require_router_key(cfg)
    for line in render(env_vars(cfg, key), shell):
        click.echo(line)


COMMANDS = (status, watch, stats, statusline, classify, eval_command, doctor, start, stop, restart, env)
