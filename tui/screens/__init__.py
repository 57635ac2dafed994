"""The TUI's screens and modals, one per module."""

from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.logs import LogsScreen
from tui.screens.main import MAIN_BINDINGS, MainScreen
from tui.screens.quit import QuitScreen
from tui.screens.run_details import RunDetailsScreen
from tui.screens.text_input import TextInputScreen

__all__ = ["ConfirmScreen", "HelpScreen", "LogsScreen", "MAIN_BINDINGS", "MainScreen", "QuitScreen",
           "RunDetailsScreen", "TextInputScreen"]
