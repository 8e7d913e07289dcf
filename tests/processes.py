"""Processes as the test suite sees them. pytest is a child subreaper (tests/conftest.py):
a process orphaned by a test ends as OUR zombie, and /proc/PID stays until it is reaped."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def process_ended(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie of ours is reaped here and counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    if state != "Z":
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return True
