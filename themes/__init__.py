"""Themes for the TUI: Textual `Theme` objects plus the app's .tcss stylesheet.

Files are located through this package's `__path__`, so they are found after a
non-editable install too. Importing this module imports textual (only the TUI does).
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

THEMES_DIR = Path(__path__[0])  # type: ignore[name-defined]
APP_CSS = THEMES_DIR / "autoresearch.tcss"

AUTORESEARCH_DARK = Theme(
    name="autoresearch-dark",
    primary="#5fafff",
    secondary="#87d7af",
    accent="#ffaf5f",
    warning="#ffd75f",
    error="#ff5f5f",
    success="#87d787",
    foreground="#d7dae0",
    background="#14161b",
    surface="#1b1e25",
    panel="#242833",
    dark=True,
    variables={
        "lane-running": "#87d787",
        "lane-paused": "#ffd75f",
        "lane-attention": "#ff5f5f",
        "lane-stopped": "#8a8f98",
        "scripted-banner": "#ffaf5f",
    },
)

AUTORESEARCH_LIGHT = Theme(
    name="autoresearch-light",
    primary="#005fd7",
    secondary="#008760",
    accent="#af5f00",
    warning="#a06800",
    error="#c01c28",
    success="#267326",
    foreground="#1c1f24",
    background="#f6f7f9",
    surface="#ffffff",
    panel="#e6e9ef",
    dark=False,
    variables={
        "lane-running": "#267326",
        "lane-paused": "#a06800",
        "lane-attention": "#c01c28",
        "lane-stopped": "#6a6f78",
        "scripted-banner": "#af5f00",
    },
)

THEMES = (AUTORESEARCH_DARK, AUTORESEARCH_LIGHT)
DEFAULT_THEME = AUTORESEARCH_DARK.name

THEME_VARIABLE_DEFAULTS = {
    "lane-running": "green",
    "lane-paused": "yellow",
    "lane-attention": "red",
    "lane-stopped": "grey",
    "scripted-banner": "orange",
}
