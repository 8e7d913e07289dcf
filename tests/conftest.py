"""Test-suite-wide setup: the labctl pytest plugin (the `lab` fixture) for our own tests.

Users enable it the same way in their conftest.py, or with `pytest -p labctl.checks.pytest_plugin`.
"""

import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path

import pytest

from labctl.topology.secrets import forget_secrets
from tests.processes import process_ended

pytest_plugins = ["labctl.checks.pytest_plugin"]

# A run started as a background job of a non-interactive shell (CI runners, nohup) inherits
# SIGINT as ignored, and Python then keeps it ignored: .ci/run's time guard interrupts the
# run with SIGINT so that pytest still reports what failed and the slowest tests.
signal.signal(signal.SIGINT, signal.default_int_handler)

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def _become_subreaper() -> None:
    """Orphans of the tests (a tcpdump whose labctl died first) are re-parented to pytest,
    not to init, so the leftover check at the end sees grandchildren too."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_become_subreaper()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/unit/render/golden/ from what labctl renders now (review the diff)",
    )


@pytest.fixture(autouse=True)
def _fresh_secret_registry():
    """Each test starts with no remembered secrets: one test's PSK ('other', say) must not
    be masked out of the next test's messages."""
    forget_secrets()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI a skipped test is a failed test: a missing tool or privilege must be installed
    by .ci/run, never silently hide a suite (it hid the data-plane tests once: no `ping`)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must not skip: {report.longrepr}"


def _running_children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live child processes of ``pid``."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        for child in children.read_text().split() if children.exists() else ():
            if process_ended(int(child)):  # ended orphans handed to us: reaped, not reported
                continue
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue  # ended meanwhile
            found.append((int(child), cmdline.decode(errors="replace").strip()))
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No test may leave a process running (a capture that ignored its stop signal once
    ran on for an hour after the suite): kill what is left and fail the run, naming it."""
    leftovers = _running_children(os.getpid())
    for pid, _ in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if leftovers:
        names = "; ".join(f"{pid}: {command[:120]}" for pid, command in leftovers)
        print(f"\nprocesses left running by the tests (killed): {names}", file=sys.stderr)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
