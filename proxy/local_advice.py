"""What the probed local server means for Claude Code, and how to fix what stands in the way.

Pure functions over :class:`~proxy.capabilities.LocalCapabilities`, shared by the installer (before
it writes anything), ``switchyard status`` and ``switchyard doctor``, so all three say the same thing
in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.capabilities import KIND_NAMES, LocalCapabilities
from proxy.config import LocalConfig

# Claude Code's first main-model request (system prompt, 24 tool definitions, one user message),
# estimated as the router estimates it: tests/data/claude_code_turn1.json (Claude Code 2.1.197)
# comes to ~18,900; tests/test_local_advice.py keeps this figure within 10 % of that estimate.
CLAUDE_CODE_MIN_TOKENS = 19_000
# A context that fits this many tokens leaves room for a working session (Ollama's own advice for
# Claude Code is 64K or more).
RECOMMENDED_CONTEXT = 65_536


OK, UNKNOWN, PROBLEM = "ok", "unknown", "problem"


@dataclass(frozen=True)
class Finding:
    state: str  # OK | UNKNOWN (nothing to check against) | PROBLEM
    title: str
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.state != PROBLEM


def reserve_for(local: LocalConfig) -> int:
    """The tokens routing keeps free for the answer (proxy/routing.py output_reserve, before a request's
    own max_tokens lowers it): what a Claude Code request needs on top of its prompt."""
    return local.answer_reserve


def _kind(caps: LocalCapabilities) -> str:
    return KIND_NAMES.get(caps.kind, caps.kind)


def context_fix(caps: LocalCapabilities, need: int) -> str:
    """How to give one request ``need`` tokens on this kind of server."""
    want = max(RECOMMENDED_CONTEXT, need)
    if caps.context_trained is not None and caps.context_trained < need:
        return (
            f"the model itself was trained for {caps.context_trained:,} tokens and its server caps requests there: "
            f"load a model with a longer context (64K or more) for Claude Code's local turns"
        )
    if caps.kind == "llama.cpp":
        if caps.slots and caps.slots > 1:
            return f"restart llama-server with `-np 1` or a larger `-c` (e.g. `-c {want} -np 1`)"
        return f"restart llama-server with a larger context, e.g. `-c {want}`"
    if caps.kind == "ollama":
        return (
            f"set OLLAMA_CONTEXT_LENGTH={want} for the Ollama server (or `PARAMETER num_ctx {want}` in a "
            "Modelfile) and restart it"
        )
    if caps.kind == "lmstudio":
        return (
            "reload the model with a larger context length "
            f"(LM Studio's load settings, or `lms load --context-length {want}`)"
        )
    if caps.kind == "vllm":
        return f"restart vLLM with `--max-model-len {want}` (the model must support it)"
    return f"give the server a context of at least {want:,} tokens, or set local.context_tokens in the config"


def context_finding(caps: LocalCapabilities, reserve: int, configured: int = 0) -> Finding:
    """Does a Claude Code main request fit one local request's context?"""
    need = CLAUDE_CODE_MIN_TOKENS + reserve
    title = "local context fits Claude Code"
    ctx = configured or caps.context_per_request
    source = "local.context_tokens" if configured else _kind(caps)
    if ctx is None:
        detail = f"{_kind(caps)} does not say how much context one request gets"
        if caps.kind == "ollama":
            detail += "; Ollama cuts longer prompts silently"
        return Finding(
            UNKNOWN, title, detail,
            "set local.context_tokens in the config to the server's context, so requests that cannot fit go to "
            "the cloud instead of failing or being cut",
        )
    if ctx >= need:
        return Finding(OK, title, f"{ctx:,} tokens per request ({source}); Claude Code needs about {need:,}")
    slots = f" ({caps.slots} slots)" if not configured and caps.slots and caps.slots > 1 else ""
    detail = (
        f"{source}: {ctx:,} tokens per request{slots}; Claude Code's requests need about "
        f"{CLAUDE_CODE_MIN_TOKENS:,} plus {reserve:,} for the answer, so every one goes to the cloud"
    )
    if not configured:
        return Finding(PROBLEM, title, detail, context_fix(caps, need))
    # The configured figure wins over the server's: it may be the only thing that is too small.
    fix = (
        f"set local.context_tokens to the server's real context (at least {need:,}), or to 0 to read it "
        "from the server"
    )
    if caps.context_per_request is None or caps.context_per_request < need:
        fix += "; and " + context_fix(caps, need)
    return Finding(PROBLEM, title, detail, fix)


def tools_finding(caps: LocalCapabilities) -> Finding:
    title = "local chat template takes tools"
    if caps.tools is None:
        return Finding(UNKNOWN, title, f"{_kind(caps)} does not say; tool requests are tried locally")
    if caps.tools:
        return Finding(OK, title, "yes")
    fix = (
        "use a model whose chat template supports tools (llama.cpp: `--jinja`, or `--chat-template-file` with a "
        "tool-capable template)"
        if caps.kind == "llama.cpp"
        else "use a model whose chat template supports tools"
    )
    return Finding(
        PROBLEM, title,
        f"{_kind(caps)} would drop every tool definition, so Claude Code's tool-carrying requests go to the cloud",
        fix,
    )


def truncation_finding(caps: LocalCapabilities, reserve: int) -> Finding | None:
    """Ollama cuts long prompts from the front without an error: worth its own warning."""
    if not caps.truncates_silently:
        return None
    need = CLAUDE_CODE_MIN_TOKENS + reserve
    title = "local server does not cut prompts silently"
    ctx = caps.context_per_request
    if ctx is not None and ctx >= need:
        return Finding(OK, title, f"{_kind(caps)} truncates past {ctx:,} tokens; Switchyard sends nothing longer")
    size = f"{ctx:,} tokens" if ctx is not None else "size unknown"
    return Finding(
        PROBLEM, title,
        f"{_kind(caps)} truncates prompts longer than its context ({size}) without an error: "
        "the model would answer a mangled request. Switchyard sends longer requests to the cloud",
        context_fix(caps, need),
    )


def findings(caps: LocalCapabilities, reserve: int, configured: int = 0) -> list[Finding]:
    """What the installer, ``switchyard status`` and ``switchyard doctor`` report, in this order.

    ``reserve``: :func:`reserve_for` the local config; ``configured``: ``local.context_tokens`` (0: none).
    """
    if not caps.known:
        unknown = Finding(
            UNKNOWN, "local server capabilities", "the local server did not answer its discovery endpoints",
            "check that it is running; Switchyard tries it and falls back to the cloud",
        )
        # A configured context is what routing goes by even when the server says nothing.
        return [unknown, context_finding(caps, reserve, configured)] if configured else [unknown]
    out = [context_finding(caps, reserve, configured), tools_finding(caps)]
    trunc = truncation_finding(caps, reserve)
    if trunc is not None:
        out.append(trunc)
    return out


def takes_nothing(found: list[Finding]) -> bool:
    """True when Claude Code's main requests would all go to the cloud: context or tools stand in the way."""
    return any(f.state == PROBLEM and f.title in ("local context fits Claude Code", "local chat template takes tools")
               for f in found)
