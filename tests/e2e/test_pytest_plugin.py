"""The pytest plugin: the `lab` fixture in a test module, and what a failure leaves behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.lab("tests/e2e/topologies/pat-checks.yaml")


def test_lab_fixture_shows_execs_and_expects(lab) -> None:
    assert lab.exec("inner1", "ping -c1 -W2 198.51.100.9").exit_status == 0
    entries = lab.show("fw", "xlate")
    assert any(e["local_ip"] == "10.0.0.2" and e["global_ip"] == "198.51.100.2" for e in entries)
    lab.expect({"ping": {"from": "inner2", "to": "198.51.100.9", "count": 2}})
    lab.step({"impair": {"link": "wan", "loss": "100%"}})
    with pytest.raises(AssertionError, match="0/2 replies"):
        lab.expect({"ping": {"from": "inner1", "to": "198.51.100.9", "count": 2}}, within=2)
    lab.step({"impair": {"link": "wan", "clear": True}})


def test_a_failing_user_test_reports_expected_vs_observed_and_saves_artifacts(
    tmp_path: Path,
) -> None:
    user_tests = tmp_path / "test_user_lab.py"
    user_tests.write_text(
        textwrap.dedent(f"""
        import pytest
        pytestmark = pytest.mark.lab({str(ROOT / "tests/e2e/topologies/pat-checks.yaml")!r})

        def test_wrong_global_address(lab):
            lab.exec("inner1", "ping -c1 -W2 198.51.100.9")
            lab.expect({{"xlate": {{"node": "fw", "count": ">= 1",
                                    "all": {{"global_ip": "203.0.113.1"}}}}}}, within=2)
    """)
    )
    report = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "labctl.checks.pytest_plugin",
            str(user_tests),
            f"--rootdir={tmp_path}",
            f"--labctl-report-dir={report}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "global_ip: expected '203.0.113.1', observed '198.51.100.2'" in result.stdout
    saved = list((report / "artifacts").glob("pt-pat-checks-*/fw/xlate.txt"))
    assert saved and "in use" in saved[0].read_text()
