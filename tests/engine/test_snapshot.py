"""The engine's snapshot of a lane: what every client shows."""

from __future__ import annotations

from autoresearch_tui.engine.core.lane_state import PAUSED, RUNNING, STOPPED
from autoresearch_tui.engine.core.snapshot import LaneSnapshot, Snapshot
from autoresearch_tui.engine.supervisor import Engine
from tests.support import make_workspace


def test_only_a_running_lane_counts_down_to_its_next_injection(tmp_path):
    """A stopped or paused lane showed "0t/9m42s" ticking down (issue 14.13): nothing is due."""
    engine = Engine(make_workspace(tmp_path, lanes=("a",)))
    lane = engine.lanes["a"]
    for state, counting in ((RUNNING, True), (PAUSED, False), (STOPPED, False)):
        lane.record.state = state
        injection = engine.lane_snapshot("a").next_injection
        assert (injection is not None) == counting, state
        if counting:
            assert set(injection) == {"turns_left", "seconds_left"}


def test_a_snapshot_round_trips_and_tolerates_what_it_does_not_know():
    engine_side = Snapshot.from_dict({"experiment": "e", "lanes": {"a": {"name": "a", "state": "running"}}})
    data = engine_side.to_dict()
    data["lanes"]["a"]["added_by_a_newer_engine"] = {"x": 1}
    data["lanes"]["a"]["counters"]["turns"] = "many"  # a wrong type: the default, not a crash
    again = Snapshot.from_dict(data)
    assert again.lanes["a"].state == "running" and again.lanes["a"].counters.turns == 0
    assert LaneSnapshot.from_dict("not even a dict", "b").name == "b"


def test_the_snapshot_carries_the_devices_and_each_lanes_lease_and_evidence(tmp_path):
    engine = Engine(make_workspace(tmp_path, lanes=("a", "b"), devices='platform = "cpu"\nchips = 2\nslots = 2'))
    data = engine.snapshot()
    devices = data["devices"]
    assert devices["platform"] == "cpu" and [s["chips"] for s in devices["slots"]] == [[0], [1]]
    assert {s["state"] for s in devices["slots"]} == {"free"} and devices["queue"] == []
    assert 0.0 <= devices["busy_share"] <= 1.0
    again = Snapshot.from_dict(data)
    assert again.devices == devices and again.lanes["a"].lease is None
    frontier = again.lanes["a"].frontier
    assert frontier.best_confirmed is False and frontier.claimed_runs == 0 and frontier.unconfirmed == []
