"""The engine's pure core: standard library only, shared with the plain-Claude-Code hooks.

Policy, the ledger format and frontier, event types and redaction, lane states and tool
ids, skill text, file and git helpers. Modules here import only the standard library and
each other (relatively), so `hooks/` can load this folder by path under any Python 3.11+
with no virtual environment (see docs/architecture.md, "The core").
"""
