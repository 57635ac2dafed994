"""Standalone Claude Code command hooks for autoresearch loops run in a plain `claude` session.

Installed by `autoresearch-tui install-hooks` into a repo's `.claude/settings.local.json`
as `<python> <path>/hooks/<script>.py --root <repo>`:

- ``prompt_hook.py``  (UserPromptSubmit): `/start-experiment` arms the session (writes its
  marker), `/stop-experiment` authorizes its stop.
- ``stop_hook.py``    (Stop): applies engine/policy.py's stop policy to armed sessions only.
- ``reinject_hook.py`` (PostToolUse, PreCompact): re-injects the loop program on schedule.

The scripts need Python 3.11+ and the standard library only (plus engine/policy.py, loaded
by file path, itself stdlib-only). They never crash on bad input: they allow and log.
"""
