"""Write the in-memory lab's capture as a pcap (raw IPv4, UDP) for tshark to read."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.unit.ike.harness import Lab


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    addresses = bytes(map(int, src[0].split("."))) + bytes(map(int, dst[0].split(".")))
    ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0) + addresses
    return ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:] + udp


def write_pcap(lab: Lab, path: Path) -> None:
    """Every datagram as the concentrator's side of the PAT saw it (non-ESP marker on 4500)."""
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))  # LINKTYPE_RAW
        for t, f in lab.wire_view():
            packet = _ip_udp(f.src, f.dst, (bytes(4) if f.marker else b"") + f.data)
            seconds, micros = int(t), round((t % 1) * 1e6) % 1_000_000
            fh.write(struct.pack("<IIII", seconds, micros, len(packet), len(packet)) + packet)
