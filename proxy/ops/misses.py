"""Routing misses: local turns that the log shows should have gone to the cloud.

A *local turn* is one user turn (a session and its count of genuine user messages; a record without
them is a turn of its own) in which at least one request was routed local.  It is *missed* when:

- ``fallback``:   a local request of the turn fell back to the cloud before any output;
- ``broken``:     a local answer broke after content was sent;
- ``retry``:      the session's next request was retried on the cloud (reason ``retry-to-cloud``);
- ``explicit``:   the user switched to the cloud explicitly (reason ``explicit``) right after it,
                  in the same session;
- ``repeat``:     the same user message (same prompt hash) was sent again, as a new turn (of any
                  session), after the turn's local answer.

Each missed turn counts once, under its first cause.  Background requests (titles, summaries) and
requests refused before routing are left out.  Pure: records in time order in, figures out; the
values are opaque tokens (``stats`` passes raw JSON spellings, tests pass plain strings), compared
only for equality.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

KINDS = ("fallback", "broken", "retry", "explicit", "repeat")


class Flags(NamedTuple):
    """What one record says, as the tracker needs it (computed by the caller)."""

    local: bool  # routed local (whether or not it fell back)
    local_ok: bool  # a local answer was sent (2xx, no fallback)
    failed: str | None  # "fallback" | "broken" | None
    retry: bool  # reason retry-to-cloud
    explicit_cloud: bool  # reason explicit, answered by the cloud


class Row(NamedTuple):
    session: Hashable | None
    turn: Hashable | None
    prompt_hash: Hashable | None
    project: Hashable | None
    day: Hashable  # the day the record is from ("YYYY-MM-DD"; stats passes the bytes)
    flags: Flags


@dataclass
class MissFigures:
    local_turns: int = 0
    missed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    # day "YYYY-MM-DD" (as fed) -> (local turns, missed)
    by_day: dict[Any, tuple[int, int]] = field(default_factory=dict)
    # project token -> (local turns, missed)
    by_project: dict[Any, tuple[int, int]] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.missed / self.local_turns if self.local_turns else None


class MissTracker:
    """Feed rows in time order (across chunks and files); ``figures()`` at the end."""

    def __init__(self) -> None:
        self._n = 0
        # turn id -> (day, project) of its first local request
        self._turns: dict[Hashable, tuple[Hashable, Hashable | None]] = {}
        self._missed: dict[Hashable, str] = {}
        self._seen: set[Hashable] = set()  # every turn id so far (a repeat is a *new* turn)
        # prompt hash -> the local turns that answered it and were not repeated yet
        self._answered: dict[Hashable, set[Hashable]] = {}
        # session -> the turn id of its latest local answer, while nothing else followed it
        self._just_local: dict[Hashable, Hashable] = {}
        # session -> the turn id of its latest local request (what a retry-to-cloud retries)
        self._last_local: dict[Hashable, Hashable] = {}

    def feed(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows as ``Row`` lays them out.  A row equal to the one before it in its session changes
        nothing here (so callers may drop such rows)."""
        turns, missed, seen = self._turns, self._missed, self._seen
        answered, just_local, last_local = self._answered, self._just_local, self._last_local
        for session, turn, h, project, day, (local, local_ok, failed, retry, explicit_cloud) in rows:
            tid: Hashable
            if session is None or turn is None:
                self._n += 1
                tid, new = self._n, True  # a turn of its own
            else:
                tid = (session, turn)
                new = tid not in seen
                if new:
                    seen.add(tid)
            if new and h is not None and h in answered:
                for earlier in answered.pop(h):
                    missed.setdefault(earlier, "repeat")
            if local:
                if tid not in turns:
                    turns[tid] = (day, project)
                if failed is not None:
                    missed.setdefault(tid, failed)
                if session is not None:
                    last_local[session] = tid
                    if local_ok and failed is None:
                        just_local[session] = tid
                    else:
                        just_local.pop(session, None)
                if local_ok and failed is None and h is not None:
                    answered.setdefault(h, set()).add(tid)
                continue
            if session is None:
                continue
            if retry and session in last_local:
                missed.setdefault(last_local[session], "retry")
            if explicit_cloud:
                prev = just_local.get(session)
                if prev is not None and prev != tid:
                    missed.setdefault(prev, "explicit")
            just_local.pop(session, None)

    def figures(self) -> MissFigures:
        out = MissFigures(local_turns=len(self._turns), missed=len(self._missed))
        kinds = Counter(self._missed.values())
        out.by_kind = {k: kinds[k] for k in KINDS if kinds[k]}
        days: dict[Any, list[int]] = {}
        projects: dict[Any, list[int]] = {}
        for tid, (day, project) in self._turns.items():
            gone = 1 if tid in self._missed else 0
            d = days.setdefault(day, [0, 0])
            d[0] += 1
            d[1] += gone
            p = projects.setdefault(project, [0, 0])
            p[0] += 1
            p[1] += gone
        out.by_day = {k: (v[0], v[1]) for k, v in sorted(days.items())}
        out.by_project = {k: (v[0], v[1]) for k, v in projects.items()}
        return out


def find_misses(rows: Iterable[tuple[Any, ...]]) -> MissFigures:
    tracker = MissTracker()
    tracker.feed(rows)
    return tracker.figures()
