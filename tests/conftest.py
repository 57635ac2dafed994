"""Shared fixtures: the scripted model server and an offline environment for the real CLI.

- ``scripted_model``: a started :class:`ScriptedModelServer` (no script: call
  ``set_script(...)`` / ``add_turns(...)``), stopped after the test. On failure its request
  log is attached to the report ("scripted model requests" section).
- ``cli_home``: a throwaway HOME under tmp_path.
- ``cli_env``: the env dict (``ClaudeAgentOptions(env=cli_env)``) pointing the CLI at
  ``scripted_model`` with ``cli_home`` as HOME and a fake key.
- ``bundled_cli``: the path of the Claude CLI shipped inside claude-agent-sdk.

Tests that run the real CLI or SDK are marked ``@pytest.mark.integration``.

Tests marked ``@pytest.mark.codex`` run the real Codex CLI, which reaches out to the network
unless told not to: each one is re-run in a pytest of its own inside a network namespace it
creates (``unshare -n``, then ``ip link set lo up``), where only loopback exists. The
``codex_bin`` fixture skips them when the CLI is not installed (``npm ci`` at the
repository root installs the pinned version), and fails them instead when
``AUTORESEARCH_REQUIRE_CODEX=1`` (CI, which installs it).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoresearch_tui.engine.demo.scripted_model import ScriptedModelServer
from autoresearch_tui.engine.demo.scripted_model import cli_env as build_cli_env
from tests.support import NETNS_MARK, codex_binary, only_loopback

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "codex: runs the real Codex CLI, inside a network namespace of its own")


REQUIRE_CODEX_ENV = "AUTORESEARCH_REQUIRE_CODEX"
"""Set (CI, after installing the CLI): a missing Codex CLI fails the Codex tests instead of skipping them."""


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    path = codex_binary()
    if path is None and os.environ.get(REQUIRE_CODEX_ENV):  # CI installed it: absent is a failure
        pytest.fail(f"{REQUIRE_CODEX_ENV} is set but the Codex CLI is not installed: run `npm ci` at "
                    "the repository root (package.json pins @openai/codex 0.171.0)", pytrace=False)
    if path is None:
        pytest.skip("the Codex CLI is not installed: run `npm install` at the repository root "
                    "(package.json pins @openai/codex 0.171.0)")
    from autoresearch_tui.engine.agent.codex_home import CODEX_BIN_ENV

    # Engines under test (and the test's own re-run in its namespace) use this one.
    os.environ.setdefault(CODEX_BIN_ENV, str(path))
    return path


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):  # type: ignore[no-untyped-def]
    """A `codex` test outside a loopback-only namespace runs again inside a fresh one."""
    if pyfuncitem.get_closest_marker("codex") is None or only_loopback():
        return None
    if os.environ.get(NETNS_MARK):
        pytest.fail("inside its network namespace the test still sees other interfaces", pytrace=False)
    timeout = pyfuncitem.get_closest_marker("timeout")
    limit = int(timeout.args[0]) if timeout and timeout.args else 300
    inner = [sys.executable, "-m", "pytest", pyfuncitem.nodeid, "-q", "-p", "no:cacheprovider",
             f"--timeout={limit}"]
    # root makes the namespace directly; anyone else through a user namespace of their own
    unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
    command = [*unshare, "bash", "-c", f"ip link set lo up && exec {shlex.join(inner)}"]
    try:
        result = subprocess.run(command, cwd=pyfuncitem.config.rootpath, capture_output=True, text=True,
                                env={**os.environ, NETNS_MARK: "1"}, timeout=limit + 60)
    except FileNotFoundError:
        pytest.fail("`unshare` (util-linux) is needed to give Codex tests a network namespace", pytrace=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the test did not finish in its network namespace within {limit + 60}s:\n"
                    f"{(exc.stdout or '')[-6000:]}", pytrace=False)
    output = (result.stdout + result.stderr)[-12000:]
    if result.returncode == 0 and " passed" not in result.stdout:
        pytest.skip(f"skipped in its network namespace: {output[-500:]}")
    if result.returncode != 0:
        pytest.fail(f"failed in its network namespace (`{shlex.join(command[:2])} …`):\n{output}", pytrace=False)
    return True
