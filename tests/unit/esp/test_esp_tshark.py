"""Wireshark (an independent ESP implementation) decrypts and authenticates our packets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labctl.esp import CIPHERS, EspSa
from tests.unit.esp.esp_helpers import (
    icmp_echo,
    ipv4_udp,
    keys,
    tshark_esp_sa_option,
    tshark_fields,
    write_pcap,
)

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

SUITES = [(c, i) for c in CIPHERS for i in ("hmac-md5-96", "hmac-sha1-96", "hmac-sha2-256-128")]


def test_tshark_decrypts_every_suite(tmp_path: Path) -> None:
    packets, options = [], []
    expected = []
    for n, (cipher, integrity) in enumerate(SUITES):
        spi = 0x5000 + n
        ek, ak = keys(cipher, integrity, "tshark")
        sa = EspSa.outbound(spi, cipher, integrity, ek, ak)
        options.append(tshark_esp_sa_option(spi, cipher, integrity, ek, ak))
        for seq in (1, 2):
            inner = icmp_echo("40.1.1.1", "192.168.2.10", seq, data=bytes(range(n + 10)))
            esp = bytes(sa.seal(inner))
            packets.append(ipv4_udp("172.16.172.1", "172.16.172.50", 4500, 4500, esp))
            expected.append([f"0x{spi:08x}", "1", str(seq)])
    packets.append(ipv4_udp("172.16.172.1", "172.16.172.50", 4500, 4500, b"\xff"))
    pcap = str(tmp_path / "esp.pcap")
    write_pcap(pcap, packets)
    rows = tshark_fields(
        pcap, ["esp.spi", "esp.icv_good", "icmp.seq", "_ws.malformed", "udpencap"], options
    )
    assert [r[:3] for r in rows[:-1]] == expected
    assert all(r[3] == "" for r in rows)  # no malformed-packet markers
    assert rows[-1][:3] == ["", "", ""]  # the NAT-keepalive is not ESP


def test_tshark_decrypts_a_3des_burst_sealed_on_two_lanes(tmp_path: Path) -> None:
    from labctl.agent.lanes import TwoLanes

    ek, ak = keys("3des-cbc", "hmac-md5-96", "lanes")
    sa = EspSa.outbound(0x6000, "3des-cbc", "hmac-md5-96", ek, ak)
    inner = [icmp_echo("40.1.1.1", "192.168.2.10", s, data=bytes([s]) * 900) for s in range(1, 21)]
    lanes = TwoLanes()
    sealed = lanes.seal([(sa, *sa.prepare(p)) for p in inner])
    lanes.close()
    assert lanes.bursts == (1 if sa.lanes == 2 else 0)
    pcap = str(tmp_path / "lanes.pcap")
    write_pcap(
        pcap, [ipv4_udp("172.16.172.1", "172.16.172.50", 4500, 4500, bytes(e)) for e in sealed]
    )
    option = tshark_esp_sa_option(0x6000, "3des-cbc", "hmac-md5-96", ek, ak)
    rows = tshark_fields(
        pcap, ["esp.sequence", "esp.icv_good", "icmp.seq", "_ws.malformed"], [option]
    )
    assert rows == [[str(s), "1", str(s), ""] for s in range(1, 21)]
