"""One classification per user turn: a bounded LRU of verdicts keyed by (session, turn).

Also remembers turns whose local answer broke after content was sent: Claude Code retries such a
turn, and the retry must go to the cloud rather than loop on the local model.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from proxy.routing import Classification

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class TurnMemory:
    def __init__(self, size: int) -> None:
        self.verdicts: LRU[tuple[str, str], Classification] = LRU(size)
        self.forced_cloud: LRU[tuple[str, str], str] = LRU(size)

    def verdict(self, session: str | None, turn: str) -> Classification | None:
        return self.verdicts.get((session, turn)) if session else None

    def remember(self, session: str | None, turn: str, c: Classification) -> None:
        if session:
            self.verdicts.put((session, turn), c)

    def force_cloud(self, session: str | None, turn: str, cause: str) -> None:
        if session:
            self.forced_cloud.put((session, turn), cause)

    def is_forced_cloud(self, session: str | None, turn: str) -> bool:
        return bool(session) and self.forced_cloud.get((session or "", turn)) is not None
