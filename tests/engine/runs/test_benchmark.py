"""The engine's benchmark runner with real processes: output (run.log has everything, the
transcript a capped sample), what a run leaves running, and what a run may see of the
engine's credentials."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from autoresearch_tui.engine.core.secrets import register_secrets_from_env
from autoresearch_tui.engine.runs.benchmark import SAMPLE_TOTAL_BYTES, run_benchmark

pytestmark = pytest.mark.timeout(120)


def run(tmp_path: Path, command: str, env: dict[str, str] | None = None, **kwargs):
    shown: list[str] = []
    result = asyncio.run(run_benchmark(
        command, cwd=tmp_path, run_id="0001", run_dir=tmp_path / "runs" / "0001",
        env=env if env is not None else dict(os.environ), timeout_s=60, hang_timeout_s=30,
        on_output=shown.append, **kwargs))
    return result, shown


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_chatty_benchmark_keeps_all_its_output_in_run_log_and_only_a_sample_in_events(tmp_path):
    lines = 400_000  # 40 MB: "line 000123 xxxx...\n", 100 bytes each
    script = tmp_path / "chatty.py"
    script.write_text("import sys\n"
                      f"for i in range({lines}):\n"
                      "    sys.stdout.write(f'line {i:06d} ' + 'x' * 87 + '\\n')\n"
                      "print('the end')\n")
    result, shown = run(tmp_path, f"{sys.executable} {script}")
    assert result.status == "ok"
    log = (tmp_path / "runs" / "0001" / "run.log").read_bytes()
    assert log.count(b"\n") >= lines + 1 and b"line 399999 " in log and b"the end" in log
    sampled = sum(len(piece) for piece in shown)
    assert sampled <= SAMPLE_TOTAL_BYTES + 4096 * 2  # not 40 MB of events
    assert "run.log has everything" in shown[-1]
    assert len(shown) <= 1 + result.seconds / 0.25 + 2  # rate-limited: ~4 pieces a second


def test_what_a_run_leaves_running_in_its_group_is_stopped_when_it_ends(tmp_path):
    pid_file = tmp_path / "background.pid"
    script = tmp_path / "leaves.py"
    script.write_text("import subprocess, sys\n"
                      "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
                      f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
                      "print('main part done')\n")
    result, _ = run(tmp_path, f"{sys.executable} {script}")
    background = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(background) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.status == "ok" and not alive(background)
    log = (tmp_path / "runs" / "0001" / "run.log").read_text()
    assert "stopped 1 processes the run left running" in log
    assert not (tmp_path / "runs" / "0001" / ".process-group.json").exists()


def test_a_benchmark_gets_no_credentials_and_run_log_never_shows_the_key(tmp_path):
    key = "sk-test-0123456789abcdef-not-anthropic-shaped"
    env = {**os.environ, "ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
           "AWS_SECRET_ACCESS_KEY": "aws-secret-value-123", "HF_TOKEN": "hf_token_value_123",
           "GITHUB_TOKEN": "ghp_value_123456", "MY_SERVICE_API_KEY": "service-key-value",
           "GOOGLE_APPLICATION_CREDENTIALS": "/creds.json", "TPU_NAME": "v6e"}
    register_secrets_from_env(env)  # the engine does this at start
    (tmp_path / "committed-key.txt").write_text(f"the agent committed {key}\n")
    result, shown = run(tmp_path, "env; cat committed-key.txt", env=env, pass_env=["HF_TOKEN"])
    log = (tmp_path / "runs" / "0001" / "run.log").read_text()
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN",
                 "MY_SERVICE_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS"):
        assert f"{name}=" not in log
    assert "TPU_NAME=v6e" in log and "HF_TOKEN=" in log  # passed on purpose
    assert key not in log and "the agent committed [redacted]" in log
    assert key not in "".join(shown) and "hf_token_value_123" not in log
