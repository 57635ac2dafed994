"""Leases on benchmark slots: one engine-run benchmark per slot at a time, first come first served.

One `LeaseManager` per engine (asyncio, single event loop). A run takes a lease for its whole
duration (`async with manager.lease(lane, purpose): ...`); when every slot is busy the caller
queues, and a released slot is handed straight to the oldest waiter, so no lane starves and
no newcomer overtakes the queue. Leases live in memory only: an engine killed with -9 leaves
none behind, and a restarted engine starts with every slot free.

A waiter leaves the queue when its lane stops (`cancel(lane)`) or the engine stops (`close()`):
its `acquire` raises `LeaseCancelled`. A lease is released on every path out of the `async
with` (a crash, a timeout, a cancelled task).

`status()` is the device view for snapshots and `status --json`: per slot leased or free,
which lane, since when; the queue; and the host's busy share since the engine started
(leased chip-seconds over all slots' chip-seconds of wall time).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from autoresearch_tui.engine.devices.slots import Slot


class LeaseCancelled(Exception):
    """The wait for a slot was called off (lane or engine stopping); the message says why."""


@dataclass
class Lease:
    slot: Slot
    lane: str
    purpose: str
    waited_s: float
    acquired_at: float
    """Wall-clock time (time.time) the slot was taken."""
    _acquired_mono: float = 0.0
    released: bool = False
    held_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"slot": self.slot.index, "chips": list(self.slot.chips), "lane": self.lane,
                "purpose": self.purpose, "waited_s": round(self.waited_s, 3),
                "acquired_at": self.acquired_at, "held_s": round(self.held_s, 3)}


@dataclass
class _Waiter:
    lane: str
    purpose: str
    since: float
    since_mono: float
    future: asyncio.Future = field(repr=False)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class LeaseManager:
    def __init__(self, slots: list[Slot], *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        if not slots:
            raise ValueError("a lease manager needs at least one slot")
        self.slots = list(slots)
        self._clock, self._wall = clock, wall
        self._free: list[Slot] = list(slots)
        self._held: dict[int, Lease] = {}
        self._queue: deque[_Waiter] = deque()
        self._closed: str | None = None
        self.started_at = wall()
        self._started_mono = clock()
        self._busy_chip_s = 0.0
        self.total_chips = sum(len(s.chips) for s in slots)
        self.granted = 0

    # ------------------------------------------------------------------ taking and giving back
    def try_acquire(self, lane: str, purpose: str = "benchmark") -> Lease | None:
        """A free slot now, or None (never jumps the queue)."""
        if self._closed is not None or self._queue or not self._free:
            return None
        return self._grant(self._free.pop(0), lane, purpose, waited_s=0.0)

    async def acquire(self, lane: str, purpose: str = "benchmark",
                      on_wait: Callable[[int], None] | None = None) -> Lease:
        """A slot, waiting in line if needed. `on_wait(position)` is called once when the
        caller has to queue (1-based position). Raises LeaseCancelled."""
        if self._closed is not None:
            raise LeaseCancelled(self._closed)
        lease = self.try_acquire(lane, purpose)
        if lease is not None:
            return lease
        waiter = _Waiter(lane, purpose, self._wall(), self._clock(),
                         asyncio.get_running_loop().create_future())
        self._queue.append(waiter)
        if on_wait is not None:
            on_wait(len(self._queue))
        try:
            slot = await waiter.future
        except BaseException:
            if waiter in self._queue:
                self._queue.remove(waiter)
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                # Handed a slot in the same instant the wait was cancelled: pass it on.
                self._give_back(future.result())
            raise
        return self._grant(slot, lane, purpose, waited_s=self._clock() - waiter.since_mono)

    def release(self, lease: Lease) -> float:
        """Give the slot back (idempotent); returns how long it was held."""
        if lease.released:
            return lease.held_s
        lease.released = True
        lease.held_s = self._clock() - lease._acquired_mono
        self._busy_chip_s += lease.held_s * len(lease.slot.chips)
        self._held.pop(lease.slot.index, None)
        self._give_back(lease.slot)
        return lease.held_s

    @contextlib.asynccontextmanager
    async def lease(self, lane: str, purpose: str = "benchmark",
                    on_wait: Callable[[int], None] | None = None) -> AsyncIterator[Lease]:
        lease = await self.acquire(lane, purpose, on_wait)
        try:
            yield lease
        finally:
            self.release(lease)

    def cancel(self, lane: str, reason: str) -> int:
        """Call off every wait of `lane`; returns how many were waiting."""
        dropped = [w for w in self._queue if w.lane == lane]
        for waiter in dropped:
            self._queue.remove(waiter)
            if not waiter.future.done():
                waiter.future.set_exception(LeaseCancelled(reason))
        return len(dropped)

    def close(self, reason: str = "the engine is stopping") -> None:
        """No more leases: every waiter is called off (held leases end with their runs)."""
        self._closed = reason
        for waiter in list(self._queue):
            self.cancel(waiter.lane, reason)

    def _grant(self, slot: Slot, lane: str, purpose: str, waited_s: float) -> Lease:
        lease = Lease(slot, lane, purpose, waited_s, self._wall(), self._clock())
        self._held[slot.index] = lease
        self.granted += 1
        return lease

    def _give_back(self, slot: Slot) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.future.done():
                waiter.future.set_result(slot)
                return
        self._free.append(slot)
        self._free.sort(key=lambda s: s.index)

    # ------------------------------------------------------------------ what is going on
    def queue_position(self, lane: str) -> int | None:
        """1-based place of the lane's first waiter in the queue, or None."""
        for position, waiter in enumerate(self._queue, start=1):
            if waiter.lane == lane:
                return position
        return None

    def lane_status(self, lane: str) -> dict[str, Any] | None:
        """`{"state": "waiting", "position": 2, "since": ts, "text": ...}` or leased, or None."""
        position = self.queue_position(lane)
        if position is not None:
            waiter = self._queue[position - 1]
            return {"state": "waiting", "position": position, "since": waiter.since,
                    "text": f"waiting for device ({ordinal(position)} in queue)"}
        for lease in self._held.values():
            if lease.lane == lane:
                return {"state": "leased", "slot": lease.slot.index, "chips": list(lease.slot.chips),
                        "since": lease.acquired_at, "purpose": lease.purpose,
                        "text": f"on {lease.slot.describe()}"}
        return None

    def busy_share(self) -> float:
        """Leased chip-seconds over all slots' chip-seconds since the engine started."""
        now = self._clock()
        elapsed = now - self._started_mono
        if elapsed <= 0:
            return 0.0
        ongoing = sum((now - lease._acquired_mono) * len(lease.slot.chips) for lease in self._held.values())
        return min(1.0, (self._busy_chip_s + ongoing) / (self.total_chips * elapsed))

    def status(self) -> dict[str, Any]:
        """Plain data for snapshots: slots (leased/free, lane, since), queue, busy share."""
        slots = []
        for slot in self.slots:
            lease = self._held.get(slot.index)
            slots.append({
                "index": slot.index, "chips": list(slot.chips), "platform": slot.platform,
                "state": "leased" if lease else "free",
                "lane": lease.lane if lease else None,
                "purpose": lease.purpose if lease else None,
                "since": lease.acquired_at if lease else None,
            })
        return {
            "slots": slots,
            "queue": [{"lane": w.lane, "purpose": w.purpose, "since": w.since} for w in self._queue],
            "busy_share": round(self.busy_share(), 4),
            "since": self.started_at,
            "leases_granted": self.granted,
        }
