"""Starting, stopping and reloading the agent daemon inside a node (no init system there)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .control import SOCKET_PATH, ControlError, request
from .settings import (
    CONFIG_PATH,
    Listener,
    SettingsError,
    check_proposals,
    listeners,
    load_settings,
)

PID_FILE = Path("/run/labctl/vpn-agent.pid")
LOG_FILE = Path("/var/log/labctl/vpn.log")


class ServiceError(Exception):
    pass


def _pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def running() -> bool:
    if _pid() is None:
        return False
    try:
        request("ping", timeout=2.0)
        return True
    except (ControlError, OSError):
        return False


def _log_tail(lines: int = 15) -> str:
    try:
        return "\n".join(LOG_FILE.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(config: str = CONFIG_PATH, wait: float = 15.0) -> str:
    if running():
        return "already running"
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(SOCKET_PATH)
    log = open(LOG_FILE, "a")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "labctl.agent.daemon", "--config", config],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
        env=os.environ.copy(),
    )
    log.close()
    PID_FILE.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"the agent exited with {process.returncode}:\n{_log_tail()}")
        with contextlib.suppress(ControlError, OSError):
            request("ping", timeout=1.0)
            return f"started (pid {process.pid})"
        time.sleep(0.05)
    raise ServiceError(f"the agent did not answer within {wait:.0f}s:\n{_log_tail()}")


def stop(wait: float = 5.0) -> str:
    pid = _pid()
    if pid is None:
        return "not running"
    with contextlib.suppress(ControlError, OSError):
        request("shutdown", timeout=2.0)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _pid() is not None:
        time.sleep(0.05)
    if _pid() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    with contextlib.suppress(FileNotFoundError):
        PID_FILE.unlink()
    return f"stopped (pid {pid})"


def reload(config: str = CONFIG_PATH) -> str:
    """Apply a pushed configuration: live when the agent can, restart when it must."""
    if not running():
        return start(config)
    result = request("reload", timeout=10.0)["result"]
    if result == "restart":
        stop()
        return "restarted: " + start(config)
    return result


def check(path: str) -> str:
    """Can the agent run with the settings in `path`? Parse them and probe every socket
    they need that the running agent does not hold already (a public address the node
    does not have, a port another program holds). Changes nothing; ServiceError if not."""
    try:
        settings = load_settings(path)  # its errors name the file already
    except SettingsError as exc:
        raise ServiceError(str(exc)) from None
    try:
        check_proposals(settings)
    except SettingsError as exc:
        raise ServiceError(f"{path}: {exc}") from None
    held = _held_listeners()
    wanted = listeners(settings)
    for listener in wanted:
        if listener.key not in held:
            problem = _probe(listener)
            if problem:
                raise ServiceError(f"{path}: {problem}")
    sockets = ", ".join(f"{w.protocol.upper()} {w.address}:{w.port}" for w in wanted)
    return f"{path}: ok ({type(settings).__name__}; {sockets})"


def _held_listeners() -> set[tuple[str, str, int]]:
    """The sockets the running agent has open (it reports them), or none."""
    if _pid() is None:
        return set()
    try:
        reply = request("ping", timeout=2.0)
    except (ControlError, OSError):
        return set()
    return {(p, a, int(n)) for p, a, n in reply.get("listeners", [])}


def _probe(listener: Listener) -> str | None:
    kind = socket.SOCK_DGRAM if listener.protocol == "udp" else socket.SOCK_STREAM
    where = f"{listener.protocol.upper()} {listener.address}:{listener.port}"
    with socket.socket(socket.AF_INET, kind) as sock:
        if listener.protocol == "tcp":  # as the agent's listener: TIME_WAIT is no conflict
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((listener.address, listener.port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return (
                    f"{listener.purpose}: cannot bind {where}: "
                    f"{listener.address} is not an address of this node"
                )
            if exc.errno == errno.EADDRINUSE:
                return f"{listener.purpose}: {where} is in use by another program"
            return f"{listener.purpose}: cannot bind {where}: {exc.strerror}"
    return None
