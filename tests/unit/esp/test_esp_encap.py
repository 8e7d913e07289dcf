"""Encapsulation demux/builders (RFC 3948, Cisco UDP, raw ESP) and the SPI table."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.esp import (
    CISCO_KEEPALIVE,
    NAT_KEEPALIVE,
    CiscoUdpFraming,
    EspError,
    EspMalformed,
    EspUnknownSpi,
    InboundSpiTable,
    Kind,
    NatTraversalFraming,
    RawEspFraming,
    framing,
)
from tests.unit.esp.esp_helpers import sa_pair

IKE_HEADER = bytes(range(1, 29))  # 28 bytes standing in for an ISAKMP header


def test_natt_demux() -> None:
    f = NatTraversalFraming
    esp = b"\x00\x00\x10\x00" + bytes(20)
    assert f.demux(esp) == (Kind.ESP, 0)
    assert f.demux(b"\x00\x00\x00\x00" + IKE_HEADER) == (Kind.IKE, 4)
    assert f.demux(b"\xff") == (Kind.KEEPALIVE, 0)
    assert f.frame_ike(IKE_HEADER) == b"\x00\x00\x00\x00" + IKE_HEADER
    assert f.keepalive() == NAT_KEEPALIVE == b"\xff"
    for bad in (b"", b"\x00", b"\xfe", bytes(4), b"\x01\x02\x03\x04\x05\x06\x07"):
        with pytest.raises(EspMalformed, match="UDP-4500 datagram"):
            f.demux(bad)


def test_cisco_udp_demux() -> None:
    f = CiscoUdpFraming
    assert f.demux(b"\x12\x34\x56\x78" + bytes(30)) == (Kind.ESP, 0)
    assert f.demux(CISCO_KEEPALIVE) == (Kind.KEEPALIVE, 0)
    assert f.demux(b"\xff") == (Kind.KEEPALIVE, 0)
    assert f.keepalive() == bytes.fromhex("00000000ff")
    assert f.default_port == 10000
    with pytest.raises(EspMalformed):
        f.demux(b"\x00\x00\x00\x00" + IKE_HEADER)  # no IKE on the Cisco port
    with pytest.raises(ValueError):
        f.frame_ike(IKE_HEADER)


def test_raw_esp_demux_strips_ip_header() -> None:
    ip = bytes([0x45, 0, 0, 48, 0, 0, 0, 0, 64, 50, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    assert RawEspFraming.demux(ip + bytes(28)) == (Kind.ESP, 20)
    with_options = bytes([0x46]) + ip[1:] + bytes(4)
    assert RawEspFraming.demux(with_options + bytes(28)) == (Kind.ESP, 24)
    for bad, why in [
        (ip[:19], "shorter"),
        (bytes([0x65]) + ip[1:], "version 6"),
        (bytes([0x44]) + ip[1:], "header length 16"),
        (ip[:9] + b"\x11" + ip[10:], "protocol 17"),
    ]:
        with pytest.raises(EspMalformed, match=why):
            RawEspFraming.demux(bad)


def test_framing_lookup() -> None:
    assert framing("udp-natt") is NatTraversalFraming
    assert framing("esp") is RawEspFraming
    with pytest.raises(ValueError, match="unknown ESP encapsulation 'tcp'"):
        framing("tcp")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_demux_only_typed_errors(data: bytes) -> None:
    for f in (NatTraversalFraming, CiscoUdpFraming, RawEspFraming):
        try:
            kind, off = f.demux(data)
        except EspError:
            continue
        assert 0 <= off <= len(data)
        assert kind in Kind


def test_spi_table() -> None:
    out, inb = sa_pair("aes128-cbc", "hmac-sha1-96", spi=0xC0FFEE)
    table: InboundSpiTable[str] = InboundSpiTable()
    table.add(inb, "tunnel-1")
    with pytest.raises(ValueError, match="already installed"):
        table.add(inb, "tunnel-2")
    with pytest.raises(ValueError, match="outbound"):
        table.add(out, "tunnel-1")
    esp = out.seal(b"payload")
    sa, owner = table.lookup(b"\x00\x00\x00\x00" + esp, 4)
    assert (sa, owner) == (inb, "tunnel-1")
    with pytest.raises(EspUnknownSpi, match="0x00000999"):
        table.lookup(struct.pack("!II", 0x999, 1))
    with pytest.raises(EspMalformed, match="offset 4 needs 8 bytes, only 3"):
        table.lookup(bytes(7), 4)
    assert table.remove(0xC0FFEE) is inb
    assert 0xC0FFEE not in table and len(table) == 0
