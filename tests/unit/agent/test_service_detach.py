"""`vpn service start|reload` with no agent running: the `vpn` wrapper execs the daemon
with --detach, which forks; the parent reports like the command line's start() and exits,
the child is the agent (labctl.agent.service.detach)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# The child says it answers (or exits without a word); the paths go to tmp_path.
SCRIPT = """
import os, sys, time
from pathlib import Path
from labctl.agent import service
tmp = Path(sys.argv[1])
service.LOG_FILE, service.PID_FILE = tmp / "log" / "vpn.log", tmp / "run" / "agent.pid"
service.SOCKET_PATH = str(tmp / "run" / "vpn.sock")
ready = service.detach(wait=float(sys.argv[3]))
print(f"agent {os.getpid()} session {os.getsid(0) == os.getpid()}", flush=True)
if sys.argv[2] == "answer":
    ready()
    time.sleep(30)
elif sys.argv[2] == "exit":
    raise SystemExit(3)
time.sleep(30)
"""


def run(tmp_path: Path, how: str, wait: float = 20.0) -> subprocess.CompletedProcess[str]:
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "vpn.sock").write_text("stale")
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), how, str(wait)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def log_line(tmp_path: Path) -> str:
    for _ in range(100):  # the child writes it right after the fork; the parent may be first
        text = (tmp_path / "log" / "vpn.log").read_text() if (tmp_path / "log").exists() else ""
        if text:
            return text
        time.sleep(0.05)
    return ""


def test_the_parent_reports_the_started_agent_and_leaves_it_running(tmp_path: Path) -> None:
    done = run(tmp_path, "answer")
    pid = int((tmp_path / "run" / "agent.pid").read_text())
    try:
        assert (done.returncode, done.stdout, done.stderr) == (0, f"started (pid {pid})\n", "")
        os.kill(pid, 0)  # still there: the agent
        # its output goes to the log, in a session of its own; the stale socket is gone
        assert log_line(tmp_path) == f"agent {pid} session True\n"
        assert not (tmp_path / "run" / "vpn.sock").exists()
    finally:
        os.kill(pid, 9)


def test_an_agent_that_exits_before_it_answers_fails_the_command(tmp_path: Path) -> None:
    done = run(tmp_path, "exit")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("vpn: the agent exited with 3:\n")
    assert "agent " in done.stderr  # the log's tail, as start() shows it


def test_an_agent_that_never_answers_fails_the_command_after_the_wait(tmp_path: Path) -> None:
    done = run(tmp_path, "silent", wait=1.0)
    pid = int((tmp_path / "run" / "agent.pid").read_text())
    os.kill(pid, 9)
    assert done.returncode == 1
    assert done.stderr.startswith("vpn: the agent did not answer within 1s:\n")
