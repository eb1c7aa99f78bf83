"""Which dialect Switchyard should speak to the local server (``local.api``), and why.

The installer asks the server itself: a one-token ``POST /v1/messages`` (:func:`installer.probes.
local_messages_probe`).  Where that answers with an Anthropic message, the Anthropic path is proposed:
the server renders the prompt through its own template and Switchyard does one translation fewer.
Where it does not (or the capability probe already knows the server lacks the route), the OpenAI
path stays.  ``auto`` is never proposed: the installer has just measured what ``auto`` would guess.
"""

from __future__ import annotations

from proxy.capabilities import KIND_NAMES, LocalCapabilities


def propose_local_api(
    caps: LocalCapabilities, probe: tuple[bool, str] | None, chosen: str | None = None
) -> tuple[str, str]:
    """(``local.api``, one line saying why).  ``probe``: the tiny call's (worked, what happened), or
    None when it was not made; ``chosen``: the user's own answer, which always wins."""
    server = KIND_NAMES.get(caps.kind, caps.kind)
    if chosen:
        return chosen, "as you chose (--local-api or the answers file)"
    if caps.anthropic is False:
        return "openai", f"{server} does not serve Anthropic's /v1/messages"
    if probe is None:
        return "openai", "the server was not asked about /v1/messages"
    worked, what = probe
    if worked:
        return (
            "anthropic",
            f"{server} answered a one-token POST /v1/messages ({what}): its own template renders the prompt",
        )
    return "openai", f"{server} did not answer POST /v1/messages usably ({what})"
