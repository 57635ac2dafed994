"""The architecture the code must keep (docs/architecture.md): one installed namespace,
imports one way, a pure core, no import cycle, a fast `status`.

The same checks by hand: `lint-imports` (the contracts in pyproject.toml) and
`python -m pytest tests/test_architecture.py`.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import autoresearch_tui.engine as engine
from autoresearch_tui.engine import protocol
from autoresearch_tui.engine.daemon.server import _Connection
from tests.support import REPO_ROOT, make_workspace

CORE = REPO_ROOT / "engine" / "core"


def test_the_wheel_installs_exactly_one_top_level_package(tmp_path):
    # Built from a copy: setuptools leaves build/ and *.egg-info behind in the tree it builds.
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "node_modules", "*.egg-info", "__pycache__", ".pytest_cache"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                           str(source)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = sorted({name.split("/")[0] for name in names if ".dist-info/" not in name})
    assert top == ["autoresearch_tui"]
    # The data the program needs at run time travels inside the package.
    for needed in ("autoresearch_tui/skills/autoresearch-loop/SKILL.md", "autoresearch_tui/themes/autoresearch.tcss",
                   "autoresearch_tui/examples/jax_example/bench.py", "autoresearch_tui/hooks/stop_hook.py",
                   "autoresearch_tui/engine/core/policy.py", "autoresearch_tui/cli/__main__.py"):
        assert needed in names
    assert not any(name.startswith(("autoresearch_tui/tests/", "autoresearch_tui/bench/")) for name in names)


def test_import_contracts_hold(monkeypatch):
    """Layers cli -> tui -> engine, a stdlib-only core, a TUI on the client side only, and
    status/stop/attach without the agent SDK (pyproject.toml [tool.importlinter])."""
    from importlinter.application.use_cases import lint_imports

    monkeypatch.chdir(REPO_ROOT)  # lint_imports reads pyproject.toml from the current folder
    assert lint_imports() == 0


def test_no_import_cycles():
    import grimp

    graph = grimp.build_graph("autoresearch_tui", include_external_packages=False)
    modules = {m for m in graph.modules if not m.startswith(("autoresearch_tui.tests", "autoresearch_tui.bench"))}
    cycles = [scc for scc in _strongly_connected(graph, modules) if len(scc) > 1]
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def _strongly_connected(graph, modules: set[str]) -> list[set[str]]:
    """Tarjan's algorithm over the package's own import graph (module-level and lazy imports)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(module: str) -> None:
        index[module] = low[module] = counter[0]
        counter[0] += 1
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in modules:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.add(item)
                if item == module:
                    break
            found.append(component)

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_core_imports_only_the_standard_library_and_itself():
    """hooks/ load engine/core by path under any Python 3.11+: nothing else may come in."""
    offenders = []
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: another core module
                    continue
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}: {name}" for name in names
                          if name.split(".")[0] not in sys.stdlib_module_names and name != "__future__"]
    assert offenders == []


def test_engine_modules_never_load_textual():
    modules = [m.name for m in pkgutil.walk_packages(engine.__path__, prefix="autoresearch_tui.engine.")]
    assert "autoresearch_tui.engine.agent.lane" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(','.join(sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"engine loaded textual: {result.stdout}"


def test_every_protocol_op_has_exactly_one_handler():
    handlers = {name.removeprefix("op_") for name in dir(_Connection) if name.startswith("op_")}
    assert handlers == set(protocol.OPS)


def test_status_with_no_engine_never_loads_the_agent_sdk(tmp_path):
    config = make_workspace(tmp_path)
    code = ("import sys\nfrom autoresearch_tui.cli.main import main\n"
            f"code = main(['status', '--json', '--config', {str(config.path)!r}])\n"
            "print('\\nLOADED=' + json.dumps(sorted(m for m in sys.modules if m.startswith(('claude_agent_sdk', 'textual')))))\n")
    proc = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.rsplit("LOADED=", 1)[1])
    assert loaded == []


@pytest.mark.parametrize("name", ["cli", "tui", "engine", "hooks", "skills", "themes", "examples"])
def test_no_generic_top_level_package_is_importable_from_an_install(name, tmp_path):
    """Outside the checkout, only the namespace is importable: no `engine` or `hooks` to shadow."""
    proc = subprocess.run([sys.executable, "-c", f"import importlib.util; print(importlib.util.find_spec({name!r}))"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.stdout.strip() == "None", proc.stdout
