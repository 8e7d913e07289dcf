"""Starting, stopping and reloading the agent daemon inside a node (no init system there)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .control import CONFIG_PATH, SOCKET_PATH, ControlError, ServiceError, request

PID_FILE = Path("/run/labctl/vpn-agent.pid")
LOG_FILE = Path("/var/log/labctl/vpn.log")


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


# How long a start waits for the agent to answer. A lone agent answers in about a second;
# `up` starts the clients of a large lab together on a shared 2-core machine, where each
# one's interpreter start and imports take their turn (15 s failed ten clients there).
START_WAIT = 60.0


def start(config: str = CONFIG_PATH, wait: float = START_WAIT) -> str:
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
    """Can the agent run with the settings in `path`? Changes nothing; ServiceError if not.

    A running agent answers itself: it knows which sockets it holds and has the IKE code
    loaded (this command line does not import it: ~0.2 s saved per `vpn` call)."""
    if running():
        try:
            return request("check", {"path": path}, timeout=10.0)
        except ControlError as exc:
            raise ServiceError(str(exc)) from None
    from .preflight import PreflightError, check_settings_file

    try:
        return check_settings_file(path, held=set())
    except PreflightError as exc:
        raise ServiceError(str(exc)) from None
