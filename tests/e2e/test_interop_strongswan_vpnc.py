"""Real VPN software as lab nodes (issue 10), one lab: a strongSwan client and a vpnc
client behind the PIX's PAT connect to our concentrator, and our client behind the same
PAT connects to a strongSwan concentrator (topologies/interop-strongswan-vpnc.yaml).

Tunnels come up, pings go through each, the PAT shows the UDP 4500 translations, and the
sessions/status tables have the same record shape whichever software produced them.
State is read through one in-process lab handle (the show collectors `labctl show` runs):
on a loaded machine each CLI call costs seconds; one `labctl show --json` checks the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from labctl.lifecycle import LabHandle
from labctl.runtime import DockerRuntime
from labctl.state import collect
from labctl.topology import load_lab_text

from .conftest import ROOT, RunningLab, bring_up, labctl

TOPOLOGY = ROOT / "topologies" / "interop-strongswan-vpnc.yaml"
PIX_GLOBAL = "171.69.89.78"
CLIENTS = {"client1": "ours", "swanc": "strongswan", "vpncc": "vpnc"}
TARGETS = {"client1": "192.168.3.10", "swanc": "192.168.2.10", "vpncc": "192.168.2.10"}


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Lab:
    """The running lab: the CLI for one check, a handle for reading state quickly."""

    def __init__(self, running: RunningLab, handle: LabHandle) -> None:
        self.running, self.handle = running, handle

    def show(self, node: str, what: str) -> Any:
        return collect(self.handle, node, what)[0]

    def run(self, node: str, command: str) -> str:
        result = self.handle.session(node).run(command)
        assert result.exit_status == 0, f"{node}: {command}: {result.stdout}{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    running = None
    try:
        running = bring_up(TOPOLOGY, "swan-interop")
        text = TOPOLOGY.read_text().replace(
            "name: interop-strongswan-vpnc", f"name: {running.name}"
        )
        with LabHandle.open(load_lab_text(text), DockerRuntime()) as handle:
            yield Lab(running, handle)
    finally:
        if running is not None:
            labctl("down", running.name, check=False)


@pytest.fixture(scope="module")
def connected(lab: Lab) -> dict[str, dict]:
    def all_connected() -> dict[str, dict] | None:
        status = {name: lab.show(name, "status") for name in CLIENTS}
        return status if all(s["state"] == "connected" for s in status.values()) else None

    return wait_for(all_connected, 90, "every client connected")


def sessions(lab: Lab, node: str) -> dict[str, dict]:
    return {s["username"]: s for s in lab.show(node, "sessions")}


def test_every_implementation_connects_behind_the_pat(lab: Lab, connected: dict[str, dict]) -> None:
    for name, implementation in CLIENTS.items():
        assert connected[name]["implementation"] == implementation
    ours = sessions(lab, "vpn3000")
    swan = sessions(lab, "swangw")
    assert set(ours) == {"swanuser", "vpncuser"} and set(swan) == {"vpnclient1"}
    for session in [*ours.values(), *swan.values()]:
        assert session["public_ip"] == PIX_GLOBAL
        assert session["protocol"] == "IPsec/NAT-T"
        assert session["ipsec"][0]["udp_destination_port"] == 4500
    assert ours["swanuser"]["assigned_ip"] == connected["swanc"]["assigned_ip"]
    assert ours["vpncuser"]["assigned_ip"] == connected["vpncc"]["assigned_ip"]
    assert swan["vpnclient1"]["assigned_ip"] == connected["client1"]["assigned_ip"]
    # the PAT kept the two tunnels to vpn3000 apart by their translated ports
    assert ours["swanuser"]["public_port"] != ours["vpncuser"]["public_port"]
    # strongSwan's charon uses the kernel's ESP when it has one, else kernel-libipsec
    esp = lab.run("swangw", "labctl-swan esp").strip()
    assert swan["vpnclient1"]["esp"] == esp and esp in ("kernel", "libipsec")
    if esp == "libipsec":
        assert "ipsec0" in lab.run("swangw", "ip -br link")


def test_pings_go_through_every_tunnel_and_are_counted(
    lab: Lab, connected: dict[str, dict]
) -> None:
    before_ours = sessions(lab, "vpn3000")
    before_swan = sessions(lab, "swangw")["vpnclient1"]["ipsec"][0]
    # the lab is shared by the module: count this test's packets, not the lab's lifetime
    before_clients = {name: lab.show(name, "status")["packets_encrypted"] for name in CLIENTS}
    for name, target in TARGETS.items():
        ping = lab.run(name, f"ping -c 3 -i 0.2 -W 2 {target}")
        assert "3 received" in ping, f"{name} ({CLIENTS[name]}): {ping}"
    after_ours = sessions(lab, "vpn3000")
    for user in ("swanuser", "vpncuser"):
        rx = (
            after_ours[user]["ipsec"][0]["packets_rx"] - before_ours[user]["ipsec"][0]["packets_rx"]
        )
        assert rx >= 3, (user, after_ours[user]["ipsec"][0])
    after_swan = sessions(lab, "swangw")["vpnclient1"]["ipsec"][0]
    assert after_swan["packets_rx"] - before_swan["packets_rx"] >= 3
    assert after_swan["packets_tx"] - before_swan["packets_tx"] >= 3
    # the clients count what went through them, each from its own state
    sent = {
        name: lab.show(name, "status")["packets_encrypted"] - before_clients[name]
        for name in CLIENTS
    }
    assert sent["swanc"] >= 3  # charon's child SA counters
    assert sent["vpncc"] >= 3  # vpnc's TUN counters


def test_pat_xlate_shows_three_udp_4500_translations(lab: Lab, connected: dict[str, dict]) -> None:
    rows = [
        r
        for r in lab.show("pix", "xlate")
        if r["protocol"] == "udp" and r["local_port"] == 4500 and r["remote_port"] == 4500
    ]
    assert {r["local_ip"] for r in rows} == {"10.10.10.2", "10.10.10.3", "10.10.10.4"}, rows
    assert {r["global_ip"] for r in rows} == {PIX_GLOBAL}
    to_ours = [r["global_port"] for r in rows if r["remote_ip"] == "172.16.172.50"]
    assert len(to_ours) == 2 and len(set(to_ours)) == 2, rows


def test_sessions_and_status_have_the_same_shape_for_every_implementation(
    lab: Lab, connected: dict[str, dict]
) -> None:
    ours = next(iter(sessions(lab, "vpn3000").values()))
    # through the CLI too: what a user's `labctl show ... --json` prints
    (swan,) = lab.running.show_json("swangw", "sessions")
    assert set(ours) == set(swan)
    assert set(ours["ike"]) == set(swan["ike"])
    assert set(ours["ipsec"][0]) == set(swan["ipsec"][0])
    assert ours["unreported"] == [] and "client_type" in swan["unreported"]
    assert swan["client_type"] is None
    shapes = {name: set(record) for name, record in connected.items()}
    assert shapes["client1"] == shapes["swanc"] == shapes["vpncc"], shapes
    assert connected["vpncc"]["spi_in"] is None and "spi_in" in connected["vpncc"]["unreported"]


def test_scenario_disconnect_and_connect_drive_strongswan_and_vpnc(
    lab: Lab, connected: dict[str, dict]
) -> None:
    """What a scenario's `disconnect:`/`connect:` steps run (the implementation's client
    commands): the session goes away on our concentrator and comes back."""
    from labctl.kinds import implementation_of

    for node, user in (("swanc", "swanuser"), ("vpncc", "vpncuser")):
        commands = implementation_of(lab.handle.lab.node(node)).client
        assert commands is not None
        lab.run(node, commands.disconnect)
        wait_for(lambda u=user: u not in sessions(lab, "vpn3000"), 30, f"{user}'s session to end")
        assert lab.show(node, "status")["state"] == "disconnected"
        lab.run(node, commands.connect)
        assert lab.show(node, "status")["state"] == "connected"
        wait_for(lambda u=user: u in sessions(lab, "vpn3000"), 30, f"{user}'s session back")
        ping = lab.run(node, "ping -c 2 -i 0.2 -W 2 192.168.2.10")
        assert "2 received" in ping, ping
