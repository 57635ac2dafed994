"""Terminal bell and desktop notifications (OSC 777 / OSC 9) that reach a laptop over SSH."""

from __future__ import annotations

import os
import re

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f;]")  # C0, DEL, C1 (U+009C ends an OSC too) and ';'


def _safe(text: str, limit: int = 200) -> str:
    return _UNSAFE.sub(" ", text)[:limit]


def desktop_notification(title: str, body: str, env: dict[str, str] | None = None) -> str:
    """The escape sequence for a desktop notification in this terminal.

    OSC 9 for iTerm2 and Windows Terminal (which ignore 777), OSC 777 for the rest (kitty,
    WezTerm, foot, rxvt, Ghostty, VTE). Inside tmux the sequence is wrapped in a DCS
    passthrough (tmux needs `allow-passthrough on`)."""
    env = os.environ if env is None else env
    title, body = _safe(title), _safe(body)
    if env.get("TERM_PROGRAM") == "iTerm.app" or env.get("LC_TERMINAL") == "iTerm2" or env.get("WT_SESSION"):
        sequence = f"\x1b]9;{title}: {body}\x07"
    else:
        sequence = f"\x1b]777;notify;{title};{body}\x1b\\"
    if env.get("TMUX"):
        sequence = "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence
