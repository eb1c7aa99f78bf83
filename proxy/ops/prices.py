"""Cloud prices from LiteLLM's model info endpoint, and what the logged tokens cost at those prices.

LiteLLM answers ``GET /model/info`` (with its key) with one entry per ``model_name`` and, where its
cost map knows the upstream model, ``input_cost_per_token`` / ``output_cost_per_token`` in USD.  A
custom model has null prices: it is named as unpriced, never counted as free.  Tokens answered
locally are priced at the cloud's simple model, the one a local answer falls back to.  Cloud
prompt caching is not in the decision log, so spend is at the uncached input price (an upper bound).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.host.http_probe import bearer, request


@dataclass(frozen=True)
class Prices:
    source: str  # where the prices came from (the URL), shown with every figure
    per_token: dict[str, tuple[float, float]] = field(default_factory=dict)  # model -> (input, output) USD
    unpriced: tuple[str, ...] = ()  # models LiteLLM lists without prices
    error: str | None = None  # why there are no prices at all


def parse_model_info(data: Any, source: str) -> Prices:
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return Prices(source, error=f"{source} did not answer with a model list")
    priced: dict[str, tuple[float, float]] = {}
    unpriced: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
            continue
        info = entry.get("model_info")
        if not isinstance(info, dict):
            info = {}
        cin, cout = info.get("input_cost_per_token"), info.get("output_cost_per_token")
        if isinstance(cin, int | float) and isinstance(cout, int | float) and not isinstance(cin, bool):
            priced.setdefault(entry["model_name"], (float(cin), float(cout)))
        else:
            unpriced.append(entry["model_name"])
    return Prices(source, priced, tuple(sorted(set(unpriced) - set(priced))))


def fetch_prices(base_url: str, key: str, timeout: float = 3.0) -> Prices:
    source = base_url.rstrip("/") + "/model/info"
    res = request(source, headers=bearer(key), timeout=timeout)
    if res.status is None:
        return Prices(source, error=f"LiteLLM is not reachable at {source} ({res.error})")
    if res.status != 200:
        hint = " (is the LiteLLM key in the env file right?)" if res.status in (400, 401, 403, 500) else ""
        return Prices(source, error=f"LiteLLM answered {res.status} at {source}{hint}")
    return parse_model_info(res.json(), source)


@dataclass(frozen=True)
class Cost:
    source: str
    spent_usd: float | None  # on the cloud, over the priced models
    avoided_usd: float | None  # local answers at the simple model's prices
    unpriced_models: tuple[str, ...]  # cloud models in the log without prices (their tokens not counted)
    error: str | None = None


def cost(
    prices: Prices, cloud_tokens: dict[str, tuple[int, int]], local_tokens: tuple[int, int], simple_model: str
) -> Cost:
    if prices.error:
        return Cost(prices.source, None, None, (), prices.error)
    spent = 0.0
    any_priced = False
    missing = []
    for model, (tin, tout) in cloud_tokens.items():
        p = prices.per_token.get(model)
        if p is None:
            missing.append(model)
            continue
        any_priced = True
        spent += tin * p[0] + tout * p[1]
    simple = prices.per_token.get(simple_model)
    avoided = local_tokens[0] * simple[0] + local_tokens[1] * simple[1] if simple else None
    if simple is None and simple_model and simple_model not in missing:
        missing.append(simple_model)
    return Cost(prices.source, spent if any_priced else None, avoided, tuple(sorted(missing)))


def _usd(v: float) -> str:
    return f"${v:,.2f}" if v >= 0.01 or v == 0 else f"${v:.4f}"


def render_cost(c: Cost) -> list[str]:
    if c.error:
        return [f"cost                no prices: {c.error}"]
    spent = _usd(c.spent_usd) if c.spent_usd is not None else "-"
    avoided = _usd(c.avoided_usd) if c.avoided_usd is not None else "-"
    lines = [f"cost                spent on the cloud {spent}, avoided by answering locally {avoided}"]
    lines.append(f"  prices from       {c.source} (USD per token; cloud cache discounts not counted)")
    if c.unpriced_models:
        lines.append(f"  no prices for     {', '.join(c.unpriced_models)} (LiteLLM's cost map does not know them)")
    return lines


def cost_dict(c: Cost) -> dict[str, Any]:
    return {
        "source": c.source,
        "spent_usd": c.spent_usd,
        "avoided_usd": c.avoided_usd,
        "unpriced_models": list(c.unpriced_models),
        "error": c.error,
    }
