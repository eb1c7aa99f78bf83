"""Check results, shared by ``status`` and ``doctor``: pure data, rendered one line each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.local_advice import Finding

OK_MARK = "✓"
FAIL_MARK = "✗"
SKIP_MARK = "-"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""
    # Not applicable here (no user manager, nothing to check): neither a pass nor a failure.
    skipped: bool = False

    @property
    def failed(self) -> bool:
        return not self.ok and not self.skipped


def passed(name: str, detail: str = "") -> Check:
    return Check(name, True, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def skipped(name: str, detail: str) -> Check:
    return Check(name, False, detail, skipped=True)


def from_finding(finding: Finding) -> Check:
    """A finding of :mod:`proxy.local_advice` as a check, in its own words: a PROBLEM fails with its fix, an
    UNKNOWN (nothing to check against) is skipped with what to do about it, anything else passes."""
    from proxy.local_advice import PROBLEM, UNKNOWN

    if finding.state == PROBLEM:
        return failed(finding.title, finding.detail, finding.fix)
    if finding.state == UNKNOWN:
        return skipped(finding.title, f"{finding.detail}; {finding.fix}" if finding.fix else finding.detail)
    return passed(finding.title, finding.detail)


def render(check: Check, ascii_only: bool = False) -> str:
    if check.skipped:
        mark = SKIP_MARK
    elif check.ok:
        mark = "ok" if ascii_only else OK_MARK
    else:
        mark = "FAIL" if ascii_only else FAIL_MARK
    line = f"{mark} {check.name}"
    if check.detail:
        line += f": {check.detail}"
    if check.failed and check.fix:
        line += f"\n    fix: {check.fix}"
    return line


def exit_code(checks: Iterable[Check]) -> int:
    return 1 if any(c.failed for c in checks) else 0
