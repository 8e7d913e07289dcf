"""`labctl ui`: the web console on uvicorn, on 127.0.0.1 by default, behind a token."""

from __future__ import annotations

import secrets
import socket
import sys
import threading
from pathlib import Path

import uvicorn

from ..runtime import DockerRuntime
from .app import create_app


def serve(
    host: str = "127.0.0.1",
    port: int = 8047,
    reports: Path = Path("reports"),
    token: str | None = None,
    stop_after: float | None = None,
    quiet: bool = False,
) -> int:
    token = token or secrets.token_urlsafe(24)
    # Bound here, so port 0 picks a free port and the URL printed is the real one.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections queue from now on: the URL printed works at once
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    hosts = sorted({host, "127.0.0.1", "localhost", "[::1]"})
    app = create_app(DockerRuntime(), reports, token, hosts)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    print(f"labctl ui: http://{shown}:{port}/?token={token}", flush=True)
    if not quiet:
        print(
            "  (Ctrl-C stops it; the token is the only key: do not share the URL)",
            file=sys.stderr,
            flush=True,
        )
    if stop_after:
        timer = threading.Timer(stop_after, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    server.run(sockets=[sock])
    return 0
