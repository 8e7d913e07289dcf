"""IPsec over TCP end to end: `labctl test topologies/ipsec-over-tcp.yaml` passes every
case, and a capture of the sessions' TCP connections dissects cleanly with Wireshark's own
Cisco "tcpencap" dissector, one cTCP record per segment, and decrypts (IKE and ESP) with
the concentrator's lab-only key export through tools/wireshark/ctcp.lua (tcpencap cannot
decrypt ESP: it leaves the trailer in the ESP's reported length)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from labctl.naming import bridge_name, fabric_netns
from labctl.topology import load_lab

from .conftest import ROOT, RunningLab, bring_up, labctl

TOPOLOGY = ROOT / "topologies" / "ipsec-over-tcp.yaml"
DECODE_AS = ["-d", "tcp.port==10000,tcpencap"]
LUA = ["-X", f"lua_script:{ROOT / 'tools' / 'wireshark' / 'ctcp.lua'}"]
DECODE_AS_LUA = [*LUA, "-d", "tcp.port==10000,ctcp"]
CLIENTS = ("client1", "client2")


def test_labctl_test_passes_every_case_and_writes_junit(tmp_path: Path) -> None:
    result = labctl("test", str(TOPOLOGY), "--report-dir", str(tmp_path), timeout=1200)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert set(cases) == {"expect", "priority", "tcp-disabled"}
    for name, case in cases.items():
        assert case.find("failure") is None and case.find("error") is None, (
            name,
            ET.tostring(case, encoding="unicode")[:3000],
        )
    assert "3/3 passed" in result.stdout
    log = "".join(c.findtext("system-out") or "" for c in cases.values())
    assert "sessions on vpn3000: 2 rows, as expected" in log  # the checks really ran
    # priority: each session follows its own translation, TCP (client1) and UDP (client2)
    assert re.search(r"vpnclient1 171\.69\.89\.78\(\d+\), vpnclient2 171\.69\.89\.78", log)


def wait_until(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not true after {timeout:.0f}s (last: {last!r})")


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The lab with keys exported and clients that wait to be told to connect, so the
    capture holds both TCP connections from their SYN on."""
    work = tmp_path_factory.mktemp("tcp-capture")
    spec = yaml.safe_load(TOPOLOGY.read_text())
    spec.pop("expect", None)
    spec.pop("scenarios", None)
    spec["topology"]["kinds"]["vpn-client"]["vpn"]["auto-connect"] = False
    spec["topology"]["nodes"]["vpn3000"]["vpn"]["debug"] = {"export-keys": True}
    topology = work / "ipsec-over-tcp-capture.yaml"
    topology.write_text(yaml.safe_dump(spec, sort_keys=False))
    public = next(s for s in load_lab(topology).segments if s.name == "public")
    lab: RunningLab | None = None
    dump = None
    try:
        lab = bring_up(topology, "tcpcap")
        pcap = work / "public.pcap"
        netns, bridge = fabric_netns(lab.name), bridge_name(public.index)
        tcpdump = ["tcpdump", "-i", bridge, "-U", "-n", "-s", "0", "-w", str(pcap)]
        dump = subprocess.Popen(
            ["ip", "netns", "exec", netns, *tcpdump, "tcp port 10000"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert dump.stderr is not None and "listening" in dump.stderr.readline()
        for client in CLIENTS:
            lab.exec(client, "vpn", "connect")
        for client in CLIENTS:
            wait_until(
                f"{client} connected",
                lambda c=client: lab.show_json(c, "status")["state"] == "connected",
            )
            ping = lab.exec(client, "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.168.2.10")
            assert "3 received" in ping.stdout, ping.stdout
        for client in CLIENTS:  # deletes travel on the connection, then it closes
            lab.exec(client, "vpn", "disconnect")
        wait_until("sessions gone", lambda: lab.show_json("vpn3000", "sessions") == [])
        time.sleep(1)
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
        keys = {
            name: lab.exec("vpn3000", "cat", f"/var/log/labctl/keys/{name}").stdout.splitlines()
            for name in ("ikev1_decryption_table", "esp_sa")
        }
        yield {"pcap": pcap, "keys": keys}
    finally:
        if dump is not None and dump.poll() is None:
            dump.kill()
            dump.wait()
        if lab is not None:
            labctl("down", lab.name, check=False)


def tshark(*args: str) -> str:
    done = subprocess.run(
        ["tshark", "-n", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_capture_dissects_without_malformed_packets(captured: dict) -> None:
    pcap = str(captured["pcap"])
    verbose = tshark("-r", pcap, *DECODE_AS, "-V")
    assert "Malformed" not in verbose
    assert "Magic number: 21456c6910" in verbose and "Magic 2: 0100" in verbose
    assert "ISAKMP traffic direction: Client to server (0x4000)" in verbose
    assert "ISAKMP traffic direction: Server to client (0x0000)" in verbose
    assert "Exchange type: Aggressive (4)" in verbose
    assert "Exchange type: Transaction (Config Mode) (6)" in verbose
    assert "Exchange type: Quick Mode (32)" in verbose
    assert "Exchange type: Informational (5)" in verbose  # the deletes
    expert = tshark("-r", pcap, *DECODE_AS, "-q", "-z", "expert,error")
    assert "Errors" not in expert, expert
    protocols = tshark("-r", pcap, *DECODE_AS, "-T", "fields", "-e", "frame.protocols")
    stacks = set(protocols.split())
    assert "eth:ethertype:ip:tcp:tcpencap:udp:isakmp" in stacks
    assert "eth:ethertype:ip:tcp:tcpencap:esp" in stacks
    # one cTCP record per segment, as Cisco peers (and the dissector) expect: every
    # segment with data is a whole record
    loose = tshark("-r", pcap, *DECODE_AS, "-Y", "tcp.len > 0 && !tcpencap")
    assert loose.strip() == "", loose
    # Wireshark's heuristic finds the records without any decode-as, too
    plain = tshark("-r", pcap, "-T", "fields", "-e", "frame.protocols")
    assert set(plain.split()) == stacks


def test_capture_decrypts_with_the_exported_keys(captured: dict) -> None:
    args = ["-r", str(captured["pcap"]), *DECODE_AS_LUA]
    for line in captured["keys"]["ikev1_decryption_table"]:
        args += ["-o", f"uat:ikev1_decryption_table:{line}"]
    args += ["-o", "esp.enable_encryption_decode:TRUE"]
    args += ["-o", "esp.enable_authentication_check:TRUE"]
    for line in captured["keys"]["esp_sa"]:
        args += ["-o", f"uat:esp_sa:{line}"]
    verbose = tshark(*args, "-V")
    assigned = set(re.findall(r"INTERNAL IP4 ADDRESS: (40\.1\.1\.\d+)", verbose))
    assert len(assigned) == 2, assigned  # each client's decrypted Mode-Config REPLY
    assert verbose.count("Echo (ping) request") >= 6  # 3 per client, decrypted from ESP
    assert verbose.count("Echo (ping) reply") >= 6
    assert "[Good: True]" in verbose and "[Bad: True]" not in verbose
    assert "Malformed" not in verbose
