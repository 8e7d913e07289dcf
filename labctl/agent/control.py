"""The agent's control socket: one JSON request line in, one JSON reply line out.

`vpn show sessions`, `vpn connect`, `vpn logout USER` ... are small clients of this socket;
the daemon answers from its live state (session database, counters), never from files.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from typing import Any

SOCKET_PATH = "/run/labctl/vpn.sock"
# The settings file labctl pushes. Defined here, not in settings.py, so the `vpn` command
# line can name it without importing the IKE engine (that import costs ~0.2 s per call).
CONFIG_PATH = "/etc/labctl/vpn.json"
MAX_REQUEST = 64 * 1024

Handler = Callable[[dict[str, Any]], Any]


class ControlError(Exception):
    """A request the agent refuses; the message goes back to the caller."""


class ServiceError(Exception):
    """Starting, stopping or checking the agent failed (`vpn service ...`)."""


class Deferred:
    """A reply a handler gives later: `vpn connect --wait` is answered when the state
    changes instead of being polled (polling cost our client ~50 ms per connect)."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Any], None]] = []
        self.done = False
        self.value: Any = None

    def resolve(self, value: Any) -> None:
        if self.done:
            return
        self.done, self.value = True, value
        for callback in self._callbacks:
            callback(value)
        self._callbacks.clear()

    def when_done(self, callback: Callable[[Any], None]) -> None:
        if self.done:
            callback(self.value)
        else:
            self._callbacks.append(callback)


class ControlServer:
    def __init__(self, handlers: dict[str, Handler], path: str = SOCKET_PATH):
        self.handlers = handlers
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o600)
        self.sock.listen(16)
        self.sock.setblocking(False)
        self._buffers: dict[socket.socket, bytearray] = {}
        self._waiting: set[socket.socket] = set()  # connections a Deferred will answer
        self._loop: Any = None

    def attach(self, loop: Any) -> None:
        self._loop = loop
        loop.add_reader(self.sock, self._accept)

    def fileno(self) -> int:
        return self.sock.fileno()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return
            conn.setblocking(False)
            self._buffers[conn] = bytearray()
            self._loop.add_reader(conn, lambda c=conn: self._read(c))

    def _read(self, conn: socket.socket) -> None:
        buffer = self._buffers[conn]
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            buffer.extend(chunk)
        if b"\n" not in buffer and chunk and len(buffer) < MAX_REQUEST:
            return
        self._loop.remove_reader(conn)
        del self._buffers[conn]
        reply = self.dispatch(bytes(buffer).split(b"\n", 1)[0])
        result = reply.get("result")
        if isinstance(result, Deferred):
            self._waiting.add(conn)

            def answer_later(value: Any, conn: socket.socket = conn) -> None:
                self._answer(conn, {"ok": True, "result": value})

            result.when_done(answer_later)
            return
        self._answer(conn, reply)

    def _answer(self, conn: socket.socket, reply: dict[str, Any]) -> None:
        self._waiting.discard(conn)
        try:
            conn.setblocking(True)
            conn.settimeout(2.0)
            conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
        except OSError:
            pass  # the caller went away; nothing to do
        finally:
            conn.close()

    def dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            command = request["cmd"]
            handler = self.handlers[command]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": f"bad request; commands: {', '.join(self.handlers)}"}
        try:
            return {"ok": True, "result": handler(request.get("args") or {})}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}

    def close(self) -> None:
        for conn in [*self._buffers, *self._waiting]:
            conn.close()
        self._buffers.clear()
        self._waiting.clear()
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def request(
    command: str, args: dict[str, Any] | None = None, path: str = SOCKET_PATH, timeout: float = 10.0
) -> Any:
    """Send one request to the running agent; raise ControlError on refusal."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"the VPN agent is not running (no {path})") from None
        sock.sendall(json.dumps({"cmd": command, "args": args or {}}).encode() + b"\n")
        data = bytearray()
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data.extend(chunk)
    reply = json.loads(data or b'{"ok": false, "error": "no reply from the agent"}')
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "refused"))
    return reply.get("result")
