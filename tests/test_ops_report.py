"""Cost at LiteLLM's real prices, and the --html page rendered by a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from proxy.ops import html_report, prices, stats
from tests.litellm_proc import LiteLLMProcess, anthropic_model, openai_model, write_config
from tests.test_ops_stats import make_records, write_log


@pytest.mark.litellm
def test_prices_from_the_real_litellm_and_a_model_without_them(litellm_bin: str, tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "litellm.yaml",
        [
            anthropic_model("cloud-simple", "http://127.0.0.1:9", upstream_model="claude-sonnet-4-5-20250929"),
            openai_model("custom", "http://127.0.0.1:9/v1"),
        ],
    )
    with LiteLLMProcess(litellm_bin, cfg, log_path=tmp_path / "litellm.log") as llm:
        found = prices.fetch_prices(llm.url, llm.master_key)
        wrong = prices.fetch_prices(llm.url, "sk-wrong")
    assert found.error is None and found.source == llm.url + "/model/info"
    assert found.per_token["cloud-simple"] == (3e-06, 1.5e-05)  # LiteLLM 1.106.2's cost map for Sonnet 4.5
    assert found.unpriced == ("custom",)
    spent = {"cloud-simple": (1_000_000, 100_000), "custom": (5, 5)}
    c = prices.cost(found, spent, (2_000_000, 10_000), "cloud-simple")
    assert c.spent_usd == pytest.approx(3.0 + 1.5) and c.avoided_usd == pytest.approx(6.0 + 0.15)
    assert c.unpriced_models == ("custom",)
    text = "\n".join(prices.render_cost(c))
    assert "$4.50" in text and "$6.15" in text and llm.url + "/model/info" in text and "custom" in text
    assert wrong.error is not None and "LiteLLM answered" in wrong.error


def test_without_litellm_the_cost_says_why(free_port: object) -> None:
    port = free_port()  # type: ignore[operator]
    found = prices.fetch_prices(f"http://127.0.0.1:{port}", "k", timeout=2)
    assert found.error is not None and "not reachable" in found.error
    [line] = prices.render_cost(prices.cost(found, {"m": (1, 1)}, (1, 1), "m"))
    assert line.startswith("cost                no prices: LiteLLM is not reachable")


CHROMIUM = shutil.which("chromium")


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    argv = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chrome-profile'}", *args,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_the_html_page_renders_offline_with_its_figures(tmp_path: Path) -> None:
    records = make_records(600, seed=21)
    for i, r in enumerate(records):
        r["project"] = "aaaa1111" if i % 3 else "bbbb2222"
        r["detail"] = '<script>alert("x")</script>' if i == 5 else r["detail"]
    log = tmp_path / "decisions.jsonl"
    write_log(log, records)
    st = stats.compute_stats(log)
    money = prices.cost(
        prices.Prices("http://127.0.0.1:4000/model/info", {"claude-x": (3e-06, 1.5e-05)}),
        st.cloud_tokens,
        (st.local_input_tokens, st.local_output_tokens),
        "claude-x",
    )
    page = tmp_path / "report.html"
    html_report.write(page, st, money)
    text = page.read_text(encoding="utf-8")
    # Fetches nothing: no URL but the (displayed, escaped) price source, and a CSP that forbids loads.
    assert re.findall(r"(?:src|href)\s*=", text) == []
    assert [u for u in re.findall(r"https?://[^\s<\"']+", text) if u != "http://127.0.0.1:4000/model/info"] == []
    assert "default-src 'none'" in text and "<script" not in text
    dom = _browser(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    share = f"{100 * st.by_route['local'] / st.routed:.1f}%"
    assert re.search(r'id="local-share">' + re.escape(share) + "<", dom.stdout)
    assert re.search(r'id="miss-rate">[0-9.]+%<', dom.stdout)
    assert dom.stdout.count("<rect") >= len([s for s in st.share_series if s[2]])
    assert "aaaa1111" in dom.stdout and "bbbb2222" in dom.stdout
    assert 'id="latency"' in dom.stdout and ">local<" in dom.stdout and ">cloud<" in dom.stdout
    assert "spent on the cloud <b>$" in dom.stdout and "http://127.0.0.1:4000/model/info" in dom.stdout
    shot = tmp_path / "report.png"
    res = _browser(tmp_path, f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri())
    assert res.returncode == 0 and shot.stat().st_size > 20_000  # a real picture, not a blank page


def test_cli_stats_html_writes_the_page(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from proxy.cli import cli

    log = tmp_path / "decisions.jsonl"
    write_log(log, make_records(100, seed=22))
    page = tmp_path / "out" / "report.html"
    res = CliRunner().invoke(cli, ["stats", "--log", str(log), "--no-cost", "--html", str(page)])
    assert res.exit_code == 0, res.output
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and 'id="local-share"' in text and "not asked (--no-cost)" in text
    assert not list(page.parent.glob(".report.html.*"))  # written atomically, no temp file left
