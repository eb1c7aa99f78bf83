"""Undo the current run's actions in reverse order (certbot-reverter style).

Used when a step fails, when the user declines a step or presses Ctrl-C during the apply phase, and
on SIGTERM, SIGHUP and SIGQUIT.  Each action undoes itself (:mod:`installer.journal_actions`); each
undo is best effort: one failing does not stop the others, and the failures are returned so the
caller can say what to finish by hand.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable

from installer.journal import Journal
from installer.journal_actions import Undo


def rollback(journal: Journal, restart_litellm: Callable[[str], None] | None = None) -> list[str]:
    ctx = Undo(journal.path.parent)
    for action in reversed(journal.actions):
        try:
            action.undo(ctx)
        except (OSError, subprocess.SubprocessError) as exc:
            ctx.failures.append(f"could not undo {action.describe()}: {exc}")
    failures = ctx.failures
    # The unit file is gone (or back as it was): the user manager must forget the one it loaded.
    if ctx.systemd_touched:
        try:
            subprocess.run(["systemctl", "--user", "daemon-reload"], check=False, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            failures.append(f"could not run systemctl --user daemon-reload: {exc}; run it by hand")
    # The files are back; LiteLLM must re-read its restored config.  The restarter waits (bounded)
    # until LiteLLM answers its liveliness probe, so "Rolled back" means it is reachable again.
    if ctx.restart_command and restart_litellm is not None:
        try:
            restart_litellm(ctx.restart_command)
        except Exception as exc:
            failures.append(f"LiteLLM is not back after the rollback's restart with {ctx.restart_command!r}: {exc}; "
                            "check it and restart it by hand")
    journal.run["status"] = "rolled-back"
    journal.restore_previous()
    for d in sorted({*journal.journal_dirs, *ctx.deferred_dirs}, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()
    return failures
