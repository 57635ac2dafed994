"""The main screen: lane list, the selected lane's tabs (or the grid), one-key control."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, TabbedContent

from autoresearch_tui.engine.client import EngineClientError
from autoresearch_tui.engine.core.lane_state import NEEDS_ATTENTION, PAUSED, PAUSING, STOPPED
from autoresearch_tui.engine.core.render import figure
from autoresearch_tui.tui.store import Alert, LaneStore
from autoresearch_tui.tui.screens.confirm import ConfirmScreen
from autoresearch_tui.tui.screens.help import HelpScreen
from autoresearch_tui.tui.screens.logs import LogsScreen
from autoresearch_tui.tui.screens.quit import QuitScreen
from autoresearch_tui.tui.screens.run_details import RunDetailsScreen
from autoresearch_tui.tui.screens.text_input import TextInputScreen
from autoresearch_tui.tui.widgets import (DecisionsTable, EngineHeader, GridPane, LaneCard, LaneGrid, LaneList, LaneSummary,
                         LaneView, ProfileView, RunsTable, TranscriptLog)

FLUSH_HZ = 30
TAB_WIDGETS = {"tab-transcript": "#transcript", "tab-runs": "#runs", "tab-profile": "#profile",
               "tab-decisions": "#decisions"}
"""Each tab's main widget, focused when the tab is shown."""
SNAPSHOT_EVERY_S = 2.0
NARROW_COLUMNS = 100
CARDS_EVERY_S = 0.25

LANE_BINDINGS = [
    Binding(str(n), f"select_lane({n})", f"Lane {n}", show=False, tooltip=f"Show lane {n}", id=f"lane_{n}")
    for n in range(1, 10)
]
MAIN_BINDINGS = [
    *LANE_BINDINGS,
    Binding("tab", "next_lane", "Next lane", show=False, tooltip="Show the next lane", id="next_lane"),
    Binding("t", "next_tab", "Tab", show=False,
            tooltip="Next tab: Transcript, Runs, Profile, Decisions", id="next_tab"),
    # Footer order is priority order: an 80-column terminal shows the first ones, and
    # Detach and Quit must never fall off the end.
    Binding("p", "pause_resume", "Pause", tooltip="Pause or resume the lane's agent (also a stopped lane)",
            id="pause"),
    Binding("r", "retrospective", "Retro", tooltip="Ask the lane's agent for a retrospective now",
            id="retrospective"),
    Binding("m", "merge", "Merge", tooltip="Merge the lane's best kept commit into the main repo",
            id="merge"),
    Binding("s", "stop_lane", "Stop", tooltip="Stop the lane (asks first)", id="stop_lane"),
    Binding("g", "toggle_grid", "Grid", tooltip="Every lane's live transcript side by side", id="grid"),
    Binding("d", "detach", "Detach", tooltip="Leave the UI; the engine keeps running", id="detach"),
    Binding("q", "request_quit", "Quit", tooltip="Detach or stop the engine (asks)", id="quit"),
    Binding("question_mark", "help", "Help", tooltip="Show every key", id="help"),
    Binding("l", "logs", "Logs", tooltip="The lane's full event log, paged, following new events", id="logs"),
    Binding("i", "send_message", "Message", tooltip="Send a message to the lane's agent", id="message"),
    Binding("n", "add_lane", "New lane", tooltip="Add a lane", id="add_lane"),
    Binding("c", "reconnect", "Reconnect", show=False, tooltip="Reconnect to the engine", id="reconnect"),
]


def evidence_text(preview: dict[str, Any]) -> Text:
    """The evidence behind a merge: the confirmation's re-measures, medians and noise band."""
    text = Text()
    evidence = preview.get("evidence")
    noise = preview.get("noise_pct")
    if isinstance(evidence, dict) and evidence.get("candidate_median") is not None:
        def values(key: str) -> str:
            return ", ".join(figure(v, 4) for v in evidence.get(key) or [])

        text.append("\nconfirmed: ", style="bold green")
        text.append(f"re-measures [{values('candidate_values')}] vs the incumbent's "
                    f"[{values('incumbent_values')}], medians {figure(evidence['candidate_median'], 4)} vs "
                    f"{figure(evidence.get('incumbent_median'), 4)}, gain {evidence.get('gain_pct', 0):+.1f}% "
                    f"> noise band {evidence.get('band_pct', 0):.1f}%")
    else:
        text.append("\nnot re-measured (confirmation off when it was kept)", style="yellow")
    if isinstance(noise, (int, float)):
        text.append(f"\nlane noise ±{noise:.1f}% ({preview.get('noise_source')})", style="dim")
    return text


class MainScreen(Screen[None]):
    BINDINGS = MAIN_BINDINGS

    def __init__(self, store: LaneStore, bridge: Any | None):
        super().__init__(id="main")
        self.store = store
        self.bridge = bridge
        self.selected: str | None = None
        self.grid_mode = False
        self._cards_at = 0.0
        self._runs_stale: set[str] = set()
        self._grid_cursor = 0
        self.lines_flushed = 0
        self.flushes = 0

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield EngineHeader(id="header")
        with Horizontal(id="body"):
            yield LaneList(id="lanes")
            with ContentSwitcher(initial="lane-view", id="switcher"):
                yield LaneView(id="lane-view")
                yield LaneGrid(id="grid")
        yield Footer(compact=True)

    def on_resize(self) -> None:
        # Under 100 columns the lane list gives room to the lane view (docs: design for 80).
        self.set_class(self.size.width < NARROW_COLUMNS, "-narrow")

    def on_mount(self) -> None:
        self.on_resize()
        names = self.store.lane_names()
        if names and self.selected is None:
            self.selected = names[0]
        self.refresh_all()
        self.set_interval(1 / FLUSH_HZ, self.flush, name="flush")
        self.set_interval(1.0, self.tick_header, name="header")
        if self.bridge is not None:
            self.set_interval(SNAPSHOT_EVERY_S, self.refresh_snapshot, name="snapshot")
            self.connect()

    # ------------------------------------------------------------------ engine
    @work(exclusive=True, group="connect")
    async def connect(self) -> None:
        header = self.query_one(EngineHeader)
        header.connection = "connecting"
        try:
            selected = await self.bridge.attach(self.selected)
        except (EngineClientError, OSError) as exc:
            if self.closing:
                return
            header.connection = str(exc)
            self.notify(f"cannot reach the engine: {exc}. Press c to reconnect.",
                        title="engine", severity="error", timeout=10)
            return
        if self.closing:
            return
        header.connection = "connected"
        self.selected = selected
        self._runs_stale.update(self.store.lane_names())
        self.refresh_all()

    def engine_lost(self, reason: str) -> None:
        self.query_one(EngineHeader).connection = reason
        self.notify(f"{reason}. Press c to reconnect.", title="engine disconnected", severity="error",
                    timeout=10)

    async def refresh_snapshot(self) -> None:
        if self.bridge is None or not self.bridge.connected:
            return
        try:
            snapshot = (await self.bridge.request("snapshot"))["snapshot"]
        except EngineClientError:
            return
        self.store.set_snapshot(snapshot)
        if not self.closing:
            self.query_one(EngineHeader).show(self.store.snapshot)

    async def refresh_cards(self) -> None:
        """After a lane action: the engine's new snapshot, then the lane cards."""
        await self.refresh_snapshot()
        if not self.closing:
            self.update_cards()

    @property
    def closing(self) -> bool:
        """True once this screen's message loop has ended (the app quits, or the screen closed).
        Textual removes a screen's widgets before it cancels the screen's workers, so a reply
        that lands then has no widget to be shown in: workers check this after each await."""
        return not self.is_running

    async def request(self, op: str, *, title: str, quiet: bool = False, **args: Any) -> dict | None:
        """One engine request; every answer (or refusal) is shown. None when refused, or when the
        screen closed while the request was out."""
        if self.bridge is None:
            self.notify("not connected to an engine", title=title, severity="error")
            return None
        try:
            reply = await self.bridge.request(op, **args)
        except EngineClientError as exc:
            self.notify(str(exc), title=f"{title}: refused", severity="error", timeout=8)
            return None
        if self.closing:
            return None
        if not quiet:
            self.notify(str(reply.get("message") or "done"), title=title)
        return reply

    # ------------------------------------------------------------------ rendering
    def refresh_all(self) -> None:
        self.query_one(EngineHeader).show(self.store.snapshot)
        self.update_cards()
        self.show_lane()
        if self.grid_mode:
            self.query_one(LaneGrid).show(self.store.lanes, self.selected)

    def tick_header(self) -> None:
        self.query_one(EngineHeader).refresh_text()

    def update_cards(self) -> None:
        self._cards_at = time.monotonic()
        self.query_one(LaneList).show(self.store.lanes, self.selected)
        lane = self.store.lanes.get(self.selected or "")
        self.query_one(LaneSummary).show(lane, self.store.snapshot.metric)
        if self.grid_mode:
            self.query_one(LaneGrid).show(self.store.lanes, self.selected)

    def show_lane(self) -> None:
        """Point the lane view at the selected lane (transcript redraws from its feed)."""
        if self.selected is None:
            return
        feed = self.store.feed(self.selected)
        self.query_one("#transcript", TranscriptLog).sync(feed)
        self.query_one(DecisionsTable).sync(feed)
        lane = self.store.lanes.get(self.selected)
        self.query_one(ProfileView).show(lane.metrics.latest_profile if lane else None)
        self.query_one(LaneSummary).show(lane, self.store.snapshot.metric)
        tabs = self.query_one(TabbedContent)
        if tabs.active == "tab-runs":
            self.load_runs(self.selected)
        if self.bridge is not None and not feed.history_loaded and self.bridge.connected:
            self.load_history(self.selected)

    def flush(self) -> None:
        """The one timer that moves buffered output into widgets (~30 times a second)."""
        store = self.store
        self.flushes += 1
        while store.alerts:
            self.app.attention(store.alerts.popleft())
        if store.resync_needed:  # the engine dropped events for this client: re-read it all
            store.resync_needed = False
            self.run_worker(self.refresh_snapshot(), group="snapshot", exclusive=True)
        dirty = store.dirty_lanes
        if dirty and time.monotonic() - self._cards_at >= CARDS_EVERY_S:
            self._runs_stale.update(dirty)
            store.dirty_lanes = set()
            self.update_cards()
            lane = store.lanes.get(self.selected or "")
            self.query_one(ProfileView).show(lane.metrics.latest_profile if lane else None)
            if self.selected in self._runs_stale and self.query_one(TabbedContent).active == "tab-runs":
                self.load_runs(self.selected)
        if self.grid_mode:
            self._flush_grid()
        elif self.selected is not None:
            feed = store.feeds.get(self.selected)
            if feed is not None:
                self.lines_flushed += self.query_one("#transcript", TranscriptLog).sync(feed)
                self.query_one(DecisionsTable).sync(feed)

    def _flush_grid(self) -> None:
        """Each tick flushes about a third of the panes, so each pane updates every ~100 ms
        and a frame repaints only a few panes."""
        panes = list(self.query_one(LaneGrid).panes().values())
        if not panes:
            return
        budget = max(1, math.ceil(len(panes) / 3))
        for _ in range(len(panes)):
            pane = panes[self._grid_cursor % len(panes)]
            self._grid_cursor += 1
            feed = self.store.feeds.get(pane.lane)
            if feed is None or not pane.children:
                continue
            written = pane.log_widget.sync(feed)
            if written:
                self.lines_flushed += written
                budget -= 1
                if budget <= 0:
                    break

    @work(group="history")
    async def load_history(self, lane: str) -> None:
        try:
            await self.bridge.load_history(lane)
        except EngineClientError as exc:
            self.notify(str(exc), title=f"history of {lane}", severity="warning")

    @work(exclusive=True, group="runs")
    async def load_runs(self, lane: str) -> None:
        self._runs_stale.discard(lane)
        if self.bridge is None:
            return
        try:
            reply = await self.bridge.request("ledger", lane=lane)
        except EngineClientError as exc:
            self.notify(str(exc), title="runs", severity="warning")
            return
        if lane == self.selected and not self.closing:
            self.query_one(RunsTable).show_rows(lane, reply.get("rows", []), reply.get("frontier") or {})

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-runs" and self.selected:
            self.load_runs(self.selected)
        # The tab's own widget takes the keys (arrows, Enter on a run), not the tab strip.
        main_widget = TAB_WIDGETS.get(event.pane.id or "")
        if main_widget:
            self.query_one(main_widget).focus()

    # ------------------------------------------------------------------ lane selection
    def select(self, name: str) -> None:
        if name not in self.store.lanes:
            return
        self.selected = name
        self.update_cards()
        if not self.grid_mode:  # the hidden lane view is rebuilt when the grid is left
            self.show_lane()
        elif not isinstance(self.focused, GridPane):
            # Focus only moves into the grid once: every focus change re-lays out the footer's
            # bindings, which made a lane switch in the grid cost ~80 ms. The highlighted pane
            # (-selected) is the selection; Enter zooms into it whichever pane has focus.
            pane = self.query_one(LaneGrid).panes().get(name)
            if pane is not None:
                pane.focus()

    def action_select_lane(self, number: int) -> None:
        names = self.store.lane_names()
        if not 1 <= number <= len(names):
            self.notify(f"there is no lane {number} ({len(names)} lanes)", title="lanes", severity="warning")
            return
        self.select(names[number - 1])

    def action_next_lane(self) -> None:
        names = self.store.lane_names()
        if not names:
            return
        index = names.index(self.selected) if self.selected in names else -1
        self.select(names[(index + 1) % len(names)])

    def on_lane_card_clicked(self, event: LaneCard.Clicked) -> None:
        self.select(event.lane)

    def on_grid_pane_clicked(self, event: GridPane.Clicked) -> None:
        self.select(event.lane)

    def on_grid_pane_zoom(self, event: GridPane.Zoom) -> None:
        self.grid_mode = False
        self.query_one(ContentSwitcher).current = "lane-view"
        self.select(self.selected or event.lane)
        self.query_one("#transcript", TranscriptLog).focus()

    def action_next_tab(self) -> None:
        if self.grid_mode:
            self.action_toggle_grid()
            return
        tabs = self.query_one(TabbedContent)
        order = ["tab-transcript", "tab-runs", "tab-profile", "tab-decisions"]
        tabs.active = order[(order.index(tabs.active) + 1) % len(order)] if tabs.active in order else order[0]

    def action_toggle_grid(self) -> None:
        self.grid_mode = not self.grid_mode
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "grid" if self.grid_mode else "lane-view"
        if self.grid_mode:
            grid = self.query_one(LaneGrid)
            grid.show(self.store.lanes, self.selected)
            self.call_after_refresh(self._after_grid_shown)
            if self.bridge is not None and self.bridge.connected:
                for name in self.store.lane_names():
                    if not self.store.feed(name).history_loaded:
                        self.load_history(name)
        else:
            self.show_lane()
            # Focus leaves the (now hidden) grid pane, so its bindings (⏎ Zoom) leave the footer.
            self.query_one("#transcript", TranscriptLog).focus()

    def _after_grid_shown(self) -> None:
        grid = self.query_one(LaneGrid)
        grid.show(self.store.lanes, self.selected)
        pane = grid.panes().get(self.selected or "")
        if pane is not None:
            pane.focus()

    # ------------------------------------------------------------------ actions
    def _lane_or_refuse(self, what: str) -> str | None:
        if self.selected is None:
            self.notify(f"no lane selected to {what}", severity="warning")
        return self.selected

    @work(group="actions")
    async def action_pause_resume(self) -> None:
        lane = self._lane_or_refuse("pause")
        if lane is None:
            return
        current = self.store.lanes.get(lane)
        # A stopped lane is resumed with p as well (the stop dialog says so).
        op = "resume" if current and current.state in (PAUSED, PAUSING, NEEDS_ATTENTION, STOPPED) else "pause"
        await self.request(op, title=f"{op} lane {lane}", lane=lane)
        await self.refresh_cards()

    @work(group="actions")
    async def action_retrospective(self) -> None:
        lane = self._lane_or_refuse("ask for a retrospective")
        if lane is not None:
            await self.request("retrospective", title=f"retrospective · lane {lane}", lane=lane)

    @work(group="actions")
    async def action_merge(self) -> None:
        lane = self._lane_or_refuse("merge")
        if lane is None:
            return
        preview = await self.request("merge_preview", title=f"merge lane {lane}", quiet=True, lane=lane)
        if preview is None:
            return
        if not preview.get("mergeable"):
            self.notify(f"nothing to merge from lane {lane}: {preview.get('reason', 'not mergeable')}",
                        title="merge refused", severity="warning", timeout=8)
            return
        metric = self.store.snapshot.metric or preview.get("metric_name", "metric")
        body = Text()
        change = preview.get("change_pct")
        body.append(f"{metric}: {preview.get('baseline')} → {preview.get('best')}", style="bold")
        if isinstance(change, (int, float)):
            body.append(f"  ({change:+.1f}% vs baseline)", style="bold green")
        body.append(f"\nbest run {preview.get('best_run')}, commit {str(preview.get('best_commit') or '')[:10]}")
        body.append_text(evidence_text(preview))
        commits = preview.get("commits") or []
        body.append(f"\n\n{len(commits)} commit(s):\n")
        for line in commits[:15]:
            body.append(f"  {line}\n")
        if len(commits) > 15:
            body.append(f"  … {len(commits) - 15} more\n")
        ok = await self.app.push_screen_wait(ConfirmScreen(f"Merge lane {lane}'s best into the main repo?",
                                                           body, yes="Merge"))
        if not ok:
            self.notify("merge cancelled", title=f"merge lane {lane}")
            return
        try:
            reply = await self.bridge.request("merge", lane=lane)
        except EngineClientError as exc:
            self.app.attention(Alert(lane, f"merge of lane {lane} failed", str(exc), "error"))
            return
        result = reply.get("result") or {}
        self.notify(str(result.get("message") or "merged"), title=f"merge lane {lane}", timeout=8)

    @work(group="actions")
    async def action_stop_lane(self) -> None:
        lane = self._lane_or_refuse("stop")
        if lane is None:
            return
        ok = await self.app.push_screen_wait(ConfirmScreen(
            f"Stop lane {lane}?", "The agent's turn is interrupted and its session closed "
            "(resumable later with p). Other lanes keep running.", yes="Stop lane"))
        if not ok:
            self.notify("stop cancelled", title=f"stop lane {lane}")
            return
        self.notify(f"stopping lane {lane}…", title=f"stop lane {lane}")
        await self.request("stop_lane", title=f"stop lane {lane}", lane=lane)
        await self.refresh_cards()

    @work(group="actions")
    async def action_add_lane(self) -> None:
        answer = await self.app.push_screen_wait(TextInputScreen(
            "Add a lane", [("name", "Name (letters, digits, - _ .)", "e.g. c"),
                           ("focus", "Focus (optional guidance for this lane)", "e.g. try remat")]))
        if not answer or not answer.get("name", "").strip():
            self.notify("no lane added", title="add lane")
            return
        name = answer["name"].strip()
        reply = await self.request("add_lane", title=f"add lane {name}", name=name,
                                   focus=answer.get("focus", "").strip())
        if reply is not None:
            await self.refresh_cards()

    @work(group="actions")
    async def action_send_message(self) -> None:
        lane = self._lane_or_refuse("message")
        if lane is None:
            return
        answer = await self.app.push_screen_wait(TextInputScreen(
            f"Message to lane {lane}'s agent", [("text", "Delivered at the agent's next step", "")]))
        text = (answer or {}).get("text", "").strip()
        if not text:
            self.notify("nothing sent", title=f"message to lane {lane}")
            return
        await self.request("send_message", title=f"message to lane {lane}", lane=lane, text=text)

    def action_logs(self) -> None:
        lane = self._lane_or_refuse("show logs of")
        if lane is None:
            return
        if self.bridge is None:
            self.notify("not connected to an engine", severity="error")
            return
        self.app.push_screen(LogsScreen(self.bridge, lane, self.store))

    def action_reconnect(self) -> None:
        if self.bridge is None:
            self.notify("no engine to connect to", severity="error")
            return
        if self.bridge.connected:
            self.notify("already connected to the engine", title="engine")
            return
        self.notify("reconnecting…", title="engine")
        self.connect()

    def action_detach(self) -> None:
        self.app.exit(result="detach")

    @work(group="actions")
    async def action_request_quit(self) -> None:
        choice = await self.app.push_screen_wait(QuitScreen())
        if choice == "detach":
            self.app.exit(result="detach")
        elif choice == "stop":
            reply = await self.request("stop_engine", title="stop engine")
            if reply is not None:
                self.app.exit(result="stop")
        else:
            self.notify("still here", title="quit cancelled")

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.app.key_rows()))

    @on(DataTable.RowSelected, "#runs")
    def _run_selected(self, event: DataTable.RowSelected) -> None:
        if self.selected and event.row_key.value:
            self.open_run(self.selected, str(event.row_key.value))

    @work(group="actions")
    async def open_run(self, lane: str, run_id: str) -> None:
        reply = await self.request("run_details", title=f"run {run_id}", quiet=True, lane=lane, run_id=run_id)
        if reply is not None:
            await self.app.push_screen(RunDetailsScreen(lane, reply))
