"""In-process pings of a client fleet: ICMP echoes from each member's pool address.

An echo request is written into the member's packet device, so the member's data plane
seals it like any packet a TUN would hand over; the real server answers through the real
concentrator, and the reply comes out of the same device. ICMP identifier = the member's
number, sequence = the wave.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from .inet import internet_checksum as checksum

ECHO_REQUEST, ECHO_REPLY = 8, 0
PAYLOAD = b"labctl-fleet-ping" + bytes(15)  # 32 bytes, like Windows ping


def echo_request(source: str, dest: str, ident: int, seq: int) -> bytes:
    icmp = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + PAYLOAD
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(icmp), ident & 0xFFFF, 0, 64, 1, 0,
        IPv4Address(source).packed, IPv4Address(dest).packed,
    )  # fmt: skip
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + icmp


def parse_echo_reply(packet: bytes) -> tuple[str, int, int] | None:
    """(source, identifier, sequence) of an IPv4 ICMP echo reply, else None."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 1:
        return None
    ihl = (packet[0] & 15) * 4
    if len(packet) < ihl + 8 or packet[ihl] != ECHO_REPLY:
        return None
    ident, seq = struct.unpack_from("!HH", packet, ihl + 4)
    return str(IPv4Address(packet[12:16])), ident, seq


@dataclass
class PingRun:
    """One `vpn fleet ping`: waves of one echo per connected member."""

    to: str
    waves: int
    interval: float
    started: float
    sent: dict[tuple[int, int], float] = field(default_factory=dict)  # (ident, seq) -> time
    rtts: list[float] = field(default_factory=list)
    answered: set[tuple[int, int]] = field(default_factory=set)
    names: dict[int, str] = field(default_factory=dict)  # ident -> member name
    waves_sent: int = 0
    finished_at: float | None = None

    def reply(self, source: str, ident: int, seq: int, now: float) -> bool:
        key = (ident, seq)
        if source != self.to or key not in self.sent or key in self.answered:
            return False
        self.answered.add(key)
        self.rtts.append(now - self.sent[key])
        return True

    def result(self) -> dict:
        lost = sorted(k for k in self.sent if k not in self.answered)
        rtts = sorted(self.rtts)
        return {
            "to": self.to,
            "state": "done" if self.finished_at is not None else "running",
            "waves": self.waves,
            "waves_sent": self.waves_sent,
            "sent": len(self.sent),
            "received": len(self.answered),
            "lost": len(lost),
            "lost_members": sorted({self.names.get(i, str(i)) for i, _ in lost})[:50],
            "rtt_p50_ms": _ms(percentile(rtts, 50)),
            "rtt_p99_ms": _ms(percentile(rtts, 99)),
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values (None when there are none)."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
