"""A hostile peer against the concentrator (issue 8), end to end.

mallory, a host on the concentrator's public link, runs tests/e2e/hostile/hostile_peer.py:
random and mutated datagrams to UDP 500/4500, a flood of aggressive-mode first messages with
random cookies, group names carrying newlines and a forged log record, garbage TCP streams
and idle TCP connections held open on the IPsec-over-TCP port -- bounded in count and time.
Meanwhile and afterwards the real clients behind the PIX must get in. Checked: the agent
stays up (same process, memory bounded), its log stays bounded (lines and bytes), the drop
counters show the categories, no injected text appears as a record of its own.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from labctl.agent.eventlog import LIMIT_WINDOW

from .conftest import ROOT, RunningLab, bring_up, labctl
from .test_seed_vpn import wait_until

TOPOLOGY = ROOT / "tests" / "e2e" / "topologies" / "hostile-peers.yaml"
SCRIPT = ROOT / "tests" / "e2e" / "hostile" / "hostile_peer.py"
CONCENTRATOR = "172.16.172.50"
SERVER = "192.168.2.10"
FORGED = "FORGED-RECORD"
RECORD = re.compile(r"^\d+ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} SEV=\d \S+ ")
# Bounds for what the whole run may add to the concentrator's log (it sends ~10,000 packets;
# before the fix each abandoned first message alone left one line).
MAX_NEW_LINES = 400
MAX_NEW_BYTES = 120_000
MAX_RSS_GROWTH_KB = 40_000


@dataclass
class AgentFacts:
    pid: int
    rss_kb: int
    log_lines: int
    log_bytes: int


def agent_facts(lab: RunningLab) -> AgentFacts:
    out = lab.exec(
        "vpn3000",
        "sh",
        "-c",
        "pid=$(cat /run/labctl/vpn-agent.pid); echo $pid; "
        "awk '/VmRSS/ {print $2}' /proc/$pid/status; "
        "cat /var/log/labctl/vpn.log* | wc -l; cat /var/log/labctl/vpn.log* | wc -c",
    ).stdout.split()
    return AgentFacts(*(int(x) for x in out))


def connected(lab: RunningLab, node: str) -> bool:
    return lab.show_json(node, "status")["state"] == "connected"


def ping(lab: RunningLab, node: str) -> None:
    lab.exec(node, "ping", "-c", "2", "-W", "2", SERVER)


def half_open_sas(lab: RunningLab) -> int:
    """IKE SAs the concentrator holds that are not established (the flood's abandoned ones)."""
    sas = lab.show_json("vpn3000", "stats")["ike_sas"]
    return sas["total"] - sas["established"]


def settle(lab: RunningLab) -> None:
    """Wait until everything the run leaves to timers has reached the log: the abandoned
    first messages expired (no half-open SA left), then every rate-limit window that was
    open by then closed (a window writes its summary LIMIT_WINDOW after it opened; no line
    for that long plus a flush means none is left). Conditions, not a fixed sleep."""
    wait_until("the abandoned first messages expired", lambda: half_open_sas(lab) == 0, 120, 2)
    quiet_for = LIMIT_WINDOW + 2
    lines, since = agent_facts(lab).log_lines, time.monotonic()
    deadline = since + 120
    while time.monotonic() - since < quiet_for:
        assert time.monotonic() < deadline, "the concentrator's log never went quiet"
        time.sleep(1)
        now_lines = agent_facts(lab).log_lines
        if now_lines != lines:
            lines, since = now_lines, time.monotonic()


@pytest.fixture(scope="module")
def lab() -> Iterator[RunningLab]:
    running = None
    try:
        running = bring_up(TOPOLOGY, "hostile")
        yield running
    finally:
        if running is not None:
            labctl("down", running.name, check=False)


@pytest.fixture(scope="module")
def hostile_run(lab: RunningLab) -> dict:
    """Run the hostile peer once; client2 connects while mallory holds its TCP connections."""
    wait_until(
        "both clients connected", lambda: connected(lab, "client1") and connected(lab, "client2")
    )
    before = agent_facts(lab)
    lab.exec("client2", "vpn", "disconnect")
    encoded = base64.b64encode(SCRIPT.read_bytes()).decode()
    lab.exec("mallory", "sh", "-c", f"echo {encoded} | base64 -d > /tmp/hostile_peer.py")
    started = time.monotonic()
    lab.exec(
        "mallory",
        "sh",
        "-c",
        f"nohup python3 /tmp/hostile_peer.py {CONCENTRATOR} --hold 25 --deadline 180 "
        "> /tmp/hostile.out 2>&1 &",
    )

    def output() -> str:
        return lab.exec("mallory", "cat", "/tmp/hostile.out", check=False).stdout

    wait_until("mallory holds its TCP connections", lambda: '"closed_by_server"' in output(), 180)
    # the IPsec-over-TCP client gets in while one host holds as many connections as it can
    during = lab.exec("client2", "vpn", "connect", "--wait", "--timeout", "60", check=False)
    wait_until("the hostile run ends", lambda: "done" in output().splitlines(), 200)
    summary = json.loads(output().splitlines()[-2])
    settle(lab)
    return {
        "before": before,
        "after": agent_facts(lab),
        "summary": summary,
        "during": during,
        "held": [json.loads(line) for line in output().splitlines() if line.startswith("{")],
        "seconds": time.monotonic() - started,
    }


def test_the_agent_survives_with_bounded_memory_and_log(hostile_run: dict) -> None:
    before, after = hostile_run["before"], hostile_run["after"]
    sent = sum(hostile_run["summary"]["sent"].values())
    print(f"hostile run: {sent} packets/connections sent; {before} -> {after}")
    assert sent > 8000, hostile_run["summary"]
    assert after.pid == before.pid, "the agent restarted"
    assert after.rss_kb - before.rss_kb < MAX_RSS_GROWTH_KB, (before, after)
    assert after.log_lines - before.log_lines < MAX_NEW_LINES, (before, after)
    assert after.log_bytes - before.log_bytes < MAX_NEW_BYTES, (before, after)


def test_drop_counters_show_the_categories(lab: RunningLab, hostile_run: dict) -> None:
    stats = lab.show_json("vpn3000", "stats")
    drops = stats["drops"]
    assert drops["malformed"] > 1000, drops  # random and mutated datagrams
    assert drops["unexpected"] > 300, drops  # random cookies: no such SA
    assert drops["refused"] > 1000, drops  # first messages beyond the half-open limit
    assert stats["log"]["suppressed"] > 1000, stats["log"]
    tcp = stats["tcp"]
    assert tcp["refused_by_reason"]["per_address"] > 0, tcp
    assert tcp["closed"].get("framing error", 0) > 0, tcp
    assert hostile_run["held"][1]["closed_by_server"] > 0  # mallory saw its refusals
    text = labctl("show", "--lab", lab.name, "vpn3000", "stats").stdout
    assert text.startswith("IKE messages dropped: malformed ")


def test_no_injected_text_becomes_a_record(lab: RunningLab, hostile_run: dict) -> None:
    rows = json.loads(labctl("show", "--lab", lab.name, "vpn3000", "log", "-v", "--json").stdout)
    assert rows and all(RECORD.match(row["line"]) for row in rows), [
        row["line"] for row in rows if not RECORD.match(row["line"])
    ][:5]
    forged = [row["line"] for row in rows if FORGED in row["line"]]
    assert forged, "the injected group names were logged (escaped)"
    for line in forged:
        assert "unknown group KEY_ID:" in line and ("\\x0a" in line or "\\x1b" in line)
    text = lab.exec("vpn3000", "vpn", "log", "-n", "2000").stdout.splitlines()
    assert all(RECORD.match(line) for line in text)


def test_real_clients_connect_during_and_after(lab: RunningLab, hostile_run: dict) -> None:
    during = hostile_run["during"]
    assert during.returncode == 0, (during.stdout, during.stderr)
    assert during.stdout.startswith("connected: 40.1.1.")
    assert connected(lab, "client1"), "the NAT-T session survived the run"
    ping(lab, "client1")
    ping(lab, "client2")
    lab.exec("client1", "vpn", "disconnect")
    again = lab.exec("client1", "vpn", "connect", "--wait", "--timeout", "60")
    assert again.stdout.startswith("connected: 40.1.1.")
    ping(lab, "client1")
