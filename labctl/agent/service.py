"""Starting, stopping and reloading the agent daemon inside a node (no init system there)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def detach(wait: float = START_WAIT) -> Callable[[], None]:
    """Run the agent in this process, in the background: what `vpn service start` and
    `reload` do when no agent runs (the `vpn` wrapper then execs `python3 -m
    labctl.agent.daemon --detach`). Why: start() is a second interpreter that imports the
    command line, spawns the agent and polls it every 50 ms -- per node of a lab, ~0.05 CPU-s
    of the ~0.4 its container costs.

    The process forks before the agent is made. The parent records the child as the agent,
    waits for its word (no polling) and exits as start() would: 0 with "started (pid N)",
    1 with the log's tail if the child exits or stays silent for `wait` seconds. The child
    gets start()'s surroundings (own session, stdin /dev/null, output appended to the log)
    and calls the returned function once it answers on the control socket."""
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    PID_FILE.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(SOCKET_PATH)
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        log = os.open(LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(devnull)
        os.close(log)

        def ready() -> None:
            os.write(write_end, b"1")
            os.close(write_end)

        return ready
    os.close(write_end)
    PID_FILE.write_text(f"{pid}\n")
    readable, _, _ = select.select([read_end], [], [], wait)
    if readable and os.read(read_end, 1) == b"1":
        print(f"started (pid {pid})", flush=True)
        os._exit(0)
    if readable:  # the end closed without a word: the child exited
        _, status = os.waitpid(pid, 0)
        problem = f"the agent exited with {os.waitstatus_to_exitcode(status)}"
    else:
        problem = f"the agent did not answer within {wait:.0f}s"
    print(f"vpn: {problem}:\n{_log_tail()}", file=sys.stderr, flush=True)
    os._exit(1)


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
