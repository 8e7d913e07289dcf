"""The user-space ESP data plane between real network namespaces, TUNs, veths and a real
nftables masquerade (conntrack), run with the nodes' interpreter (python3 + cryptography 38).

Needs root, /dev/net/tun, iproute2, nft, conntrack, tcpdump, tshark and ping.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.esp_support.netns_lab import (
    A_OUTER,
    B_OUTER,
    CLIENT_INNER,
    NAT_OUTSIDE,
    NetnsLab,
    Runner,
    pair_configs,
    sa_config,
    wait_for,
)
from tests.unit.esp.esp_helpers import read_pcap_ipv4, tshark_esp_sa_option, tshark_fields

TOOLS = ("ip", "nft", "conntrack", "tcpdump", "tshark", "ping")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun"),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in TOOLS), reason=f"needs all of {', '.join(TOOLS)}"
    ),
]


# ---------------------------------------------------------------------- helpers
def tunnel(runner: Runner) -> dict[str, Any]:
    (t,) = runner.stats()["tunnels"].values()
    return t


def delta(after: dict[str, Any], before: dict[str, Any], *keys: str) -> tuple[int, ...]:
    return tuple(after[k] - before[k] for k in keys)


@contextmanager
def capture(lab: NetnsLab, role: str, iface: str, bpf: str, path: Path) -> Iterator[Path]:
    proc = lab.spawn(
        role,
        "tcpdump",
        "-i",
        iface,
        "-n",
        "-U",
        "--immediate-mode",
        "-s",
        "0",
        "-w",
        str(path),
        bpf,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "listening on ..." once the capture is armed
    assert "listening" in line, line
    try:
        yield path
    finally:
        time.sleep(0.2)
        lab.stop(proc)


def sa_options(sas: dict[str, dict]) -> list[str]:
    return [
        tshark_esp_sa_option(
            s["spi"],
            s["cipher"],
            s["integrity"],
            bytes.fromhex(s["enc_key"]),
            bytes.fromhex(s["auth_key"]),
        )
        for s in sas.values()
    ]


def inject(lab: NetnsLab, payload: bytes, proto: str) -> None:
    """Send ``payload`` to the gateway from the NAT namespace (an on-path attacker)."""
    if proto == "udp":
        code = (
            "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
            f"s.sendto(bytes.fromhex(sys.argv[1]),('{B_OUTER}',4500))"
        )
    else:
        code = (
            "import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_RAW,50);"
            f"s.sendto(bytes.fromhex(sys.argv[1]),('{B_OUTER}',0))"
        )
    lab.run("nat", "python3", "-c", code, payload.hex())


def assert_ping(lab: NetnsLab, count: int, **kw: Any) -> None:
    done = lab.ping(count, **kw)
    assert done.returncode == 0 and f"{count} received" in done.stdout, done.stdout + done.stderr


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def natt(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[NetnsLab, Runner, Runner, dict]]:
    """Client a behind nftables PAT, gateway b, AES-128/SHA1 over UDP 4500."""
    lab = NetnsLab(tmp_path_factory.mktemp("natt"), nat=True)
    try:
        lab.build()
        a_cfg, b_cfg, sas = pair_configs(
            "udp-natt", "aes128-cbc", "hmac-sha1-96", keepalive_interval=2.0
        )
        b = lab.start_runner("b", b_cfg)
        a = lab.start_runner("a", a_cfg)
        yield lab, a, b, sas
        for runner in (a, b):
            assert runner.proc.poll() is None, f"{runner.role} died: {runner.log.read_text()}"
    finally:
        lab.destroy()


@pytest.fixture
def plain_lab(tmp_path: Path) -> Iterator[NetnsLab]:
    lab = NetnsLab(tmp_path, nat=False)
    try:
        yield lab.build()
    finally:
        lab.destroy()


@pytest.fixture
def nat_lab(tmp_path: Path) -> Iterator[NetnsLab]:
    lab = NetnsLab(tmp_path, nat=True)
    try:
        yield lab.build()
    finally:
        lab.destroy()


# ---------------------------------------------------------------------- NAT-T (UDP 4500)
def test_natt_ping_counters_match(natt) -> None:
    lab, a, b, _ = natt
    a0, b0 = tunnel(a), tunnel(b)
    assert_ping(lab, 20)
    a1, b1 = tunnel(a), tunnel(b)
    keys = ("tx_packets", "rx_packets")
    assert delta(a1, a0, *keys) == (20, 20)
    assert delta(b1, b0, *keys) == (20, 20)
    # 84-byte ICMP packets each way, counted identically on both ends
    assert delta(a1, a0, "tx_bytes", "rx_bytes") == (20 * 84, 20 * 84)
    assert delta(b1, b0, "rx_bytes", "tx_bytes") == (20 * 84, 20 * 84)
    assert a1["drops"] == {} and b1["drops"] == {}
    # the gateway learned the client's translated endpoint, exactly what conntrack shows
    assert b1["peer"]["ip"] == NAT_OUTSIDE
    entries = lab.run("nat", "conntrack", "-L", "-p", "udp", "--orig-src", A_OUTER).stdout
    assert f"dport={b1['peer']['port']} " in entries + " ", entries


def test_natt_tcp_transfer_is_byte_exact(natt) -> None:
    lab, a, b, _ = natt
    result = lab.tcp_transfer(16_000_000)
    assert result["sent_ok"] and result["received_ok"], result
    assert tunnel(a)["drops"] == {} and tunnel(b)["drops"] == {}


def test_natt_path_mtu_full_size_and_frag_needed(natt) -> None:
    """Inner packets up to the TUN MTU cross; bigger DF packets from the LAN get an ICMP
    "fragmentation needed" with the tunnel MTU from the gateway's kernel (PMTUD works)."""
    lab, _, _, _ = natt
    full = lab.run(
        "lan",
        "ping",
        "-n",
        "-c",
        "3",
        "-i",
        "0.1",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        "1372",
        CLIENT_INNER,
        check=False,
    )  # 1372 + 28 = 1400 = TUN MTU
    assert "3 received" in full.stdout, full.stdout + full.stderr
    big = lab.run(
        "lan",
        "ping",
        "-n",
        "-c",
        "1",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        "1472",
        CLIENT_INNER,
        check=False,
    )
    assert big.returncode != 0
    assert "mtu = 1400" in big.stdout, big.stdout + big.stderr


def test_natt_wire_format_tshark_and_injected_replay_tamper(natt, tmp_path: Path) -> None:
    lab, _, b, sas = natt
    with capture(lab, "b", "b0", "udp port 4500", tmp_path / "natt.pcap") as pcap:
        assert_ping(lab, 5)
    # tshark: every ESP frame dissects as UDP-encapsulated ESP, decrypts with our keys,
    # authenticates, and carries ICMP; nothing is malformed
    rows = tshark_fields(
        str(pcap),
        [
            "udpencap",
            "esp.spi",
            "esp.icv_good",
            "icmp.type",
            "_ws.malformed",
            "_ws.expert.severity",
        ],
        sa_options(sas),
    )
    esp_rows = [r for r in rows if r[1]]
    assert len(esp_rows) == 10
    assert all(r[0] == "udpencap" and r[2] == "1" and r[3] in ("0", "8") for r in esp_rows), rows
    assert all(r[4] == "" for r in rows), rows

    # inject a replay and a tampered copy of a captured client->gateway packet
    to_gateway = [p for p in read_pcap_ipv4(str(pcap)) if p[16:20] == bytes([172, 16, 172, 50])]
    esp = to_gateway[0][28:]
    tampered = bytearray(esp)
    tampered[4:8] = (1 << 30).to_bytes(4, "big")  # a fresh sequence number passes the
    # replay pre-check, so the forgery reaches (and fails) the ICV check
    before = tunnel(b)
    inject(lab, esp, "udp")
    inject(lab, bytes(tampered), "udp")
    after = wait_for(
        lambda: (t := tunnel(b))["drops"].get("auth", 0) > before["drops"].get("auth", 0) and t
    )
    assert after["drops"].get("replay", 0) == before["drops"].get("replay", 0) + 1
    assert after["drops"].get("auth", 0) == before["drops"].get("auth", 0) + 1
    assert after["peer"] == before["peer"]  # forged/replayed packets never move the endpoint
    assert_ping(lab, 3)  # the loop survived


def test_natt_keepalives_when_idle(natt) -> None:
    _, a, b, _ = natt
    before = b.stats()["keepalives_rx"]
    wait_for(lambda: b.stats()["keepalives_rx"] >= before + 1, timeout=8)  # interval is 2 s
    assert tunnel(a)["keepalives_tx"] >= 1
    assert tunnel(b)["keepalives_tx"] == 0  # the gateway is not behind NAT


def test_natt_rekey_under_traffic_loses_nothing(natt) -> None:
    lab, a, b, sas = natt
    new = {
        d: sa_config(
            int(sas[d]["spi"]) + 1, "aes128-cbc", "hmac-sha1-96", os.urandom(16), os.urandom(20)
        )
        for d in ("ab", "ba")
    }
    pinger = lab.spawn(
        "a",
        "ping",
        "-n",
        "-q",
        "-c",
        "150",
        "-i",
        "0.01",
        "-I",
        CLIENT_INNER,
        "192.168.2.10",
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    # the order IKE must follow: both ends accept the new inbound SA first, and only then
    # does either end start sealing with the new outbound SA
    for runner, name, inbound in ((b, "client1", new["ab"]), (a, "to-b", new["ba"])):
        request = {"tunnel": name, "inbound": [inbound], "grace": 2}
        assert runner.request("rekey " + json.dumps(request)) == "ok\n"
    for runner, name, outbound in ((b, "client1", new["ba"]), (a, "to-b", new["ab"])):
        request = {"tunnel": name, "outbound": outbound}
        assert runner.request("rekey " + json.dumps(request)) == "ok\n"
    out, _ = pinger.communicate(timeout=30)
    assert "150 received" in out, out

    def old_sa_retired() -> dict[str, Any] | None:
        t = tunnel(b)
        return t if len(t["inbound_sas"]) == 1 else None

    t = wait_for(old_sa_retired, timeout=5)
    assert t["inbound_sas"][0]["spi"] == f"0x{int(new['ab']['spi']):08x}"
    assert t["inbound_sas"][0]["packets"] > 0 and t["outbound_sa"]["packets"] > 0
    events = [e["type"] for e in b.stats()["events"]]
    assert "InboundSaRetired" in events
    sas.update(new)  # later tests decrypt captures with the current keys


def test_natt_mapping_change_is_followed(natt) -> None:
    lab, _, b, _ = natt
    assert_ping(lab, 2)
    old = tunnel(b)
    lab.run("nat", "conntrack", "-F")  # the PAT forgets: next packet gets a new random port
    assert_ping(lab, 5)  # replies must follow the new mapping or this fails
    new = tunnel(b)
    assert new["peer"]["ip"] == NAT_OUTSIDE
    assert new["peer"]["port"] != old["peer"]["port"]
    assert new["endpoint_changes"] == old["endpoint_changes"] + 1
    entries = lab.run("nat", "conntrack", "-L", "-p", "udp", "--orig-src", A_OUTER).stdout
    assert f"dport={new['peer']['port']} " in entries + " ", entries
    last = [e for e in b.stats()["events"] if e["type"] == "PeerEndpointChanged"][-1]
    assert last["new"] == [NAT_OUTSIDE, new["peer"]["port"]]


# ---------------------------------------------------------------------- raw ESP (proto 50)
def test_raw_esp_without_nat(plain_lab: NetnsLab, tmp_path: Path) -> None:
    lab = plain_lab
    a_cfg, b_cfg, sas = pair_configs("esp", "3des-cbc", "hmac-md5-96", b_knows_peer=True, nat=False)
    b = lab.start_runner("b", b_cfg)
    a = lab.start_runner("a", a_cfg)
    with capture(lab, "b", "b0", "ip proto 50", tmp_path / "esp.pcap") as pcap:
        assert_ping(lab, 10)
    ta, tb = tunnel(a), tunnel(b)
    assert (ta["tx_packets"], ta["rx_packets"], tb["tx_packets"], tb["rx_packets"]) == (10,) * 4
    rows = tshark_fields(
        str(pcap),
        ["ip.proto", "esp.spi", "esp.icv_good", "icmp.type", "_ws.malformed"],
        sa_options(sas),
    )
    assert len(rows) == 20 and all(r[0] == "50,1" and r[2] == "1" and r[4] == "" for r in rows), (
        rows
    )
    result = lab.tcp_transfer(4_000_000)
    assert result["sent_ok"] and result["received_ok"], result
    # replay of a captured packet over raw ESP is dropped too
    esp = next(p for p in read_pcap_ipv4(str(pcap)) if p[16:20] == bytes([172, 16, 172, 50]))[20:]
    inject(lab, esp, "raw")
    wait_for(lambda: tunnel(b)["drops"].get("replay") == 1)
    assert_ping(lab, 2)
    for r in (a, b):
        lab.stop(r.proc)
        assert r.proc.returncode == 0, r.log.read_text()  # clean shutdown on SIGTERM


# ---------------------------------------------------------------------- Cisco IPsec over UDP
def test_cisco_udp_through_pat(nat_lab: NetnsLab, tmp_path: Path) -> None:
    lab = nat_lab
    a_cfg, b_cfg, sas = pair_configs(
        "udp-cisco", "aes256-cbc", "hmac-sha1-96", port=10000, keepalive_interval=1.0
    )
    b = lab.start_runner("b", b_cfg)
    a = lab.start_runner("a", a_cfg)
    with capture(lab, "b", "b0", "udp port 10000", tmp_path / "cisco.pcap") as pcap:
        assert_ping(lab, 5)
        wait_for(lambda: b.stats()["keepalives_rx"] >= 1, timeout=5)
    tb = tunnel(b)
    assert (tb["rx_packets"], tb["tx_packets"]) == (5, 5)
    assert tb["peer"]["ip"] == NAT_OUTSIDE
    rows = tshark_fields(
        str(pcap),
        ["esp.spi", "esp.icv_good", "icmp.type", "_ws.malformed"],
        sa_options(sas),
        decode_as=["udp.port==10000,udpencap"],
    )
    esp_rows = [r for r in rows if r[0]]
    assert len(esp_rows) == 10 and all(r[1] == "1" and r[3] == "" for r in esp_rows), rows
    result = lab.tcp_transfer(2_000_000)
    assert result["sent_ok"] and result["received_ok"], result
    a.proc.send_signal(signal.SIGTERM)
