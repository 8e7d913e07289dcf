"""Test-suite-wide setup: the labctl pytest plugin (the `lab` fixture) for our own tests.

Users enable it the same way in their conftest.py, or with `pytest -p labctl.checks.pytest_plugin`.
"""

import os

import pytest

pytest_plugins = ["labctl.checks.pytest_plugin"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI a skipped test is a failed test: a missing tool or privilege must be installed
    by .ci/run, never silently hide a suite (it hid the data-plane tests once: no `ping`)."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must not skip: {report.longrepr}"
