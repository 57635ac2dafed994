"""The API key never leaves the engine: not in the ledger, run.log, engine.log, socket
replies (ledger, run_details, snapshot, errors), whatever shape the key has. The engine's
server runs in process; the files are real."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re

import pytest

from autoresearch_tui.engine.daemon.server import EngineServer, configure_logging
from autoresearch_tui.engine.daemon.control import log_path
from autoresearch_tui.engine.core.ledger import columns
from autoresearch_tui.engine.supervisor import Engine
from autoresearch_tui.engine.repo.forks import ensure_fork
from autoresearch_tui.engine.runs.record import record_run
from tests.support import make_workspace

pytestmark = pytest.mark.timeout(120)

KEY = "test-key-5f0c1d2e3b4a69788796a5b4c3d2e1f0"  # not sk-ant- shaped: caught by its value


async def test_the_key_is_redacted_from_every_file_and_reply(tmp_path):
    config = make_workspace(tmp_path / "ws")
    engine = Engine(config, env={**os.environ, "ANTHROPIC_API_KEY": KEY})
    workspace = engine.workspace
    handler_count = len(logging.getLogger().handlers)
    configure_logging(workspace)
    # What an agent or a workload could have put where the engine reads: a hand-written
    # ledger row, an old run.log, a summary field.
    ledger = workspace.ledger_path("a")
    header = columns("step_time_ms")
    ledger.write_text("\t".join(header) + "\n" + "\t".join(
        ["0001", "2026-01-01T00:00:00Z", "", "10", "keep", f"key is {KEY}", *[""] * (len(header) - 6)]) + "\n")
    run_dir = workspace.runs_dir("a") / "0001"
    run_dir.mkdir(parents=True)
    (run_dir / "run.log").write_text(f"ANTHROPIC_API_KEY={KEY}\nraw {KEY}\n")
    (run_dir / "metrics.jsonl").write_text(json.dumps(
        {"v": 1, "kind": "summary", "step_time_median_s": 0.01, "note": KEY}) + "\n")
    server = EngineServer(engine, tmp_path / "engine.sock")
    await server.start()
    watcher = asyncio.create_task(engine.watchers["a"].run(asyncio.Event()))
    try:
        reader, writer = await asyncio.open_unix_connection(str(server.path), limit=1 << 24)

        async def ask(**request) -> str:
            writer.write((json.dumps(request) + "\n").encode())
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 10)).decode()

        await ask(op="hello", version=1)
        await asyncio.sleep(1.0)  # the watcher has read the summary
        replies = [await ask(id=1, op="ledger", lane="a"),
                   await ask(id=2, op="run_details", lane="a", run_id="0001"),
                   await ask(id=3, op="snapshot"),
                   await ask(id=4, op="run_details", lane="a", run_id=f"../../{KEY}"),
                   await ask(id=5, op="send_message", lane=f"lane-{KEY}", text="x")]
        writer.close()
        ensure_fork(workspace, "a")
        record_run(workspace, "a", "discard", f"tried with {KEY}", metric=11.0)
        logging.getLogger("autoresearch_tui.test").error("a request named %s \x1b]0;t\x07\x9d0;t\x9c", KEY)
        try:
            raise ValueError(f"bad run id {KEY}")
        except ValueError:
            logging.getLogger("autoresearch_tui.test").exception("request failed")
    finally:
        watcher.cancel()
        await server.close()
        for handler in logging.getLogger().handlers[handler_count:]:
            handler.close()
            logging.getLogger().removeHandler(handler)
    assert all(reply.strip() for reply in replies)
    assert '"ok": true' in replies[0] and "[redacted]" in replies[0]
    assert '"ok": true' in replies[1] and "[redacted]" in replies[1]
    for reply in replies:
        assert KEY not in reply
    written = ledger.read_text().splitlines()[-1]  # the row the engine wrote (the planted one stays)
    assert KEY not in written and "tried with [redacted]" in written
    engine_log = log_path(workspace).read_text()
    assert "a request named [redacted]" in engine_log and "bad run id [redacted]" in engine_log
    assert KEY not in engine_log
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", engine_log)  # no raw controls either
