"""``switchyard stats --html FILE``: one self-contained page of the figures.

Everything is inline (styles, inline SVG charts drawn here, no script at all), and a
Content-Security-Policy of ``default-src 'none'`` tells the browser to fetch nothing even if
something slipped in.  Every value from the log is HTML-escaped.  Written atomically.
"""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path

from proxy.ops.prices import Cost
from proxy.ops.stats import Stats

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222;background:#fff}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:right;border-bottom:1px solid #eee}
th:first-child,td:first-child{text-align:left}.big{font-size:2em;font-weight:600}
svg{background:#fafafa;border:1px solid #ddd}.bar{fill:#2b8a3e}.miss{fill:#c92a2a}.axis{stroke:#999}
.note{color:#666}
"""


def _e(v: object) -> str:
    return html.escape(str(v), quote=True)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f} ms"


def share_svg(series: list[tuple[str, int, int]], width: int = 720, height: int = 180) -> str:
    """Local share per time bucket as bars (a gap where there was no traffic)."""
    if not series:
        return '<p class="note">no requests</p>'
    n = len(series)
    bw = width / n
    bars = []
    for i, (start, local, total) in enumerate(series):
        if not total:
            continue
        h = height * local / total
        title = f"{start} UTC: {_pct(local, total)} local ({local} of {total})"
        bars.append(
            f'<rect class="bar" x="{i * bw:.1f}" y="{height - h:.1f}" width="{max(bw - 1, 1):.1f}" '
            f'height="{h:.1f}"><title>{_e(title)}</title></rect>'
        )
    return (
        f'<svg id="share-chart" role="img" aria-label="local share over time" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{"".join(bars)}'
        f'<line class="axis" x1="0" y1="{height / 2}" x2="{width}" y2="{height / 2}" stroke-dasharray="4"/></svg>'
        f'<p class="note">{_e(series[0][0])} .. {_e(series[-1][0])} UTC; dashed line: 50%</p>'
    )


def misses_svg(by_day: dict[str, tuple[int, int]], width: int = 720, height: int = 120) -> str:
    if not by_day:
        return ""
    n = len(by_day)
    bw = width / n
    bars = []
    for i, (day, (turns, missed)) in enumerate(by_day.items()):
        h = height * missed / turns if turns else 0
        bars.append(
            f'<rect class="miss" x="{i * bw:.1f}" y="{height - h:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}">'
            f"<title>{_e(day)}: {_pct(missed, turns)} missed ({missed} of {turns})</title></rect>"
        )
    box = f'width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
    return f'<svg id="miss-chart" {box}>{"".join(bars)}</svg>'


def render(st: Stats, money: Cost | None) -> str:
    m = st.misses
    rows_latency = "".join(
        f"<tr><td>{_e(route)}</td><td>{_ms(st.ttft_ms[route].p50 if route in st.ttft_ms else None)}</td>"
        f"<td>{_ms(st.ttft_ms[route].p95 if route in st.ttft_ms else None)}</td>"
        f"<td>{_ms(s.p50)}</td><td>{_ms(s.p95)}</td><td>{s.n:,}</td></tr>"
        for route, s in st.total_ms.items()
    )
    rows_days = "".join(
        f"<tr><td>{_e(d)}</td><td>{t:,}</td><td>{x:,}</td><td>{_pct(x, t)}</td></tr>" for d, (t, x) in m.by_day.items()
    )
    rows_projects = "".join(
        f"<tr><td>{_e(st.project_label(p))}</td><td>{t:,}</td><td>{x:,}</td><td>{_pct(x, t)}</td></tr>"
        for p, (t, x) in sorted(m.by_project.items(), key=lambda kv: -kv[1][0])
    )
    kinds = ", ".join(f"{_e(k)} {v:,}" for k, v in m.by_kind.items()) or "none"
    if money is None:
        cost_html = '<p id="cost">not asked (--no-cost)</p>'
    elif money.error:
        cost_html = f'<p id="cost">no prices: {_e(money.error)}</p>'
    else:
        spent = "-" if money.spent_usd is None else f"${money.spent_usd:,.2f}"
        avoided = "-" if money.avoided_usd is None else f"${money.avoided_usd:,.2f}"
        unpriced = f"; no prices for {_e(', '.join(money.unpriced_models))}" if money.unpriced_models else ""
        cost_html = (
            f'<p id="cost">spent on the cloud <b>{spent}</b>, avoided by answering locally <b>{avoided}</b></p>'
            f'<p class="note">prices from {_e(money.source)}{unpriced}</p>'
        )
    skipped = (
        f'<p class="note" id="skipped">{st.unreadable_lines:,} unreadable line(s) skipped</p>'
        if st.unreadable_lines
        else ""
    )
    local = st.by_route.get("local", 0)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard: routing report</title><style>{_STYLE}</style></head>
<body>
<h1>Switchyard routing report</h1>
<p class="note">{st.requests:,} requests, {_e(st.first_ts)} .. {_e(st.last_ts)} (UTC)</p>{skipped}
<h2>Local share</h2>
<p><span class="big" id="local-share">{_pct(local, st.routed)}</span> answered locally ({local:,} of {st.routed:,})</p>
{share_svg(st.share_series)}
<h2>Routing misses</h2>
<p><span class="big" id="miss-rate">{_pct(m.missed, m.local_turns)}</span>
 of {m.local_turns:,} local turns missed ({kinds})</p>
{misses_svg(m.by_day)}
<table id="misses-by-day"><tr><th>day</th><th>local turns</th><th>missed</th><th>rate</th></tr>{rows_days}</table>
<h3>per project</h3>
<table id="misses-by-project"><tr><th>project</th><th>local turns</th><th>missed</th><th>rate</th></tr>
{rows_projects}</table>
<h2>Latency by route</h2>
<table id="latency"><tr><th>route</th><th>first token p50</th><th>p95</th><th>total p50</th><th>p95</th><th>n</th></tr>
{rows_latency}</table>
<h2>Cost</h2>
{cost_html}
<p class="note">cloud tokens avoided: {st.local_input_tokens:,} input + {st.local_output_tokens:,} output</p>
</body></html>
"""


def write(path: Path, st: Stats, money: Cost | None) -> None:
    data = render(st, money).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
