"""The names of the tools the engine gives every agent, and their ids as the agent sees them.

Claude Code names an MCP tool `mcp__<server>__<tool>`; the lane's in-process server is
called "autoresearch".
"""

from __future__ import annotations

TOOL_SERVER_NAME = "autoresearch"
RUN_BENCHMARK, RECORD_RUN, LANE_STATUS = "run_benchmark", "record_run", "lane_status"
TOOL_NAMES = (RUN_BENCHMARK, RECORD_RUN, LANE_STATUS)
TOOL_ID_PREFIX = f"mcp__{TOOL_SERVER_NAME}__"

# Tools whose file argument the write guard checks (Bash cannot be confined this way).
GUARDED_WRITE_TOOLS = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path",
                       "NotebookEdit": "notebook_path"}


def tool_id(name: str) -> str:
    """`run_benchmark` -> `mcp__autoresearch__run_benchmark`."""
    return TOOL_ID_PREFIX + name


def short_tool_name(name: str) -> str:
    """An engine tool's id without its server prefix; other tools unchanged."""
    return name.removeprefix(TOOL_ID_PREFIX)


def is_engine_tool(name: str) -> bool:
    return name.startswith(TOOL_ID_PREFIX) and short_tool_name(name) in TOOL_NAMES
