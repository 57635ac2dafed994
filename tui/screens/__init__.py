"""The TUI's screens and modals, one per module."""

from autoresearch_tui.tui.screens.confirm import ConfirmScreen
from autoresearch_tui.tui.screens.help import HelpScreen
from autoresearch_tui.tui.screens.logs import LogsScreen
from autoresearch_tui.tui.screens.main import MAIN_BINDINGS, MainScreen
from autoresearch_tui.tui.screens.quit import QuitScreen
from autoresearch_tui.tui.screens.run_details import RunDetailsScreen
from autoresearch_tui.tui.screens.text_input import TextInputScreen

__all__ = ["ConfirmScreen", "HelpScreen", "LogsScreen", "MAIN_BINDINGS", "MainScreen", "QuitScreen",
           "RunDetailsScreen", "TextInputScreen"]
