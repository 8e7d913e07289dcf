"""Real VPN software as lab nodes (issue 10), the mixed lab: our client, a vpnc and a
strongSwan client behind the PIX's PAT connect to our concentrator, and three more of the
same to a strongSwan concentrator (topologies/interop-strongswan-vpnc.yaml).

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
CLIENTS = {
    "client1": "ours",
    "client2": "ours",
    "swanc": "strongswan",
    "swanc2": "strongswan",
    "vpncc": "vpnc",
    "vpncc2": "vpnc",
}
TO_OURS = {"client2": "vpnclient2", "swanc": "swanuser", "vpncc": "vpncuser"}
TO_SWAN = {"client1": "vpnclient1", "swanc2": "swanuser2", "vpncc2": "vpncuser2"}
TARGETS = {name: "192.168.2.10" for name in TO_OURS} | {name: "192.168.3.10" for name in TO_SWAN}


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
    assert set(ours) == set(TO_OURS.values()) and set(swan) == set(TO_SWAN.values())
    for session in [*ours.values(), *swan.values()]:
        assert session["public_ip"] == PIX_GLOBAL
        assert session["protocol"] == "IPsec/NAT-T"
        assert session["ipsec"][0]["udp_destination_port"] == 4500
    for node, user in TO_OURS.items():
        assert ours[user]["assigned_ip"] == connected[node]["assigned_ip"]
    # a written client version reaches the concentrator (vpnc's application version)
    assert ours["vpncuser"]["client_version"] == "3.6.2 (Rel)"
    for node, user in TO_SWAN.items():
        assert swan[user]["assigned_ip"] == connected[node]["assigned_ip"]
    # the PAT kept the three tunnels to each concentrator apart by their translated ports
    assert len({s["public_port"] for s in ours.values()}) == 3
    assert len({s["public_port"] for s in swan.values()}) == 3
    # strongSwan's charon uses the kernel's ESP when it has one, else kernel-libipsec
    esp = lab.run("swangw", "labctl-swan esp").strip()
    assert {s["esp"] for s in swan.values()} == {esp} and esp in ("kernel", "libipsec")
    if esp == "libipsec":
        assert "ipsec0" in lab.run("swangw", "ip -br link")


def test_pings_go_through_every_tunnel_and_are_counted(
    lab: Lab, connected: dict[str, dict]
) -> None:
    before = {gw: sessions(lab, gw) for gw in ("vpn3000", "swangw")}
    # the lab is shared by the module: count this test's packets, not the lab's lifetime
    before_clients = {name: lab.show(name, "status")["packets_encrypted"] for name in CLIENTS}
    for name, target in TARGETS.items():
        ping = lab.run(name, f"ping -c 3 -i 0.2 -W 2 {target}")
        assert "3 received" in ping, f"{name} ({CLIENTS[name]}): {ping}"
    for gw, users in (("vpn3000", TO_OURS.values()), ("swangw", TO_SWAN.values())):
        after = sessions(lab, gw)
        for user in users:
            sa, old = after[user]["ipsec"][0], before[gw][user]["ipsec"][0]
            assert sa["packets_rx"] - old["packets_rx"] >= 3, (gw, user, sa)
            assert sa["packets_tx"] - old["packets_tx"] >= 3, (gw, user, sa)
    # the clients count what went through them, each from its own state
    sent = {
        name: lab.show(name, "status")["packets_encrypted"] - before_clients[name]
        for name in CLIENTS
    }
    assert all(count >= 3 for count in sent.values()), sent  # charon's SA, vpnc's TUN counters


def test_pat_xlate_shows_six_udp_4500_translations(lab: Lab, connected: dict[str, dict]) -> None:
    rows = [
        r
        for r in lab.show("pix", "xlate")
        if r["protocol"] == "udp" and r["local_port"] == 4500 and r["remote_port"] == 4500
    ]
    assert {r["local_ip"] for r in rows} == {f"10.10.10.{i}" for i in range(2, 8)}, rows
    assert {r["global_ip"] for r in rows} == {PIX_GLOBAL}
    for gateway in ("172.16.172.50", "172.16.172.60"):
        ports = [r["global_port"] for r in rows if r["remote_ip"] == gateway]
        assert len(ports) == 3 and len(set(ports)) == 3, rows


def test_sessions_and_status_have_the_same_shape_for_every_implementation(
    lab: Lab, connected: dict[str, dict]
) -> None:
    ours = next(iter(sessions(lab, "vpn3000").values()))
    # through the CLI too: what a user's `labctl show ... --json` prints
    swan = lab.running.show_json("swangw", "sessions")[0]
    assert set(ours) == set(swan)
    assert set(ours["ike"]) == set(swan["ike"])
    assert set(ours["ipsec"][0]) == set(swan["ipsec"][0])
    assert ours["unreported"] == [] and "client_type" in swan["unreported"]
    assert swan["client_type"] is None
    shapes = {name: set(record) for name, record in connected.items()}
    assert len({frozenset(shape) for shape in shapes.values()}) == 1, shapes
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
