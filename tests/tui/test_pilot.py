"""The TUI against a real engine daemon driven by the scripted model: every key and what
the user sees after it. One daemon serves the whole module (tests run in file order; the
last one stops the engine from the quit dialog)."""

from __future__ import annotations

import asyncio
import time

import pytest

from autoresearch_tui.engine.config import TuiConfig
from autoresearch_tui.engine.daemon.control import running_pid
from autoresearch_tui.engine.protocol import socket_path
from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer
from autoresearch_tui.engine.workspace import Workspace
from tests.support import git, make_workspace
from tests.tui.support import BENCH, WorkingAgent, screen_text, start_daemon, stop_daemon
from autoresearch_tui.tui.app import AutoresearchApp
from autoresearch_tui.tui.bridge import EngineBridge
from autoresearch_tui.tui.store import LaneStore
from autoresearch_tui.tui.screens import (ConfirmScreen, HelpScreen, LogsScreen, QuitScreen, RunDetailsScreen,
                         TextInputScreen)
from autoresearch_tui.tui.widgets import EngineHeader, GridPane, LaneGrid, RunsTable, TranscriptLog

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # a hang guard, not a speed test
SIZE = (130, 40)


@pytest.fixture(scope="module")
def engine_ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("tui-ws")
    config = make_workspace(root, lanes=("a", "b"), repo_files={"bench.py": BENCH},
                            loop="retrospective_every_stops = 2")
    server = ScriptedModelServer(script=WorkingAgent(0.25)).start()
    try:
        start_daemon(config, root / "home", server)
        yield config
    finally:
        stop_daemon(config)
        server.stop()


class RecordingApp(AutoresearchApp):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.notes: list[tuple[str, str, str]] = []

    def notify(self, message, *, title="", severity="information", **kwargs):
        self.notes.append((str(title), str(message), severity))
        return super().notify(message, title=title, severity=severity, **kwargs)

    def noted(self, needle: str) -> bool:
        return any(needle in title or needle in message for title, message, _ in self.notes)


def make_app(config, **tui) -> RecordingApp:
    store = LaneStore()
    bridge = EngineBridge(socket_path(Workspace(config).root), store)
    return RecordingApp(TuiConfig(**tui), bridge=bridge, store=store)


async def until(pilot, predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            notes = getattr(pilot.app, "notes", [])[-5:]
            raise AssertionError(f"timed out waiting for {what}\nlast notifications: {notes}\n"
                                 f"{screen_text(pilot.app)}")
        await pilot.pause(0.05)


async def attached(pilot):
    app = pilot.app
    await until(pilot, lambda: app.main_screen is not None
                and app.main_screen.query_one(EngineHeader).connection == "connected", what="connected")
    return app.main_screen


async def test_attach_shows_lanes_header_and_live_transcript(engine_ws):
    app = make_app(engine_ws)
    async with app.run_test(size=SIZE) as pilot:
        main = await attached(pilot)
        await until(pilot, lambda: "agent:" in screen_text(app), what="agent text in the transcript")
        text = screen_text(app)
        assert "exp (step_time_ms" in text and "engine running" in text and "pid " in text
        assert "a" in main.store.lanes and "b" in main.store.lanes
        assert "lane a" in text and "next injection in" in text and "stops blocked" in text
        transcript = main.query_one("#transcript", TranscriptLog)
        before = transcript.line_count
        await until(pilot, lambda: transcript.line_count > before, what="the transcript to grow live")
        assert "\x1b" not in "\n".join(transcript.lines)  # ANSI from the benchmark was stripped


async def test_lane_keys_tab_and_grid_zoom(engine_ws):
    app = make_app(engine_ws)
    async with app.run_test(size=SIZE) as pilot:
        main = await attached(pilot)
        await pilot.press("2")
        assert main.selected == "b"
        await until(pilot, lambda: "lane b" in screen_text(app), what="lane b's view")
        await pilot.press("tab")
        assert main.selected == "a"
        await pilot.press("9")
        await until(pilot, lambda: app.noted("no lane 9"), what="a refusal for lane 9")
        await pilot.press("g")
        await until(pilot, lambda: len(main.query(GridPane)) == 2, what="two grid panes")
        assert main.query_one("#switcher").current == "grid"
        await until(pilot, lambda: all(p.log_widget.line_count > 0 for p in main.query(GridPane)),
                    what="both panes streaming")
        await pilot.press("2")
        panes = main.query_one(LaneGrid).panes()
        assert panes["b"].has_class("-selected") and not panes["a"].has_class("-selected")
        await pilot.press("enter")  # zooms into the highlighted lane
        assert main.query_one("#switcher").current == "lane-view" and main.selected == "b"


async def test_pause_resume_retrospective_and_message(engine_ws):
    app = make_app(engine_ws)
    async with app.run_test(size=SIZE) as pilot:
        main = await attached(pilot)
        await pilot.press("1")
        await pilot.press("p")
        await until(pilot, lambda: main.store.lanes["a"].state in ("paused", "pausing"), what="paused")
        assert app.noted("pause lane a")
        await until(pilot, lambda: "paused" in screen_text(app) or "pausing" in screen_text(app), what="state word")
        await pilot.press("p")
        await until(pilot, lambda: main.store.lanes["a"].state == "running", what="resumed")
        assert app.noted("resumed")
        await pilot.press("r")
        await until(pilot, lambda: app.noted("retrospective queued"), what="retrospective answer")
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, TextInputScreen), what="message dialog")
        await pilot.press(*"try bf16", "enter")
        await until(pilot, lambda: app.noted("message queued"), what="message answer")
        await pilot.press("t", "t", "t")  # Decisions tab
        await until(pilot, lambda: "message queued" in screen_text(app) and "retrospective" in screen_text(app),
                    what="decisions rows")


async def test_runs_tab_enter_opens_diff_and_log(engine_ws):
    app = make_app(engine_ws)
    async with app.run_test(size=SIZE) as pilot:
        main = await attached(pilot)
        await pilot.press("t")
        table = main.query_one(RunsTable)
        await until(pilot, lambda: table.row_count >= 2, timeout=30, what="ledger rows")
        table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailsScreen), what="run details")
        await until(pilot, lambda: "── diff" in screen_text(app) and "run.log" in screen_text(app), what="diff and log")
        await pilot.press("escape")
        assert app.screen is main


async def until_removed(screen, widget_type) -> None:
    """Wait until `widget_type` has left `screen` as the screen closes. Once the screen has
    stopped, look on every turn of the event loop: its workers are cancelled a few turns after
    its last widget goes, and the reply must land in between."""
    while screen.is_running:
        await asyncio.sleep(0.001)
    while screen.query(widget_type):
        await asyncio.sleep(0)

async def test_reply_that_lands_while_quitting_is_dropped(engine_ws):
    """A ledger reply that lands after quitting began finds the runs table already removed (Textual
    removes a screen's widgets before it cancels the screen's workers): it must be dropped, not
    end the app with a NoMatches traceback. The reply is real; the test only holds it back until
    the runs table has left the screen."""
    app = make_app(engine_ws)
    real_request = app.bridge.request
    held: list[bool] = []  # one per ledger request: True once let go with the table gone

    async def held_back(op, **args):
        reply = await real_request(op, **args)
        if op == "ledger":
            held.append(False)
            await until_removed(app.main_screen, RunsTable)
            held[-1] = True
        return reply

    app.bridge.request = held_back
    async with app.run_test(size=SIZE) as pilot:
        main = await attached(pilot)
        await pilot.press("t")  # the Runs tab asks for the ledger
        await until(pilot, lambda: held, what="a ledger request in flight")
        await pilot.press("t")  # off the Runs tab, so no newer request replaces the held one
        assert main.query_one(RunsTable).row_count == 0
    assert held[-1] is True, "the held reply was cancelled before the runs table left"


async def test_logs_page_that_lands_after_escape_is_dropped(engine_ws):
    """The same race on the logs view: Esc closes it while a page is out, and the page lands
    after its Log has gone. The reply is real; the test holds it back until the Log has left."""
    from textual.widgets import Log

    app = make_app(engine_ws)
    real_request = app.bridge.request
    held: list[bool] = []

    async def held_back(op, **args):
        screen = app.screen
        reply = await real_request(op, **args)
        if op == "history" and isinstance(screen, LogsScreen):
            held.append(False)
            await until_removed(screen, Log)
            held[-1] = True
        return reply

    app.bridge.request = held_back
    async with app.run_test(size=SIZE) as pilot:
        await attached(pilot)
        await pilot.press("l")
        await until(pilot, lambda: held, what="a page of logs in flight")
        await pilot.press("escape")
        await until(pilot, lambda: held[-1], what="the page let go after the view closed")
        await pilot.pause(0.2)
        assert app.screen is app.main_screen and app.is_running

async def test_logs_view_pages_history(engine_ws):
    app = make_app(engine_ws)
    async with app.run_test(size=SIZE) as pilot:
        await attached(pilot)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen), what="logs view")
        await until(pilot, lambda: "full logs:" in screen_text(app), what="logs loaded")
        # The view follows: the agent's next steps show up in it while it is open.
        await until(pilot, lambda: "assistant_text" in screen_text(app) or "tool_use" in screen_text(app),
                    what="the agent's events in the logs view")
        await pilot.press("o")
        await until(pilot, lambda: app.noted("no older events") or "full logs:" in screen_text(app), what="older page")
        await pilot.press("escape")
        assert app.screen is app.main_screen


async def test_merge_confirm_then_refusal_alerts(engine_ws):
    app = make_app(engine_ws)
    async with app.run_test(size=SIZE) as pilot:
        main = await attached(pilot)
        frontier = lambda: main.store.lanes["a"].frontier  # noqa: E731
        await until(pilot, lambda: frontier().best_run not in (None, frontier().baseline_run), timeout=40,
                    what="a kept run in lane a that beats its baseline")
        await pilot.press("1", "m")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=20, what="merge confirmation")
        await until(pilot, lambda: all(s in screen_text(app) for s in ("step_time_ms", "vs baseline", "commit(s)")),
                    what="the merge evidence in the dialog")
        await pilot.press("n")
        await until(pilot, lambda: app.noted("merge cancelled"), what="cancel answer")
        # A dirty main repo: the engine refuses, the UI alerts (notification + bell + OSC).
        repo = engine_ws.repo_path
        (repo / "bench.py").write_text((repo / "bench.py").read_text() + "# local edit\n")
        try:
            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="merge confirmation")
            await pilot.press("y")
            await until(pilot, lambda: any("merge of lane a failed" in a.title for a in app.attention_log),
                        timeout=30, what="failed merge alert")
            assert any("777;notify" in s for s in app.osc_written)
        finally:
            git(repo, "checkout", "--", "bench.py")
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="merge confirmation")
        await pilot.press("y")
        await until(pilot, lambda: app.noted("merge lane a") and any(
            "merge lane a" == t and "fail" not in m.lower() for t, m, _ in app.notes), timeout=30, what="merged")


async def test_add_lane_and_stop_lane(engine_ws):
    app = make_app(engine_ws)
    async with app.run_test(size=SIZE) as pilot:
        main = await attached(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, TextInputScreen), what="add lane dialog")
        await pilot.press("c", "enter", *"look at remat", "enter")
        await until(pilot, lambda: app.noted("lane c added"), what="lane added answer")
        await until(pilot, lambda: "c" in main.store.lanes, what="lane c in the list")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, TextInputScreen), what="add lane dialog")
        await pilot.press("c", "enter", "enter")
        await until(pilot, lambda: app.noted("already exists"), what="refusal for a duplicate lane")
        await pilot.press("3", "s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="stop confirmation")
        await pilot.press("y")
        await until(pilot, lambda: main.store.lanes["c"].state == "stopped", timeout=30, what="lane c stopped")
        assert app.noted("lane c stopped")
        # The stop dialog says "resumable later with p": p resumes a stopped lane (issue 14.1).
        await pilot.press("p")
        await until(pilot, lambda: app.noted("lane c resumed"), what="lane c resumed answer")
        await until(pilot, lambda: main.store.lanes["c"].state == "running", timeout=30, what="lane c running")


async def test_help_palette_and_remapped_keys(engine_ws):
    app = make_app(engine_ws, keys={"grid": "v", "detach": "x"}, theme="autoresearch-light")
    async with app.run_test(size=SIZE) as pilot:
        main = await attached(pilot)
        assert app.theme == "autoresearch-light"
        await pilot.press("g")
        await pilot.pause(0.1)
        assert not main.grid_mode
        await pilot.press("v")
        assert main.grid_mode
        await pilot.press("v", "question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        text = screen_text(app)
        assert "detach" in text and " x " in text and "retrospective" in text
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for expected in ("Grid (v)", "Merge (m)", "Detach (x)", "Pause (p)", "Light theme"):
            assert expected in titles
        assert not any(t == "Quit" for t in titles)
        await pilot.press("x")
    assert app.return_value == "detach"


async def test_connection_drop_shows_and_reconnects(engine_ws):
    app = make_app(engine_ws)
    async with app.run_test(size=SIZE) as pilot:
        main = await attached(pilot)
        app.bridge.client._writer.close()  # the socket drops under the UI
        await until(pilot, lambda: "DISCONNECTED" in screen_text(app), what="disconnected header")
        await pilot.press("c")
        await until(pilot, lambda: main.query_one(EngineHeader).connection == "connected", what="reconnected")
        assert app.noted("reconnecting")


async def test_detach_keeps_engine_and_quit_dialog(engine_ws):
    app = make_app(engine_ws)
    async with app.run_test(size=SIZE) as pilot:
        await attached(pilot)
        await pilot.press("d")
    assert app.return_value == "detach", app.notes
    assert running_pid(Workspace(engine_ws))
    app = make_app(engine_ws)
    async with app.run_test(size=SIZE) as pilot:
        await attached(pilot)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), what="quit dialog")
        await pilot.press("escape")
        await until(pilot, lambda: app.noted("quit cancelled"), what="cancel answer")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), what="quit dialog")
        await pilot.press("s")
    assert app.return_value == "stop", app.notes
    deadline = time.monotonic() + 60
    while running_pid(Workspace(engine_ws)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not running_pid(Workspace(engine_ws))
