"""The README's performance table is generated from bench/results (issue 13, issue 9)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
assert _spec and _spec.loader
report = importlib.util.module_from_spec(_spec)
sys.modules["bench_report"] = report  # dataclasses look their module up there
_spec.loader.exec_module(report)


def test_the_readme_table_is_the_one_the_stored_results_make() -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split(report.BEGIN, 1)[1].split(report.END, 1)[0]
    assert block == "\n" + report.table(report.rows_from(ROOT / "bench" / "results")), (
        "run: make bench-report"
    )
    assert block.count("\n| ") >= 5


def test_scale_rows_compare_with_the_reference_of_the_same_run() -> None:
    data = {
        "when": "2026-12-02T14:00:00Z",
        "load_average": [7.5, 6.0, 5.0],
        "runs": {
            "ours": [
                {"clients": 10, "up_seconds": 20.0, "down_seconds": 4.0, "sessions": 10},
                {"clients": 50, "up_seconds": 60.0, "down_seconds": 9.0, "sessions": 50},
            ],
            "reference": [
                {"clients": 10, "up_seconds": 40.0, "down_seconds": 4.0, "sessions": 10},
                {"clients": 50, "up_seconds": 90.0, "error": ["push failed"]},
            ],
        },
    }
    rows = {row.what: row for row in report.scale_rows(data)}
    up10 = rows["`up`, 10 VPN clients (+3 nodes)"]
    assert up10.ratio() == pytest.approx(2.0) and up10.load == 7.5
    assert rows["`down`, 10 VPN clients"].ratio() == pytest.approx(1.0)
    # a reference that failed is no reference: no ratio against it, and the table says so
    up50 = rows["`up`, 50 VPN clients (+3 nodes)"]
    assert up50.reference is None and up50.ratio() is None
    assert "FAILED after 90.0 s" in up50.reference_is
    text = report.table(list(rows.values()))
    assert (
        "| `up`, 10 VPN clients (+3 nodes) | 20 s | 40 s (previous labctl (main)) | 2.00x |" in text
    )


def test_a_failed_run_of_ours_says_so() -> None:
    data = {"runs": {"ours": [{"clients": 5, "up_seconds": 80.0, "error": ["agent timeout"]}]}}
    (up,) = [r for r in report.scale_rows(data) if r.what.startswith("`up`")]
    assert "FAILED" in up.what and "agent timeout" in up.what


def test_the_block_replaces_only_what_is_between_the_markers() -> None:
    text = f"# x\nbefore\n{report.BEGIN}\nold | table\n{report.END}\nafter\n"
    assert report.replace_block(text, "| new |\n") == (
        f"# x\nbefore\n{report.BEGIN}\n| new |\n{report.END}\nafter\n"
    )
    with pytest.raises(ValueError, match="needs one"):
        report.replace_block("no markers here", "| new |\n")
    with pytest.raises(ValueError, match="needs one"):
        report.replace_block(text + text, "| new |\n")


def test_interop_rows_compare_each_suite_with_its_own_reference() -> None:
    def pair(suite, client, gateway, mbps, cpu):
        return {
            "suite": suite,
            "client": client,
            "gateway": gateway,
            "iperf3_tcp_mbps": mbps,
            "agents_cpu_ms_per_mbit": cpu,
            "connect_to_reply_ms": 100,
            "load_average": 3.0,
        }

    data = {
        "when": "2026-12-02T17:00:00Z",
        "reference": {"client": "vpnc", "gateway": "strongswan"},
        "suites": ["aes128-sha1", "3des-md5"],
        "pairs": [
            pair("aes128-sha1", "ours", "ours", 150.0, 5.0),
            pair("aes128-sha1", "vpnc", "strongswan", 100.0, 10.0),
            pair("3des-md5", "ours", "ours", 30.0, 20.0),
            pair("3des-md5", "vpnc", "strongswan", 40.0, 25.0),
        ],
    }
    rows = {r.what: r for r in report.interop_rows(data)}
    aes = rows["iperf3 TCP aes128-sha1, ours client -> ours gateway"]
    assert (aes.ours, aes.reference, aes.ratio()) == (150.0, 100.0, 1.5)
    cpu = rows["client+gateway CPU per Mbit aes128-sha1, ours client -> ours gateway"]
    assert cpu.ratio() == 2.0  # half the CPU per Mbit: twice as good
    des = rows["iperf3 TCP 3des-md5, ours client -> ours gateway"]
    assert des.reference == 40.0 and des.ratio() == 0.75
    assert len(rows) == 6


def test_ike_rows_use_cpu_seconds_and_the_compared_engine() -> None:
    data = {
        "when": "2026-12-02T17:00:00Z",
        "reference": "previous labctl (main)",
        "load_average": [12.0, 10.0, 8.0],
        "results": [
            {
                "dh_group": 2,
                "sessions_per_second": 100.0,
                "sessions_per_cpu_second": 400.0,
                "reference_sessions_per_cpu_second": 250.0,
            }
        ],
    }
    (row,) = report.ike_rows(data)
    assert row.ratio() == 1.6 and row.reference_is == "previous labctl (main)"
    assert row.load == 12.0
