"""The TUI's widgets, one per module."""

from tui.widgets.decisions_table import DecisionsTable
from tui.widgets.engine_header import EngineHeader
from tui.widgets.grid_pane import GridPane
from tui.widgets.lane_card import LaneCard
from tui.widgets.lane_grid import LaneGrid
from tui.widgets.lane_list import LaneList
from tui.widgets.lane_summary import LaneSummary
from tui.widgets.lane_view import LaneView
from tui.widgets.profile_view import ProfileView
from tui.widgets.runs_table import RunsTable
from tui.widgets.transcript import TranscriptLog

__all__ = [
    "DecisionsTable", "EngineHeader", "GridPane", "LaneCard", "LaneGrid", "LaneList",
    "LaneSummary", "LaneView", "ProfileView", "RunsTable", "TranscriptLog",
]
