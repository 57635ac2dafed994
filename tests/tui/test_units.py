"""The TUI's plain parts: ANSI stripping, event formatting, feeds, alerts, OSC sequences,
the Log that keeps repainting once full, themes shipped as package data."""

from __future__ import annotations

from hypothesis import given, strategies as st

from autoresearch_tui.engine.config import TuiConfig
from tests.tui.support import T0, fixed_app, fixed_store, screen_text
from autoresearch_tui.tui.attention import desktop_notification
from autoresearch_tui.engine.core.render import clean, transcript_lines
from autoresearch_tui.engine.core.snapshot import Snapshot
from autoresearch_tui.tui.store import LaneFeed, LaneStore


def test_clean_strips_escapes_and_controls():
    assert clean("\x1b[31mred\x1b[0m \x1b]0;title\x07ok\x1bc\x00\x08") == "red ok"
    assert clean("a\r\nb\tc") == "a\nb    c"


@given(st.text())
def test_clean_never_leaves_an_escape(text):
    assert "\x1b" not in clean(text)
    assert all(ch == "\n" or ord(ch) >= 0x20 for ch in clean(text) if ord(ch) < 0x80 and ch != "\x7f")


def test_transcript_lines_are_single_lines_without_markup_processing():
    lines = transcript_lines({"ts": T0, "lane": "a", "type": "tool_result", "output": "x\n[bold]y[/bold]\x1b[2J"})
    assert all("\n" not in line for line in lines)
    assert lines[-1].endswith("[bold]y[/bold]")
    assert transcript_lines({"ts": T0, "lane": "a", "type": "metric", "kind": "step"}) == []


def test_feed_history_prepend_bumps_generation():
    feed = LaneFeed("a")
    feed.append_event({"ts": T0 + 10, "lane": "a", "type": "assistant_text", "text": "live"})
    feed.prepend_history([{"ts": T0, "lane": "a", "type": "assistant_text", "text": "old"}])
    assert feed.generation == 1 and "old" in feed.lines[0] and "live" in feed.lines[-1]


def test_store_alerts_only_for_live_events():
    store = LaneStore(Snapshot.from_dict({"lanes": {"a": {"name": "a", "state": "running"}}}))
    store.alert_after = T0
    store.ingest({"ts": T0 - 5, "lane": "a", "type": "run_recorded", "new_best": True, "run_id": "1"})
    assert not store.alerts
    store.ingest({"ts": T0 + 1, "lane": "a", "type": "run_recorded", "new_best": True, "run_id": "2",
                  "metric_value": 7.5, "change_pct": -25.0})
    store.ingest({"ts": T0 + 2, "lane": "a", "type": "lane_state", "state": "needs_attention", "reason": "stuck"})
    store.ingest({"ts": T0 + 3, "lane": "a", "type": "merge", "ok": False, "message": "main is dirty"})
    titles = [a.title for a in store.alerts]
    assert titles == ["new best in lane a", "lane a needs attention", "merge of lane a failed"]


def test_store_figures_come_from_the_engines_lane_snapshots_only():
    """The TUI never re-derives a figure: events feed the transcript, snapshots the numbers."""
    store = LaneStore(Snapshot.from_dict({"lanes": {"a": {"name": "a", "state": "running",
                                                          "frontier": {"runs": 3, "best": 7.0}}}}))
    store.ingest({"ts": T0, "lane": "a", "type": "run_recorded", "run_id": "0004", "status": "keep",
                  "metric_value": 5.0, "new_best": True, "best": 5.0})
    store.ingest({"ts": T0, "lane": "a", "type": "lane_state", "state": "paused"})
    assert store.lanes["a"].frontier.runs == 3 and store.lanes["a"].frontier.best == 7.0
    assert store.lanes["a"].state == "running"
    store.ingest({"type": "lane_snapshot", "lane_snapshot": {
        "name": "a", "state": "paused", "frontier": {"runs": 4, "best": 5.0, "best_history": [7.0, 5.0]}}})
    lane = store.lanes["a"]
    assert (lane.state, lane.frontier.runs, lane.frontier.best, lane.frontier.best_history) == \
        ("paused", 4, 5.0, [7.0, 5.0])
    assert "a" in store.dirty_lanes


def test_desktop_notification_sequences():
    assert desktop_notification("t", "b;c\x1b", {}) == "\x1b]777;notify;t;b c \x1b\\"
    assert desktop_notification("t", "b", {"TERM_PROGRAM": "iTerm.app"}) == "\x1b]9;t: b\x07"
    wrapped = desktop_notification("t", "b", {"TMUX": "/tmp/x"})
    assert wrapped.startswith("\x1bPtmux;\x1b\x1b]777") and wrapped.endswith("\x1b\\")


async def test_attention_respects_config():
    for desktop, expected in ((True, 1), (False, 0)):
        app = fixed_app(desktop_notifications=desktop, bell=False)
        async with app.run_test(size=(120, 30)) as pilot:
            app.store.alert_after = 0
            app.store.ingest({"ts": T0 + 100, "lane": "a", "type": "run_recorded", "new_best": True,
                              "run_id": "0009", "metric_value": 7.1, "change_pct": -29.0})
            await pilot.pause(0.2)
            assert [a.title for a in app.attention_log] == ["new best in lane a"]
            assert len(app.osc_written) == expected


async def test_full_log_keeps_repainting_after_dropping_lines():
    from autoresearch_tui.tui.widgets import TranscriptLog

    app = fixed_app()
    async with app.run_test(size=(120, 30)) as pilot:
        log = app.screen.query_one("#transcript", TranscriptLog)
        log.max_lines = 50
        feed = app.store.feed("a")
        for n in range(300):
            feed.lines.append(f"line {n}")
            feed.total += 1
        await shown(pilot, lambda: "line 299" in screen_text(app))
        assert log.line_count == 50 and log.lines[-1] == "line 299"
        for n in range(300, 320):
            feed.lines.append(f"line {n}")
            feed.total += 1
        await shown(pilot, lambda: "line 319" in screen_text(app))


async def shown(pilot, predicate, timeout: float = 15.0) -> None:
    """Wait for what a person would see (a loaded machine paints later, not differently)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not on screen in time:\n" + screen_text(pilot.app)
        await pilot.pause(0.1)


async def test_unknown_theme_falls_back_and_warns():
    """autoresearch.toml refuses an unknown theme (tests/engine/test_config_limits.py); the
    app still falls back for one that gets past it (a theme a later Textual dropped)."""
    from autoresearch_tui.engine.config import TuiConfig
    from autoresearch_tui.tui.app import AutoresearchApp
    from tests.tui.support import FakeBridge, fixed_store

    store = fixed_store()
    app = AutoresearchApp(TuiConfig.model_construct(**{**TuiConfig().__dict__, "theme": "no-such-theme"}),
                          bridge=FakeBridge(store), store=store)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.1)
        assert app.theme == "autoresearch-dark"


def test_themes_are_package_data():
    from autoresearch_tui import themes

    assert themes.APP_CSS.is_file()
    assert {t.name for t in themes.THEMES} == {"autoresearch-dark", "autoresearch-light"}
    assert TuiConfig().theme in {t.name for t in themes.THEMES}


def test_fixed_store_has_every_lane():
    assert fixed_store().lane_names() == ["a", "b", "c", "d"]


def test_attach_explains_when_the_engine_cannot_start(tmp_path, monkeypatch, capsys):
    import argparse

    from autoresearch_tui.cli.common import attach
    from autoresearch_tui.engine.daemon import control
    from autoresearch_tui.engine.daemon.control import DaemonError
    from tests.support import make_workspace

    config = make_workspace(tmp_path)

    def refuse(config, **kwargs):
        raise DaemonError("the engine exited at start (code 1); see engine.log")

    monkeypatch.setattr(control, "spawn_daemon", refuse)
    assert attach(argparse.Namespace(config=str(config.path))) == 1
    assert "cannot start the engine: the engine exited at start" in capsys.readouterr().err


def test_benchmark_output_streams_into_the_transcript():
    from autoresearch_tui.tui.store import transcript_lines

    assert transcript_lines({"ts": 0, "lane": "a", "type": "run_output", "text": "step 1\nstep 2\n"}) == [
        "  ┊ step 1", "  ┊ step 2"]
    finished = transcript_lines({"ts": 0, "lane": "a", "type": "run_finished", "run_id": "0001", "status": "ok",
                                 "seconds": 3.2, "summary": {"step_time_median_s": 0.0053}})
    assert finished[0].endswith("■ run 0001 ok in 3.2s: step_time_ms 5.3")


async def test_transcript_follows_the_tail_across_lane_switches_until_the_user_scrolls_up():
    from textual.app import App, ComposeResult

    from autoresearch_tui.tui.store import LaneFeed
    from autoresearch_tui.tui.widgets.transcript import TranscriptLog

    def feed_with(name: str, start: int, count: int, feed: LaneFeed | None = None) -> LaneFeed:
        feed = feed or LaneFeed(name)
        for i in range(start, start + count):
            feed.append_event({"ts": 1000.0 + i, "lane": name, "type": "assistant_text", "text": f"{name} line {i}"})
        return feed

    class One(App):
        def compose(self) -> ComposeResult:
            yield TranscriptLog(max_lines=300)

    app = One()
    async with app.run_test(size=(80, 20)) as pilot:
        log = app.query_one(TranscriptLog)
        a, b = feed_with("a", 0, 500), feed_with("b", 0, 50)
        for feed in (a, b, a):  # lane switches: clear and rewrite
            log.sync(feed)
            await pilot.pause()
        for chunk in range(5):  # live output keeps arriving, the log is full and prunes
            log.sync(feed_with("a", 500 + chunk * 40, 40, a))
            await pilot.pause()
        assert log.scroll_y == log.max_scroll_y and "a line 699" in log.lines[-1]
        await pilot.press("pageup")  # the user scrolls up to read: the view must stay put
        held = log.scroll_y
        log.sync(feed_with("a", 700, 10, a))
        await pilot.pause()
        assert not log.follow and log.scroll_y <= held
        await pilot.press("end")  # back at the end: following again
        log.sync(feed_with("a", 710, 10, a))
        await pilot.pause()
        await pilot.pause()
        assert log.follow and log.scroll_y == log.max_scroll_y


# ---------------------------------------------------------------- issue 14: what a newcomer hit


async def test_switching_to_the_runs_tab_focuses_the_table_so_arrows_and_enter_work():
    app = fixed_app()
    async with app.run_test(size=(130, 36)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("t")  # Transcript -> Runs
        await pilot.pause(0.3)
        table = app.screen.query_one("#runs")
        assert app.focused is table
        await pilot.press("down", "enter")
        await pilot.pause(0.5)
        assert type(app.screen).__name__ == "RunDetailsScreen"
        assert ("run_details", {"lane": "a", "run_id": "0005"}) in app.bridge.sent


async def test_the_runs_cursor_stays_on_its_run_when_a_new_run_lands():
    from tests.tui.support import LEDGER_ROWS

    app = fixed_app()
    async with app.run_test(size=(130, 36)) as pilot:
        await pilot.pause(0.3)
        table = app.screen.query_one("#runs")
        table.show_rows("a", LEDGER_ROWS, {"baseline": 10.0, "best_run": "0006"})
        table.move_cursor(row=table.get_row_index("0003"))
        newer = {**LEDGER_ROWS[-1], "run_id": "0007", "description": "one more"}
        table.show_rows("a", [*LEDGER_ROWS, newer], {"baseline": 10.0, "best_run": "0006"})
        await pilot.pause(0.1)
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "0003"


async def test_leaving_the_grid_takes_zoom_out_of_the_footer():
    app = fixed_app()
    async with app.run_test(size=(130, 36)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("g")
        await shown(pilot, lambda: "Zoom" in screen_text(app).splitlines()[-1])
        await pilot.press("g")
        await shown(pilot, lambda: "Zoom" not in screen_text(app).splitlines()[-1] and "Quit" in screen_text(app))


async def test_the_logs_view_follows_new_events():
    app = fixed_app()
    async with app.run_test(size=(130, 36)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("l")
        await pilot.pause(0.5)
        await shown(pilot, lambda: "following new events" in screen_text(app))
        app.store.ingest({"ts": T0 + 100, "lane": "a", "type": "warning", "where": "x",
                          "message": "a brand new event"})
        await shown(pilot, lambda: "a brand new event" in screen_text(app))


def test_the_sparkline_keeps_the_recent_stretch_readable_after_one_huge_baseline():
    from autoresearch_tui.tui.widgets.lane_card import sparkline_points

    history = [1000.0] + [10.0 - 0.05 * i for i in range(80)]  # -95% early, then slow gains
    points = sparkline_points(history, "minimize")
    recent = points[-20:]
    spread = (max(points) - min(points)) or 1.0
    # The last 20 runs improved 10%: they must span a visible share of the bar heights.
    assert (max(recent) - min(recent)) / spread > 0.2
    assert points == sorted(points)  # a minimized metric's running best only rises in the chart


async def test_an_80_column_terminal_keeps_the_header_whole_and_detach_quit_in_the_footer():
    app = fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot, lambda: "Quit" in screen_text(app))
        lines = screen_text(app).splitlines()
        header, footer = lines[0].rstrip(), lines[-1]
        assert not header.endswith("│") and "engine running" in header
        assert "Detach" in footer and "Quit" in footer and "Help" in footer


def test_the_engines_tool_answers_are_one_readable_line_with_the_json_in_the_logs():
    import json as json_module

    from autoresearch_tui.tui.screens.logs import log_lines

    answer = {"run_id": "0007", "status": "keep", "metric": 7.9, "metric_name": "step_time_ms",
              "best": 7.9, "best_run": "0007", "new_best": True, "within_noise": False,
              "delta_vs_baseline_pct": -21.0, "runs": 7, "counts": {"keep": 7}}
    event = {"ts": T0, "lane": "a", "type": "tool_result", "tool": "mcp__autoresearch__record_run",
             "output": json_module.dumps(answer, indent=1)}
    lines = transcript_lines(event)
    assert len(lines) == 1
    assert "record_run: run 0007 keep · step_time_ms 7.9 · -21.0% vs baseline · NEW BEST" in lines[0]
    full = log_lines(event)
    assert len(full) > 5 and any('"delta_vs_baseline_pct": -21.0' in line for line in full)
    other = {**event, "tool": "Bash", "output": "plain output"}
    assert transcript_lines(other)[1] == "  │ plain output"


def test_a_lane_card_and_status_say_why_a_lane_needs_attention():
    from autoresearch_tui.cli.status import status_lines
    from autoresearch_tui.tui.widgets.lane_card import lane_text

    reason = "5 failures in a row: SessionError: the session ended with an error (HTTP 401): invalid x-api-key"
    lane = Snapshot.from_dict({"lanes": {"a": {"name": "a", "state": "needs_attention",
                                               "needs_attention_reason": reason}}}).lanes["a"]
    assert reason in " ".join(lane_text(lane, 1).plain.split())
    lines = status_lines({"lanes": {"a": lane.to_dict()}, "metric": "step_time_ms"})
    assert any("why:" in line and "invalid x-api-key" in line for line in lines)


async def test_a_lane_waiting_for_the_device_is_shown_apart_from_a_running_one_and_the_header_has_busy_share(
        monkeypatch):
    from autoresearch_tui.tui.widgets import engine_header

    app = fixed_app(bell=False, desktop_notifications=False)
    snapshot = app.store.snapshot
    snapshot.lanes["b"].state = "running"
    snapshot.devices = {"platform": "tpu", "chips": 8, "busy_share": 0.634, "queue": [{"lane": "b"}],
                           "slots": [{"index": 0, "chips": [0, 1, 2, 3], "state": "leased", "lane": "a"},
                                     {"index": 1, "chips": [4, 5, 6, 7], "state": "leased", "lane": "c"}]}
    monkeypatch.setattr(engine_header, "CLOCK", lambda: T0)

    async def shows(pilot, *needles: str) -> str:
        for _ in range(100):  # the lane list is flushed on a timer: wait for it, not a fixed time
            text = screen_text(app)
            if all(n in text for n in needles):
                return text
            await pilot.pause(0.05)
        raise AssertionError(f"{needles} not on screen:\n{text}")

    async with app.run_test(size=(160, 40)) as pilot:
        waiting = {**snapshot.lanes["b"].to_dict(), "lease": {
            "state": "waiting", "position": 2, "text": "waiting for device (2nd in queue)"}}
        app.store.ingest({"type": "lane_snapshot", "lane_snapshot": waiting})  # pushed by the engine
        text = await shows(pilot, "⧗ waiting   b", "2nd in the device queue")  # the lane list
        assert "● running   a" in text  # the running lane keeps its own look
        assert "device tpu busy 63% (2/2 slots, 1 queued)" in text  # the header
        await pilot.press("2")  # the selected lane's summary says it in full
        await shows(pilot, "lane b  codex gpt-5.5  ⧗ waiting (waiting for device (2nd in queue))")
        leased = {**waiting, "lease": {"state": "leased", "slot": 1, "text": "on slot 1 (chips 4,5,6,7)"}}
        app.store.ingest({"type": "lane_snapshot", "lane_snapshot": leased})
        text = await shows(pilot, "● running   b")
        assert "⧗ waiting" not in text


def test_a_lane_retrying_the_api_says_so_on_its_card_until_the_api_answers():
    from autoresearch_tui.engine.core.snapshot import LaneSnapshot
    from autoresearch_tui.tui.widgets.lane_card import lane_text

    retrying = LaneSnapshot.from_dict({"name": "a", "state": "running", "api_retry": {
        "attempt": 2, "max_retries": 10, "delay_s": 1.2,
        "message": "retrying the API (attempt 2/10, next in 1.2s): overloaded (HTTP 529)"}})
    assert "↻ retrying the API (attempt 2/10, next in 1.2s)" in lane_text(retrying, 1).plain
    answered = LaneSnapshot.from_dict({"name": "a", "state": "running", "api_retry": None})
    assert "retrying" not in lane_text(answered, 1).plain


async def test_the_runs_tab_shows_the_evidence_and_folds_confirmations_under_their_candidate():
    def row(run_id, status, metric, description, **extra):
        return {"run_id": run_id, "ts": "2026-05-28T20:00:00Z", "commit": f"{run_id}abcdef", "metric": metric,
                "status": status, "description": description, "source": "measured", "kind": "", **extra}

    confirmed = {"confirmation": {"state": "confirmed"}}
    rows = [
        row("0001", "keep", 10.0, "baseline"),
        row("0002", "keep", 9.9, "tiny gain", verdict={"within_noise": True}),
        row("0003", "keep", 8.0, "lucky", verdict={"confirmation": {"state": "rejected"}}),
        row("0004", "repeat", 10.1, "re-measure", kind="confirmation", confirms="0003", role="candidate"),
        row("0005", "keep", 7.0, "real", verdict=confirmed),
        row("0006", "repeat", 7.1, "re-measure", kind="confirmation", confirms="0005", role="candidate"),
        row("0007", "repeat", 10.0, "re-measure", kind="confirmation", confirms="0005", role="incumbent"),
        row("0008", "keep", 1.0, "trust me", source="claimed", verdict={"unverified": True}),
        row("0009", "keep", 6.0, "stopped midway", verdict={"confirmation": {"state": "unconfirmed"}}),
    ]
    app = fixed_app()
    async with app.run_test(size=(150, 36)) as pilot:
        await pilot.pause(0.3)
        table = app.screen.query_one("#runs")
        table.show_rows("a", rows, {"baseline": 10.0, "best_run": "0005"})
        shown = [[str(table.get_cell_at((i, c))) for c in (0, 5)] for i in range(table.row_count)]
    assert shown == [
        ["0009", "? unconfirmed"], ["0008", "claimed ⚠ unverified"], ["0005 ★", "✓ confirmed"],
        ["  └ 0006", "re-measure (candidate)"], ["  └ 0007", "re-measure (incumbent)"],
        ["0003", "✗ not confirmed"], ["  └ 0004", "re-measure (candidate)"],
        ["0002", "measured ≈ within noise"], ["0001", "measured"],
    ]


def test_confirmations_checks_and_ignored_claims_read_as_lines_with_their_numbers():
    """The evidence events in the transcript, the logs and the Decisions tab (issue 12 item 5:
    the verdict carries the numbers), and a custom metric on a finished run's line."""
    from autoresearch_tui.engine.core.render import event_detail
    from autoresearch_tui.tui.store import LaneFeed

    verdict = {"ts": T0, "lane": "a", "type": "confirmation", "phase": "finished", "run_id": "0005",
               "state": "rejected", "candidate_values": [10.1, 9.9], "incumbent_values": [10.0, 10.05],
               "incumbent_run": "0001", "gain_pct": -0.25, "band_pct": 1.4, "reason": "gain within noise"}
    line = transcript_lines(verdict)
    assert len(line) == 1 and line[0].endswith(
        "run 0005 REJECTED: re-measures [10.1, 9.9] vs run 0001 [10, 10.05], gain -0.25% vs noise band "
        "1.40% (gain within noise)")
    claim = {"ts": T0, "lane": "a", "type": "claim_ignored", "run_id": "0003", "claimed": 99, "measured": 30.5}
    assert event_detail(claim) == "run 0003: the agent's number 99 ignored, the engine measured 30.5"
    failed = {"ts": T0, "lane": "a", "type": "check_finished", "run_id": "0004", "passed": False,
              "status": "crash", "exit_code": 1}
    assert transcript_lines(failed)[0].endswith("run 0004: correctness check FAILED (crash, exit 1)")
    finished = {"ts": T0, "lane": "a", "type": "run_finished", "run_id": "0002", "status": "ok", "seconds": 2.0,
                "exit_code": 0, "summary": {"score": 41.0}, "metric": "score", "value": 41.0}
    assert transcript_lines(finished)[0].endswith("■ run 0002 ok in 2.0s: score 41")
    buffer = LaneFeed("a")
    started = {**verdict, "phase": "started"}
    passed = {**failed, "passed": True, "status": "ok"}
    for event in (started, verdict, passed, failed, claim):
        buffer.append_event(event)
    assert [what for _, what, _ in buffer.decisions] == ["confirmation: rejected", "check failed"]
