"""What a Codex lane costs in time: its tool path and its start, against anchors in the same run.

1. The engine's tools reach Codex through a stdio MCP server Codex starts. Time from spawn
   to an answered `initialize` + `tools/list`, for the engine's proxy (standard library, a
   byte pipe to the engine's socket) against the anchor, the same tools served by the mcp
   library's own `MCPServer` over stdio.
2. One `tools/call` round trip through the proxy and the socket, against calling the tool
   in process (the anchor).
3. A real Codex lane against the scripted Responses server: engine start to the first model
   request (fork, CODEX_HOME, app-server, thread/start waiting for the MCP server), and a
   turn's round trip (the policy's continue prompt out, the next request in).

    python bench/bench_codex.py [--runs 10]

Part 3 needs the Codex CLI (`npm install` at the repository root) and runs inside a network
namespace (the script re-executes itself under `unshare -n`). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoresearch_tui.engine.agent.codex_tools import PROXY_PATH, ToolSocketServer, socket_path_for  # noqa: E402
from autoresearch_tui.engine.agent.tools import ToolAnswer, ToolSpec  # noqa: E402
from tests.support import codex_binary, only_loopback  # noqa: E402

MCP_LIBRARY_SERVER = textwrap.dedent('''
    from mcp.server.mcpserver import MCPServer
    server = MCPServer("autoresearch")

    @server.tool()
    def lane_status() -> str:
        """The lane's frontier."""
        return "{}"

    server.run("stdio")
''')


def specs() -> list[ToolSpec]:
    async def lane_status(args):
        return ToolAnswer("{}")
    return [ToolSpec("lane_status", "The lane's frontier.", {"type": "object", "properties": {}}, lane_status)]


def line(message: dict) -> bytes:
    return (json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode()


async def handshake(argv: list[str]) -> tuple[float, asyncio.subprocess.Process]:
    """Spawn an MCP stdio server; seconds until initialize and tools/list are answered."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    proc.stdin.write(line({"id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}}))
    await proc.stdout.readline()
    proc.stdin.write(line({"method": "notifications/initialized"}))
    proc.stdin.write(line({"id": 2, "method": "tools/list"}))
    await proc.stdout.readline()
    return time.perf_counter() - start, proc


async def close(proc: asyncio.subprocess.Process) -> None:
    proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 5)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()


def stats(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"median {statistics.median(ms):8.2f} ms  min {ms[0]:8.2f}  p99 {p99:8.2f}"


async def tool_path(runs: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-codex-"))
    server = await ToolSocketServer(specs(), socket_path_for(folder)).start()
    library_script = folder / "mcp_library_server.py"
    library_script.write_text(MCP_LIBRARY_SERVER)
    proxy, library = [], []
    for _ in range(runs):  # alternate, so drift hits both the same
        seconds, proc = await handshake([sys.executable, str(PROXY_PATH), str(server.path)])
        proxy.append(seconds)
        await close(proc)
        seconds, proc = await handshake([sys.executable, str(library_script)])
        library.append(seconds)
        await close(proc)
    print("1. MCP server spawn -> initialize + tools/list answered")
    print(f"   mcp library MCPServer (anchor) {stats(library)}")
    print(f"   engine proxy + socket          {stats(proxy)}   "
          f"= {statistics.median(proxy) / statistics.median(library):.2f}x the anchor")

    _, proc = await handshake([sys.executable, str(PROXY_PATH), str(server.path)])
    through, direct = [], []
    for i in range(runs * 20):
        start = time.perf_counter()
        proc.stdin.write(line({"id": 100 + i, "method": "tools/call", "params": {"name": "lane_status", "arguments": {}}}))
        await proc.stdout.readline()
        through.append(time.perf_counter() - start)
        start = time.perf_counter()
        await specs()[0].call({})
        direct.append(time.perf_counter() - start)
    await close(proc)
    await server.close()
    print("2. one tools/call")
    print(f"   in process (anchor)            {stats(direct)}")
    print(f"   through the proxy and socket   {stats(through)}   "
          f"(+{(statistics.median(through) - statistics.median(direct)) * 1000:.2f} ms a call)")


async def codex_lane(runs: int) -> None:
    import tomlkit

    from autoresearch_tui.engine.demo.scripted_responses import FAKE_API_KEY, ScriptedResponses, provider_config
    from autoresearch_tui.engine.supervisor import Engine
    from tests.support import make_workspace, wait_until

    starts, rounds = [], []
    for _ in range(runs):
        folder = Path(tempfile.mkdtemp(prefix="bench-codex-lane-"))
        with ScriptedResponses() as model:
            model.when_exhausted = "Step done."
            table = tomlkit.dumps({"agent": {"codex": {"model": "gpt-5.5", "config": provider_config(
                model.base_url, env_key="BENCH_KEY", retries=0)}}})
            config = make_workspace(folder, agents={"a": "codex"}, extra=table,
                                    loop="max_consecutive_blocks = 100\nretrospective_every_stops = 100")
            (folder / "home").mkdir()
            engine = Engine(config, env={**os.environ, "HOME": str(folder / "home"), "BENCH_KEY": FAKE_API_KEY})
            start = time.perf_counter()
            await engine.start()
            try:
                await wait_until(lambda: len(model.main_requests) >= 1, timeout=60, what="first request")
                starts.append(time.perf_counter() - start)
                await wait_until(lambda: len(model.main_requests) >= 6, timeout=60, what="five stops")
                stamps = [r.t for r in model.main_requests[:6]]
                rounds += [b - a for a, b in zip(stamps, stamps[1:])]
            finally:
                await engine.stop()
    print("3. a Codex lane (real Codex CLI, scripted Responses server)")
    print(f"   engine start -> first request  {stats(starts)}")
    print(f"   answer -> next request (policy, turn/start) {stats(rounds)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--skip-codex", action="store_true")
    args = parser.parse_args()
    asyncio.run(tool_path(args.runs))
    if args.skip_codex:
        return 0
    if codex_binary() is None:
        print("3. skipped: the Codex CLI is not installed (npm install at the repository root)")
        return 0
    if not only_loopback():  # Codex reaches out unless told not to: only loopback here
        inner = [sys.executable, __file__, "--runs", str(max(2, args.runs // 3)), "--codex-only"]
        return os.system(f"unshare -n bash -c {shlex.quote('ip link set lo up && exec ' + shlex.join(inner))}")
    return 0


if __name__ == "__main__":
    if "--codex-only" in sys.argv:
        sys.argv.remove("--codex-only")
        runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
        asyncio.run(codex_lane(runs))
        sys.exit(0)
    sys.exit(main())
