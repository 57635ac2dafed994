"""Snapshots of the main screen, grid, runs, profile and modals, from fixed data (no daemon),
a fixed clock, UTC and a fixed terminal size."""

from __future__ import annotations

import time

import pytest

from tests.tui.support import T0, fixed_app

SIZE = (130, 36)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    from autoresearch_tui.tui.widgets import engine_header

    monkeypatch.setattr(engine_header, "CLOCK", lambda: T0)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def settle(pilot):
    await pilot.pause(0.3)
    await pilot.wait_for_scheduled_animations()


def test_main_screen(snap_compare):
    assert snap_compare(fixed_app(), terminal_size=SIZE, run_before=settle)


def test_grid(snap_compare):
    assert snap_compare(fixed_app(), press=["g"], terminal_size=SIZE, run_before=settle)


def test_runs_tab(snap_compare):
    assert snap_compare(fixed_app(), press=["t"], terminal_size=SIZE, run_before=settle)


def test_profile_tab(snap_compare):
    assert snap_compare(fixed_app(), press=["t", "t"], terminal_size=SIZE, run_before=settle)


def test_merge_modal(snap_compare):
    assert snap_compare(fixed_app(), press=["m"], terminal_size=SIZE, run_before=settle)


def test_light_theme_lane_b(snap_compare):
    assert snap_compare(fixed_app(theme="autoresearch-light"), press=["2"], terminal_size=SIZE,
                        run_before=settle)
