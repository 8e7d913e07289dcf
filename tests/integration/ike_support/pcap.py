"""Write in-process engine traffic as a pcap (raw IPv4 / UDP), so tshark -- an independent
dissector -- can judge what our initiator and responder put on the wire."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

from labctl.agent.inet import internet_checksum

LINKTYPE_RAW = 101


def udp_packet(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        0,
        0x4000,
        64,
        17,
        0,
        ipaddress.IPv4Address(src[0]).packed,
        ipaddress.IPv4Address(dst[0]).packed,
    )
    hdr = hdr[:10] + struct.pack("!H", internet_checksum(hdr)) + hdr[12:]
    return hdr + udp


def write_pcap(path: Path, packets: list[tuple[float, bytes]]) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for ts, pkt in packets:
            sec = int(ts)
            usec = int((ts - sec) * 1_000_000)
            f.write(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)))
            f.write(pkt)
