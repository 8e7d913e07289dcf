"""A real vpnc as a lab client: the concentrator AGENT (not just the IKE engine) accepts a
client it did not write, next to one of ours, both behind the PIX's PAT with NAT-T.

client2 is a plain host running Debian's vpnc with our own vpnc-script (it only configures
vpnc's TUN inside the node). The concentrator is narrowed to one suite per case with a
topology edit + `labctl push` (vpnc has no switch to choose its cipher; it offers its whole
list and the responder picks): 3DES/MD5 (the seed's suite; vpnc wants its weak-crypto
switches for it) and AES-128/SHA1.
"""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Iterator

import pytest
import yaml

from .conftest import ROOT, RunningLab, bring_up, labctl

TOPOLOGY = ROOT / "tests" / "e2e" / "topologies" / "vpnc-client.yaml"
SCRIPT = ROOT / "tests" / "e2e" / "vpnc" / "lab-vpnc-script"
SERVER = "192.168.2.10"
PIX_GLOBAL = "171.69.89.78"
VPNC_DIR = "/etc/labctl/vpnc"
VPNC_PID = "/run/labctl-vpnc.pid"
VPNC_STATE = "/run/labctl-vpnc"
VPNC_TUN = "vpnc0"
VPNC_LOG = "/var/log/labctl-vpnc.log"

SUITES = {
    # id: (ike proposal, ipsec proposal, screen cipher, screen hash, vpnc weak switches)
    "3des-md5": ("3des-md5-modp1024", "3des-md5", "3DES-168", "MD5", True),
    "aes128-sha1": ("aes128-sha1-modp1024", "aes128-sha1", "AES-128", "SHA1", False),
}


def write_node_file(lab: RunningLab, node: str, path: str, text: str, mode: str) -> None:
    encoded = base64.b64encode(text.encode()).decode()
    directory = path.rsplit("/", 1)[0]
    lab.exec(
        node,
        "sh",
        "-c",
        f"mkdir -p {directory} && echo {encoded} | base64 -d > {path} && chmod {mode} {path}",
    )


def vpnc_config(weak: bool) -> str:
    lines = [
        "IPSec gateway 172.16.172.50",
        "IPSec ID ciscovpn",
        "IPSec secret cisco123",
        "Xauth username vpnclient2",
        "Xauth password vpnclient2pw",
        "NAT Traversal Mode natt",
        "IKE DH Group dh2",
        "Perfect Forward Secrecy nopfs",
        f"Interface name {VPNC_TUN}",
        f"Script {VPNC_DIR}/lab-vpnc-script",
        f"Pidfile {VPNC_PID}",
    ]
    if weak:
        lines += ["Enable weak encryption", "Enable weak authentication"]
    return "\n".join(lines) + "\n"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[RunningLab]:
    # A private copy: the cases narrow the concentrator's proposals in it and push.
    topology = tmp_path_factory.mktemp("vpnc") / TOPOLOGY.name
    shutil.copy(TOPOLOGY, topology)
    running = None
    try:
        running = bring_up(topology, "vpnc")
        write_node_file(
            running, "client2", f"{VPNC_DIR}/lab-vpnc-script", SCRIPT.read_text(), "755"
        )
        yield running
    finally:
        if running is not None:
            labctl("down", running.name, check=False)


def narrow_concentrator(lab: RunningLab, ike: str, ipsec: str) -> None:
    data = yaml.safe_load(lab.topology.read_text())
    group = data["topology"]["nodes"]["vpn3000"]["vpn"]["groups"]["ciscovpn"]
    group["ike-proposals"], group["ipsec-proposals"] = [ike], [ipsec]
    lab.topology.write_text(yaml.safe_dump(data, sort_keys=False))
    labctl("push", "--lab", lab.name, "vpn3000")


def sessions(lab: RunningLab) -> dict[str, dict]:
    return {s["username"]: s for s in lab.show_json("vpn3000", "sessions")}


def start_vpnc(lab: RunningLab, weak: bool) -> None:
    """Write vpnc's configuration, start it and wait for our script's "connected" mark, in
    one management round trip. vpnc daemonizes once the tunnel is up; its output goes to a
    file so the daemon does not hold the session open."""
    config = base64.b64encode(vpnc_config(weak).encode()).decode()
    script = (
        f"echo {config} | base64 -d > {VPNC_DIR}/lab.conf && chmod 600 {VPNC_DIR}/lab.conf && "
        f"vpnc {VPNC_DIR}/lab.conf > {VPNC_LOG} 2>&1 || {{ cat {VPNC_LOG}; exit 1; }}; "
        f"for i in $(seq 100); do test -f {VPNC_STATE}/connected && exit 0; sleep 0.1; done; "
        f"echo 'the script never marked the tunnel up'; cat {VPNC_LOG}; exit 1"
    )
    result = lab.exec("client2", "sh", "-c", script, check=False)
    assert result.returncode == 0, f"vpnc did not connect:\n{result.stdout}{result.stderr}"


def stop_vpnc(lab: RunningLab) -> None:
    """SIGTERM (vpnc then sends its Deletes) and wait until it removed its pid file."""
    lab.exec(
        "client2",
        "sh",
        "-c",
        f"test -f {VPNC_PID} && kill $(cat {VPNC_PID}); "
        f"for i in $(seq 50); do test -f {VPNC_PID} || exit 0; sleep 0.1; done; exit 1",
        check=False,
    )


@pytest.fixture(params=list(SUITES))
def suite(request, lab: RunningLab) -> Iterator[tuple]:
    ike, ipsec, cipher, hashing, weak = SUITES[request.param]
    narrow_concentrator(lab, ike, ipsec)
    # Our client offers both suites; reconnect it so it negotiates the narrowed one too.
    lab.exec("client1", "sh", "-c", "vpn disconnect && vpn connect --wait --timeout 30")
    start_vpnc(lab, weak)
    try:
        yield cipher, hashing
    finally:
        stop_vpnc(lab)


def test_vpnc_and_our_client_both_get_sessions_and_pass_traffic(
    lab: RunningLab, suite: tuple
) -> None:
    cipher, hashing = suite

    def both_sessions() -> dict | None:
        table = sessions(lab)
        return table if {"vpnclient1", "vpnclient2"} <= set(table) else None

    table = wait_for(both_sessions, 20, "both sessions on the concentrator")
    ours, vpnc = table["vpnclient1"], table["vpnclient2"]
    # vpnc announces "Cisco Systems VPN Client 0.5.3...:Linux" in Mode-Config.
    assert vpnc["client_type"] == "Linux", vpnc
    assert vpnc["client_version"].startswith("0.5.3"), vpnc
    assert ours["client_type"] == "WinNT"
    for session in (ours, vpnc):
        assert session["protocol"] == "IPsec/NAT-T"
        assert session["encryption"] == cipher
        assert session["public_ip"] == PIX_GLOBAL
        assert session["ike"]["encryption"] == cipher and session["ike"]["hashing"] == hashing
        (child,) = session["ipsec"]
        assert child["encryption"] == cipher and child["hashing"] == hashing
        assert child["udp_destination_port"] == 4500
    # One global address, two translated ports: the PAT kept the two tunnels apart.
    assert ours["public_port"] != vpnc["public_port"]
    env = lab.exec("client2", "cat", f"{VPNC_STATE}/env").stdout
    assert f"INTERNAL_IP4_ADDRESS={vpnc['assigned_ip']}" in env

    route = lab.exec("client2", "ip", "route", "get", SERVER).stdout
    assert f"dev {VPNC_TUN}" in route, route
    before = vpnc["ipsec"][0]["packets_rx"]
    ping = lab.exec("client2", "ping", "-c", "3", "-i", "0.2", "-W", "2", SERVER)
    assert "3 received" in ping.stdout, ping.stdout
    after = sessions(lab)["vpnclient2"]["ipsec"][0]
    assert after["packets_rx"] - before >= 3 and after["packets_tx"] >= 3, after
    ping = lab.exec("client1", "ping", "-c", "2", "-i", "0.2", "-W", "2", SERVER)
    assert "2 received" in ping.stdout, ping.stdout


def test_vpnc_disconnect_ends_its_session_only(lab: RunningLab) -> None:
    narrow_concentrator(lab, *SUITES["aes128-sha1"][:2])
    start_vpnc(lab, weak=False)
    wait_for(lambda: "vpnclient2" in sessions(lab), 20, "vpnc's session")
    stop_vpnc(lab)  # vpnc sends a Delete for its SAs when it terminates
    wait_for(lambda: "vpnclient2" not in sessions(lab), 15, "vpnc's session to end")
    assert "vpnclient1" in sessions(lab)
    ping = lab.exec("client1", "ping", "-c", "1", "-W", "2", SERVER)
    assert "1 received" in ping.stdout
