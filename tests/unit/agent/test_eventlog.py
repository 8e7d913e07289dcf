"""The agent's event log against hostile input (issue 8): wire strings cannot forge records,
floods are summarised, the file is bounded; `vpn log` reads across rotated files."""

from __future__ import annotations

import io
import re
from pathlib import Path

from labctl.agent.cli import log_tail
from labctl.agent.eventlog import EventLog, escape

RECORD = re.compile(r"^\d+ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} SEV=\d ")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_wire_strings_cannot_forge_a_record() -> None:
    out = io.StringIO()
    log = EventLog(out)
    evil_group = (
        "ciscovpn\n2 2026-11-29 16:00:01.123 SEV=5 AUTH/5 10.0.0.1 User [admin] authenticated"
    )
    log.warning("IKE/167", f"phase1 failed: unknown group KEY_ID:{evil_group}", "198.51.100.7")
    log.info("IKE/184", "client Cisco\r\x1b[2Jx\u2028y\u202eevil\\x0a", "198.51.100.7\n")
    lines = lines_of(out)
    assert len(lines) == 2 and all(RECORD.match(line) for line in lines)
    assert "KEY_ID:ciscovpn\\x0a2 2026-11-29" in lines[0]
    assert "Cisco\\x0d\\x1b[2Jx\\u2028y\\u202eevil\\\\x0a" in lines[1]
    assert "198.51.100.7\\x0a" in lines[1]


def test_escape_is_unambiguous_and_leaves_plain_text_alone() -> None:
    assert escape("Group [ciscovpn] User [vpnclient1]") == "Group [ciscovpn] User [vpnclient1]"
    assert escape("a\\x0ab") == "a\\\\x0ab"  # a literal backslash-x can't pass for an escape
    assert escape("a\nb") == "a\\x0ab"
    assert escape("\x00\x7f\x85\ufeff") == "\\x00\\x7f\\x85\\ufeff"


def test_a_flood_is_one_line_then_a_summary_per_window() -> None:
    out, clock = io.StringIO(), Clock()
    log = EventLog(out, clock=clock, window=10.0)
    for _ in range(313):
        log.warning("IKE/0", "dropped a message: malformed", "203.0.113.5", limit="drop malformed")
    log.warning("IKE/0", "dropped a message: refused", "203.0.113.5", limit="drop refused")
    log.warning("IKE/0", "dropped a message: malformed", "203.0.113.6", limit="drop malformed")
    assert len(lines_of(out)) == 3  # one per (peer, reason)
    log.flush()
    assert len(lines_of(out)) == 3  # nothing is due before the window ends
    clock.now += 10.0
    log.flush()
    lines = lines_of(out)
    assert len(lines) == 4
    assert lines[3].endswith(
        "IKE/0 203.0.113.5 ... 312 more like this (drop malformed) in the last 10 s"
    )
    assert log.suppressed == 312
    # the next one after the window is written again
    log.warning("IKE/0", "dropped a message: malformed", "203.0.113.5", limit="drop malformed")
    assert len(lines_of(out)) == 5


def test_many_sources_cannot_each_get_a_line() -> None:
    out, clock = io.StringIO(), Clock()
    log = EventLog(out, clock=clock, window=10.0, max_keys=50)
    for i in range(5000):
        log.warning("IKE/167", "phase1 failed: timeout", f"10.{i // 250}.{i % 250}.1", limit="x")
    assert len(lines_of(out)) == 50
    clock.now += 10.0
    log.flush()
    lines = lines_of(out)
    assert len(lines) == 51
    assert "4950 more rate-limited events from 4950 peer(s) suppressed" in lines[-1]


def test_lines_without_a_limit_are_never_dropped() -> None:
    out = io.StringIO()
    log = EventLog(out, clock=Clock())
    for i in range(100):
        log.info("IKE/184", f"session {i} up")
    assert len(lines_of(out)) == 100


def test_the_log_file_is_rotated_by_size_and_vpn_log_reads_across(tmp_path: Path) -> None:
    path = tmp_path / "vpn.log"
    path.write_text("0 old line from a previous run\n")
    with open(path, "a") as stream:  # as the service opens it for the daemon's stdout
        log = EventLog(stream, max_bytes=20_000, backups=2)
        for i in range(1000):
            log.info("IKE/184", f"line {i:04d} " + "x" * 60)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["vpn.log", "vpn.log.1", "vpn.log.2"]
    sizes = [(tmp_path / f).stat().st_size for f in files]
    assert all(size <= 20_000 + 200 for size in sizes), sizes
    assert log.rotations >= 3
    first = path.read_text().splitlines()[0]
    assert "LOG/2" in first and "log rotated; older lines in" in first
    tail = log_tail(path, 200)
    assert tail is not None and len(tail) == 200
    numbers = [int(m.group(1)) for m in (re.search(r"line (\d{4})", t) for t in tail) if m]
    assert numbers[-1] == 999 and numbers == sorted(numbers)  # in order, across files


def test_vpn_log_without_a_log(tmp_path: Path) -> None:
    assert log_tail(tmp_path / "vpn.log", 10) is None
