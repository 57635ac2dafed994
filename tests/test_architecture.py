"""engine/ must never load textual: it runs headless (daemon, hooks, CI)."""

import pkgutil
import subprocess
import sys

import autoresearch_tui.engine as engine


def test_engine_modules_do_not_import_textual():
    modules = [m.name for m in pkgutil.walk_packages(engine.__path__, prefix="autoresearch_tui.engine.")]
    assert "autoresearch_tui.engine.agent.lane" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"engine loaded textual: {result.stdout}"
