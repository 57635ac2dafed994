"""The stdio MCP server Codex starts for a lane: a byte pipe to the engine's private socket.

Codex launches MCP stdio servers as its own children, so the engine's tools (which live in
the engine process: the ledger, the benchmark runner, the lane's state) are reached through
this proxy: stdin -> the lane's unix socket (0600, served by engine/agent/codex_tools.py),
the socket -> stdout. The MCP protocol itself is spoken by the engine; this file only moves
bytes, so it runs by path with any Python 3.11+ and starts in milliseconds (Codex's
thread/start waits for it: `required = true`).

Usage: python codex_mcp_proxy.py SOCKET_PATH
"""

from __future__ import annotations

import os
import socket
import sys
import threading


def _pump_socket_to_stdout(sock: socket.socket) -> None:
    try:
        while data := sock.recv(1 << 16):
            os.write(1, data)
    except OSError:
        pass
    finally:
        os._exit(0)  # the engine hung up (or the lane stopped): Codex sees the server end


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: codex_mcp_proxy.py SOCKET_PATH", file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(argv[1])
    except OSError as exc:
        print(f"autoresearch: cannot reach the engine's tool socket {argv[1]}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    threading.Thread(target=_pump_socket_to_stdout, args=(sock,), daemon=True).start()
    try:
        while data := os.read(0, 1 << 16):
            sock.sendall(data)
    except OSError:
        return 1
    sock.shutdown(socket.SHUT_WR)  # Codex closed our stdin: let the engine finish, then exit
    threading.Event().wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
