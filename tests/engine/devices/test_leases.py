"""The lease manager: first come first served across lanes, released on every path, cancellable."""

from __future__ import annotations

import asyncio

import pytest

from autoresearch_tui.engine.devices.leases import LeaseCancelled, LeaseManager, ordinal
from autoresearch_tui.engine.devices.slots import Slot


def slots(n: int, chips_each: int = 1) -> list[Slot]:
    return [Slot(i, tuple(range(i * chips_each, (i + 1) * chips_each)), "tpu") for i in range(n)]


async def test_waiters_are_served_in_arrival_order_across_lanes():
    manager = LeaseManager(slots(1))
    first = await manager.acquire("a")
    order: list[str] = []
    positions: dict[str, int] = {}

    async def take(lane: str) -> None:
        async with manager.lease(lane, on_wait=lambda p: positions.__setitem__(lane, p)):
            order.append(lane)
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(take(lane)) for lane in ("b", "c", "a", "d")]
    await asyncio.sleep(0.01)
    assert positions == {"b": 1, "c": 2, "a": 3, "d": 4}
    assert manager.lane_status("c")["text"] == "waiting for device (2nd in queue)"
    assert manager.lane_status("a")["state"] == "waiting"  # its queued run, not its held lease
    # A newcomer never jumps the queue, even at the moment a slot frees up.
    assert manager.try_acquire("e") is None
    manager.release(first)
    await asyncio.gather(*tasks)
    assert order == ["b", "c", "a", "d"]
    assert manager.status()["queue"] == [] and manager.status()["slots"][0]["state"] == "free"


async def test_a_lease_is_released_when_the_run_raises_or_is_cancelled():
    manager = LeaseManager(slots(1))
    with pytest.raises(RuntimeError):
        async with manager.lease("a"):
            raise RuntimeError("the benchmark runner crashed")
    assert manager.status()["slots"][0]["state"] == "free"

    started = asyncio.Event()

    async def hang() -> None:
        async with manager.lease("a"):
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hang())
    await started.wait()
    waiter = asyncio.create_task(manager.acquire("b"))
    await asyncio.sleep(0)
    task.cancel()
    lease = await asyncio.wait_for(waiter, 1)  # handed straight to the next in line
    assert lease.lane == "b" and lease.waited_s > 0


async def test_cancelling_a_lane_takes_only_its_waiters_out_of_the_queue():
    manager = LeaseManager(slots(1))
    held = await manager.acquire("a")
    waiting_b = asyncio.create_task(manager.acquire("b"))
    waiting_c = asyncio.create_task(manager.acquire("c"))
    await asyncio.sleep(0)
    assert manager.cancel("b", "lane b is stopping") == 1
    with pytest.raises(LeaseCancelled, match="lane b is stopping"):
        await waiting_b
    assert manager.lane_status("c")["position"] == 1
    manager.release(held)
    assert (await waiting_c).lane == "c"


async def test_a_cancelled_waiter_that_was_just_handed_a_slot_passes_it_on():
    manager = LeaseManager(slots(1))
    held = await manager.acquire("a")
    waiting_b = asyncio.create_task(manager.acquire("b"))
    waiting_c = asyncio.create_task(manager.acquire("c"))
    await asyncio.sleep(0)
    manager.release(held)  # b's future now holds the slot, b's task has not resumed yet
    waiting_b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting_b
    assert (await asyncio.wait_for(waiting_c, 1)).lane == "c"


async def test_closing_calls_off_every_waiter_and_refuses_new_leases():
    manager = LeaseManager(slots(1))
    held = await manager.acquire("a")
    waiters = [asyncio.create_task(manager.acquire(lane)) for lane in ("b", "c")]
    await asyncio.sleep(0)
    manager.close("the engine is stopping")
    for waiter in waiters:
        with pytest.raises(LeaseCancelled):
            await waiter
    with pytest.raises(LeaseCancelled):
        await manager.acquire("d")
    manager.release(held)
    assert manager.status()["queue"] == []


async def test_two_slots_serve_two_runs_at_once_on_distinct_slots():
    manager = LeaseManager(slots(2, chips_each=4))
    a, b = await manager.acquire("a"), await manager.acquire("b")
    assert {a.slot.index, b.slot.index} == {0, 1}
    assert [s["lane"] for s in manager.status()["slots"]] == ["a", "b"]
    assert manager.lane_status("b") == {"state": "leased", "slot": 1, "chips": [4, 5, 6, 7],
                                        "since": b.acquired_at, "purpose": "benchmark",
                                        "text": "on slot 1 (chips 4,5,6,7)"}


async def test_busy_share_counts_leased_chip_time_over_all_chips():
    now = [0.0]
    manager = LeaseManager(slots(2, chips_each=2), clock=lambda: now[0], wall=lambda: 1000 + now[0])
    lease = await manager.acquire("a")
    now[0] = 10.0
    assert manager.busy_share() == pytest.approx(0.5)  # one of two equal slots, the whole time
    manager.release(lease)
    now[0] = 20.0
    assert manager.busy_share() == pytest.approx(0.25)
    assert manager.status()["busy_share"] == 0.25


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
