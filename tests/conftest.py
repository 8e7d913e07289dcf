"""Test-suite-wide setup: the labctl pytest plugin (the `lab` fixture) for our own tests.

Users enable it the same way in their conftest.py, or with `pytest -p labctl.checks.pytest_plugin`.
"""

import os
import signal

import pytest

from labctl.topology.secrets import forget_secrets

pytest_plugins = ["labctl.checks.pytest_plugin"]

# A run started as a background job of a non-interactive shell (CI runners, nohup) inherits
# SIGINT as ignored, and Python then keeps it ignored: .ci/run's time guard interrupts the
# run with SIGINT so that pytest still reports what failed and the slowest tests.
signal.signal(signal.SIGINT, signal.default_int_handler)


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
