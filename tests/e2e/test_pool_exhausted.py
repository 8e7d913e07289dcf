"""An exhausted address pool (issue 8): a /32 pool and two clients. The second client must
fail the way it fails against a VPN 3000 -- no address, the IKE SA deleted, its status
saying why, `vpn connect` exiting non-zero -- and the concentrator keeps no half tunnel.
When the first client leaves, the address is free again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from .conftest import ROOT, RunningLab, bring_up, labctl

TOPOLOGY = ROOT / "tests" / "e2e" / "topologies" / "pool-exhausted.yaml"
REASON = "no address available from the concentrator's pool"


@pytest.fixture(scope="module")
def lab() -> Iterator[RunningLab]:
    running = None
    try:
        running = bring_up(TOPOLOGY, "pool")
        yield running
    finally:
        if running is not None:
            labctl("down", running.name, check=False)


def vpn_stats(lab: RunningLab) -> dict:
    return json.loads(lab.exec("vpn3000", "vpn", "stats").stdout)


def test_the_second_client_is_refused_and_no_half_tunnel_stays(lab: RunningLab) -> None:
    first = lab.exec("client1", "vpn", "connect", "--wait", "--timeout", "60")
    assert first.stdout.strip() == "connected: 40.1.1.1 via 172.16.172.50"

    second = lab.exec("client2", "vpn", "connect", "--wait", "--timeout", "60", check=False)
    assert second.returncode != 0, second.stdout
    assert REASON in second.stderr, second.stderr

    status = lab.show_json("client2", "status")
    assert status["state"] == "failed" and status["assigned_ip"] is None
    assert REASON in status["last_error"]

    sessions = lab.show_json("vpn3000", "sessions")
    assert [(s["username"], s["assigned_ip"]) for s in sessions] == [("vpnclient1", "40.1.1.1")]
    stats = vpn_stats(lab)
    assert stats["ike"]["modecfg_no_address"] == 1
    assert stats["ike_sas"] == {"total": 1, "established": 1}  # client2's SA was deleted
    assert len(stats["dataplane"]["tunnels"]) == 1  # and it never got a tunnel
    log = lab.exec("vpn3000", "vpn", "log", "-n", "200").stdout
    assert (
        "Group [ciscovpn] User [vpnclient2] Mode-Config with 171.69.89.78:" in log
        and "failed: no address available in the pool of group ciscovpn; IKE SA deleted" in log
    ), log


def test_the_address_is_free_again_once_the_first_client_leaves(lab: RunningLab) -> None:
    lab.exec("client1", "vpn", "disconnect")
    deadline = time.monotonic() + 15
    while lab.show_json("vpn3000", "sessions") and time.monotonic() < deadline:
        time.sleep(0.5)
    second = lab.exec("client2", "vpn", "connect", "--wait", "--timeout", "60")
    assert second.stdout.strip() == "connected: 40.1.1.1 via 172.16.172.50"
