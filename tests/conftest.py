"""Shared fixtures: the scripted model server and an offline environment for the real CLI.

- ``scripted_model``: a started :class:`ScriptedModelServer` (no script: call
  ``set_script(...)`` / ``add_turns(...)``), stopped after the test. On failure its request
  log is attached to the report ("scripted model requests" section).
- ``cli_home``: a throwaway HOME under tmp_path.
- ``cli_env``: the env dict (``ClaudeAgentOptions(env=cli_env)``) pointing the CLI at
  ``scripted_model`` with ``cli_home`` as HOME and a fake key.
- ``bundled_cli``: the path of the Claude CLI shipped inside claude-agent-sdk.

Tests that run the real CLI or SDK are marked ``@pytest.mark.integration``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer
from autoresearch_tui.engine.demo.scripted_model import cli_env as build_cli_env

_SERVER_KEY = pytest.StashKey[ScriptedModelServer]()


@pytest.fixture
def scripted_model(request: pytest.FixtureRequest) -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer().start()
    request.node.stash[_SERVER_KEY] = server
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def model(scripted_model: ScriptedModelServer) -> ScriptedModelServer:
    """The scripted model under the short name the integration tests use."""
    return scripted_model


@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def cli_env(cli_home: Path, scripted_model: ScriptedModelServer) -> dict[str, str]:
    return build_cli_env(cli_home, scripted_model.base_url)


@pytest.fixture(scope="session")
def bundled_cli() -> Path:
    import claude_agent_sdk

    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    if not path.exists():
        pytest.skip(f"bundled Claude CLI not found at {path}")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    server = item.stash.get(_SERVER_KEY, None)
    if server is not None and report.when == "call" and report.failed:
        report.sections.append(("scripted model requests", server.dump()))
