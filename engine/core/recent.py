"""A bounded memory of ids already handled (message ids, tool-call ids), for week-long sessions."""

from __future__ import annotations

from collections.abc import Hashable


class RecentIds:
    """Remembers at least the last `keep` ids added and never more than 2 × `keep`.

    Two generations instead of an ordered dict: membership and insertion stay O(1) with no
    per-id bookkeeping, and a duplicate arrives soon after its original (a message's blocks
    together, a tool call's rollout lines within the turn), so "recent" is all that is needed.
    """

    def __init__(self, keep: int = 256):
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.keep = keep
        self._current: set[Hashable] = set()
        self._older: set[Hashable] = set()

    def __contains__(self, item: Hashable) -> bool:
        return item in self._current or item in self._older

    def __len__(self) -> int:
        return len(self._current | self._older)

    def add(self, item: Hashable) -> bool:
        """Remember `item`; True when it was not remembered already."""
        if item in self:
            return False
        self._current.add(item)
        if len(self._current) >= self.keep:
            self._older, self._current = self._current, set()
        return True

    def discard(self, item: Hashable) -> None:
        """Forget `item` (its last duplicate has been seen)."""
        self._current.discard(item)
        self._older.discard(item)
