"""The next hop the kernel's main routing table uses for a destination, read from
/proc/net/route (no process to start: the agent must not fork on the connect path).

Enough for lab nodes (one main table, no policy rules); ``ip route get`` is the full answer.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

PROC_ROUTE = Path("/proc/net/route")
RTF_UP = 0x0001
RTF_GATEWAY = 0x0002


def _address(hex_le: str) -> int:
    """/proc/net/route prints addresses as host-order (little-endian here) hex."""
    return struct.unpack("!I", struct.pack("=I", int(hex_le, 16)))[0]


def gateway_towards(destination: str, table: str | None = None) -> str | None:
    """The gateway of the longest-prefix (then lowest-metric) route to ``destination``;
    None when the best route is on-link or there is none."""
    target = int(ipaddress.IPv4Address(destination))
    text = PROC_ROUTE.read_text() if table is None else table
    best: tuple[int, int, str | None] | None = None  # (-prefix length, metric, gateway)
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = int(fields[3], 16)
        if not flags & RTF_UP:
            continue
        dest, gateway, mask = _address(fields[1]), _address(fields[2]), _address(fields[7])
        if target & mask != dest:
            continue
        via = socket.inet_ntoa(struct.pack("!I", gateway)) if flags & RTF_GATEWAY else None
        key = (-bin(mask).count("1"), int(fields[6]), via)
        if best is None or key[:2] < best[:2]:
            best = key
    return best[2] if best else None
