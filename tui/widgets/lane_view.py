"""The selected lane: a summary line and tabs (Transcript, Runs, Profile, Decisions)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import TabbedContent, TabPane

from autoresearch_tui.tui.widgets.decisions_table import DecisionsTable
from autoresearch_tui.tui.widgets.lane_summary import LaneSummary
from autoresearch_tui.tui.widgets.profile_view import ProfileView
from autoresearch_tui.tui.widgets.runs_table import RunsTable
from autoresearch_tui.tui.widgets.transcript import TranscriptLog


class LaneView(Vertical):
    DEFAULT_CSS = """
    LaneView { height: 1fr; }
    LaneView TabbedContent { height: 1fr; }
    LaneView TabPane { padding: 0; height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield LaneSummary(id="lane-summary")
        with TabbedContent(id="lane-tabs", initial="tab-transcript"):
            with TabPane("Transcript", id="tab-transcript"):
                yield TranscriptLog(id="transcript")
            with TabPane("Runs", id="tab-runs"):
                yield RunsTable(id="runs")
            with TabPane("Profile", id="tab-profile"):
                yield ProfileView(id="profile")
            with TabPane("Decisions", id="tab-decisions"):
                yield DecisionsTable(id="decisions")
