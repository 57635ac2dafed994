"""`demo --codex`: the workspace it writes, and how the demo agent's turns reach Codex."""

from __future__ import annotations

from autoresearch_tui.engine.config import load_config
from autoresearch_tui.engine.demo.codex_agent import _translate
from autoresearch_tui.engine.demo.scripted_model import TextBlock, ToolUseBlock
from autoresearch_tui.engine.demo.workspace import create_demo_workspace


def test_the_codex_demo_runs_lane_b_with_codex_beside_a_claude_lane(tmp_path):
    config = load_config(create_demo_workspace(tmp_path / "demo", codex=True))
    assert config.agent.scripted_demo
    assert {lane.name: lane.agent for lane in config.lanes} == {"a": "claude", "b": "codex"}
    assert config.agent.codex.model == "gpt-5.5"
    plain = load_config(create_demo_workspace(tmp_path / "plain"))
    assert {lane.agent for lane in plain.lanes} == {"claude"}


def test_the_demo_agents_tools_become_codex_calls():
    fork = "/ws/lane/.repo/proj"
    [bash] = _translate(ToolUseBlock("Bash", {"command": "git commit -qam x"}), fork)
    assert (bash.name, bash.arguments) == ("exec_command", {"cmd": "git commit -qam x", "workdir": fork})
    [patch] = _translate(ToolUseBlock("Edit", {"file_path": f"{fork}/model.py", "old_string": "a = 1",
                                               "new_string": "a = 2"}), fork)
    assert patch.name == "apply_patch" and "*** Update File: model.py\n@@\n-a = 1\n+a = 2\n" in patch.input
    [tool] = _translate(ToolUseBlock("mcp__autoresearch__record_run", {"status": "keep"}), fork)
    assert (tool.namespace, tool.name, tool.arguments) == ("mcp__autoresearch", "record_run", {"status": "keep"})
    [write] = _translate(ToolUseBlock("Write", {"file_path": "/ws/lane/retrospectives/r.md", "content": "# R"}), fork)
    assert "cat > /ws/lane/retrospectives/r.md <<'AUTORESEARCH_EOF'\n# R\n" in write.arguments["cmd"]
    assert _translate(TextBlock("hello"), fork)[0].text == "hello"
