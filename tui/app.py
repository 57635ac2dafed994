"""The Textual app: themes, keymap, command palette, attention. Screens do the rest."""

from __future__ import annotations

import gc
from functools import partial
from typing import Any, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from autoresearch_tui.engine.config import TuiConfig
from autoresearch_tui.themes import APP_CSS, DEFAULT_THEME, THEME_VARIABLE_DEFAULTS, THEMES
from autoresearch_tui.tui.attention import desktop_notification
from autoresearch_tui.tui.bridge import EngineBridge
from autoresearch_tui.tui.store import Alert, LaneStore
from autoresearch_tui.tui.screens.main import MAIN_BINDINGS, MainScreen


class AutoresearchApp(App[str], inherit_bindings=False):
    """Result of `run()`: "detach" (engine keeps running) or "stop" (engine asked to stop)."""

    CSS_PATH = str(APP_CSS)
    TITLE = "autoresearch-tui"
    ENABLE_COMMAND_PALETTE = True
    # No ctrl+q (closes some terminals) and no ctrl+s (the agent's key); ctrl+c asks like q.
    BINDINGS = [Binding("ctrl+c", "request_quit", "Quit", show=False, system=True, id="ctrl_c_quit")]

    def __init__(self, tui_config: TuiConfig | None = None, bridge: Any | None = None,
                 store: LaneStore | None = None):
        super().__init__()
        self.tui_config = tui_config or TuiConfig()
        self.store = store if store is not None else (bridge.store if bridge is not None else LaneStore())
        self.bridge = bridge
        self.keymap: dict[str, str] = dict(self.tui_config.keys)
        self.attention_log: list[Alert] = []
        """Every alert shown (tests and the bench read it)."""
        self.osc_written: list[str] = []

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_VARIABLE_DEFAULTS)

    def on_mount(self) -> None:
        for theme in THEMES:
            self.register_theme(theme)
        wanted = self.tui_config.theme or DEFAULT_THEME
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            self.theme = DEFAULT_THEME
            self.notify(f"unknown theme {wanted!r}; using {DEFAULT_THEME} "
                        f"(themes: {', '.join(sorted(self.available_themes))})", severity="warning")
        known = {b.id for b in MAIN_BINDINGS if b.id}
        unknown = sorted(set(self.keymap) - known)
        if unknown:
            self.notify(f"[tui.keys]: unknown binding id(s) {', '.join(unknown)}; known: "
                        f"{', '.join(sorted(known))}", severity="warning", markup=False, timeout=10)
        self.set_keymap(self.keymap)
        if self.bridge is not None:
            self.bridge.target = self
        self.push_screen(MainScreen(self.store, self.bridge))
        self.set_timer(3.0, gc.freeze)  # start-up objects leave the GC's young generations

    def on_engine_bridge_lost(self, message: EngineBridge.Lost) -> None:
        main = self.main_screen
        if main is not None:
            main.engine_lost(message.reason)

    @property
    def main_screen(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    # ------------------------------------------------------------------ keys & palette
    def key_for(self, binding: Binding) -> str:
        return self.keymap.get(binding.id or "", binding.key)

    def key_rows(self) -> list[tuple[str, str, str]]:
        """(keys, what, binding id) for the help screen and the README, after remapping."""
        lane_keys = [self.key_for(b) for b in MAIN_BINDINGS if (b.id or "").startswith("lane_")]
        default = [str(n) for n in range(1, 10)]
        rows = [("1–9" if lane_keys == default else " ".join(lane_keys), "Show lane 1–9",
                 "lane_1 … lane_9")]
        for binding in MAIN_BINDINGS:
            if binding.id and not binding.id.startswith("lane_"):
                key = self.key_for(binding).replace("question_mark", "?")
                rows.append((key, binding.tooltip or binding.description, binding.id))
        rows.append(("enter", "Runs tab: the run's diff and log · grid: zoom into the lane", "-"))
        rows.append(("ctrl+p", "Command palette: every action, themes", "-"))
        return rows

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command
        main = self.main_screen
        if main is None:
            return
        for binding in MAIN_BINDINGS:
            if binding.id and binding.id.startswith("lane_") and binding.id != "lane_1":
                continue
            title = binding.description if not binding.id.startswith("lane_") else "Lane 1"
            key = self.key_for(binding).replace("question_mark", "?")
            yield SystemCommand(f"{title} ({key})", binding.tooltip or binding.description,
                                partial(main.run_action, binding.action))
        yield SystemCommand("Dark theme", "autoresearch-dark", partial(setattr, self, "theme", "autoresearch-dark"))
        yield SystemCommand("Light theme", "autoresearch-light", partial(setattr, self, "theme", "autoresearch-light"))

    def action_request_quit(self) -> None:
        main = self.main_screen
        if main is not None and self.screen is main:
            main.action_request_quit()
        else:
            self.exit(result="detach")

    # ------------------------------------------------------------------ attention
    def attention(self, alert: Alert) -> None:
        """A notification, plus bell and desktop notification when configured."""
        self.attention_log.append(alert)
        severity = alert.severity if alert.severity in ("information", "warning", "error") else "warning"
        self.notify(alert.message, title=alert.title, severity=severity, timeout=8, markup=False)
        if alert.lane == "-":
            return
        if self.tui_config.bell:
            self.bell()
        if self.tui_config.desktop_notifications:
            sequence = desktop_notification(f"autoresearch: {alert.title}", alert.message)
            self.osc_written.append(sequence)
            # The driver's writer thread sends whole frames; a sequence queued between two
            # frames never lands inside one (App.bell writes "\a" the same way).
            if not self.is_headless and self._driver is not None:
                self._driver.write(sequence)
