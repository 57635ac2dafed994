"""The TUI's widgets, one per module."""

from autoresearch_tui.tui.widgets.decisions_table import DecisionsTable
from autoresearch_tui.tui.widgets.engine_header import EngineHeader
from autoresearch_tui.tui.widgets.grid_pane import GridPane
from autoresearch_tui.tui.widgets.lane_card import LaneCard
from autoresearch_tui.tui.widgets.lane_grid import LaneGrid
from autoresearch_tui.tui.widgets.lane_list import LaneList
from autoresearch_tui.tui.widgets.lane_summary import LaneSummary
from autoresearch_tui.tui.widgets.lane_view import LaneView
from autoresearch_tui.tui.widgets.profile_view import ProfileView
from autoresearch_tui.tui.widgets.runs_table import RunsTable
from autoresearch_tui.tui.widgets.transcript import TranscriptLog

__all__ = [
    "DecisionsTable", "EngineHeader", "GridPane", "LaneCard", "LaneGrid", "LaneList",
    "LaneSummary", "LaneView", "ProfileView", "RunsTable", "TranscriptLog",
]
