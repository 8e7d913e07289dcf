"""`labctl test` on a real lab: expectations pass, broken ones fail with useful output."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .conftest import ROOT, labctl
from .host_snapshot import lab_footprint

PAT_CHECKS = ROOT / "tests" / "e2e" / "topologies" / "pat-checks.yaml"


def _cases(junit: Path) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}


def test_labctl_test_runs_expectations_and_scenarios(tmp_path: Path) -> None:
    result = labctl("test", str(PAT_CHECKS), "--report-dir", str(tmp_path))
    cases = _cases(tmp_path / "junit.xml")
    assert set(cases) == {"expect", "udp-4500-pat", "link-loss", "flush"}
    assert all(case.find("failure") is None for case in cases.values())
    assert "4/4 passed" in result.stdout
    assert not (tmp_path / "artifacts").exists() or not any((tmp_path / "artifacts").iterdir())


def test_a_broken_expectation_fails_with_a_diff_and_artifacts(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    # Expect three translations where the lab makes two, and a global address it never uses.
    broken.write_text(
        PAT_CHECKS.read_text()
        .replace(
            "      count: 2\n      same: [global_ip]\n      all: {global_ip: 198.51.100.2",
            "      count: 3\n      same: [global_ip]\n      all: {global_ip: 198.51.100.99",
        )
        # A short deadline: ICMP translations expire after 30 s, and the last look counts.
        .replace("  - name: both inside hosts", "  - within: 5\n    name: both inside hosts")
    )
    report = tmp_path / "report"
    result = labctl(
        "test", str(broken), "--scenario", "none", "--report-dir", str(report), check=False
    )
    assert result.returncode == 1
    failure = _cases(report / "junit.xml")["expect"].find("failure")
    assert failure is not None
    assert "count: expected 3, observed 2" in failure.text
    assert "global_ip: expected '198.51.100.99', observed '198.51.100.2'" in failure.text
    assert "labctl show" in failure.text  # where to look further
    artifacts = report / "artifacts" / "broken.expect"
    assert (artifacts / "fw" / "xlate.txt").read_text().startswith("2 in use")
    assert (artifacts / "captures" / "lan.pcap").stat().st_size > 24
    # Every lab the runner made is gone again.
    for name in ("t-pat-checks",):
        assert lab_footprint(name).empty
