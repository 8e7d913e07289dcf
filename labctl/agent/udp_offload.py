"""UDP segmentation offload for ESP-in-UDP: many equal-sized datagrams per system call.

Why: per ESP packet, ``sendto`` costs more than sealing it (measured on loopback here:
15.6 us per 1400-byte datagram, 0.43 us when 20 go as one UDP_SEGMENT send), and in a lab
the kernel work behind it -- the PAT's conntrack/NAT, the router, the receiver's socket --
is per skb too. With UDP GSO (Linux 4.18, ``UDP_SEGMENT``) one ``sendmsg`` carries a run of
ESP packets of one size (the last may be shorter) to one peer; the kernel keeps them as one
skb through veths, bridges and forwarding and cuts it into datagrams only where something
needs single datagrams: a receiver without UDP_GRO (strongSwan, vpnc) gets ordinary
datagrams. On the receive side ``UDP_GRO`` (Linux 5.0) hands such a run up in one read, with
the segment size in a control message.

Facts (Linux, udp_send_skb / udp_cmsg_send): GSO is refused with EINVAL on a socket with
SO_NO_CHECK (the segments need checksums) and with EIO when the route's device cannot
offload checksums; either way this module falls back to one ``sendto`` per packet for good
on that socket. RFC 3948 section 2.1's zero checksum (a SHOULD) is kept for single datagrams:
SO_NO_CHECK is cleared only around a GSO send.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
SO_NO_CHECK = 11
MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS is 64 on older kernels (128 since 5.x)
MAX_PAYLOAD = 65507 - 8  # one IPv4 UDP datagram's payload, with room to spare
GRO_ANCILLARY = socket.CMSG_SPACE(4)

# LABCTL_UDP_OFFLOAD=0 in an agent's environment turns both off (A/B measurements, and an
# escape hatch should a kernel mishandle them). Measured (docs/NOTES.md, branch perf):
# ~18 % less agent CPU per Mbit through the netns tunnel at load ~21.
ENABLED = os.environ.get("LABCTL_UDP_OFFLOAD", "1") != "0"

_SIZE = struct.Struct("=H")
_INT = struct.Struct("=i")


def enable_gro(sock: socket.socket) -> bool:
    """Ask for coalesced reads (UDP_GRO); False where the kernel does not know it."""
    if not ENABLED:
        return False
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError:
        return False
    return True


def gro_segment_size(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The segment size of a coalesced read (0: a single datagram)."""
    for level, kind, data in ancillary:
        if level == SOL_UDP and kind == UDP_GRO and len(data) >= 4:
            return _INT.unpack_from(data)[0]
    return 0


def segments(n: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each datagram in a read of ``n`` bytes cut every ``size`` bytes."""
    if size <= 0 or size >= n:
        yield 0, n
        return
    for start in range(0, n, size):
        yield start, min(start + size, n)


class GsoSender:
    """Sends a run of equal-sized datagrams to one peer with one UDP_SEGMENT sendmsg.

    ``usable`` turns False for good on the first refusal (EINVAL/EIO/ENOPROTOOPT): the
    caller then sends one datagram at a time, as before this module existed."""

    __slots__ = ("_no_check", "datagrams", "runs", "sock", "usable")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.runs = 0  # GSO sends made, and the datagrams they carried
        self.datagrams = 0
        self.usable = ENABLED and sock.type == socket.SOCK_DGRAM and sock.family == socket.AF_INET
        try:
            self._no_check = bool(sock.getsockopt(socket.SOL_SOCKET, SO_NO_CHECK))
        except OSError:
            self._no_check = False

    def send(self, packets: list[Any], size: int, peer: tuple[str, int]) -> bool:
        """Send ``packets`` (all ``size`` bytes, the last may be shorter) as one GSO send.
        False: GSO is not possible on this socket (nothing was sent; send them singly).
        Other OSErrors (EAGAIN, ENOBUFS, ...) propagate: the whole run was not sent."""
        sock = self.sock
        try:
            if self._no_check:
                sock.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 0)
            try:
                sock.sendmsg(packets, [(SOL_UDP, UDP_SEGMENT, _SIZE.pack(size))], 0, peer)
            finally:
                if self._no_check:
                    sock.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        except OSError as exc:
            if exc.errno in (22, 5, 92, 95):  # EINVAL, EIO, ENOPROTOOPT, EOPNOTSUPP
                self.usable = False
                return False
            raise
        self.runs += 1
        self.datagrams += len(packets)
        return True


class SendRun:
    """Sealed packets waiting to go out together: one tunnel, one size (a shorter packet
    may end the run: GSO allows a short last segment), at most MAX_SEGMENTS and one UDP
    datagram's worth of bytes."""

    __slots__ = ("closed", "inner", "nbytes", "packets", "size", "tunnel")

    def __init__(self) -> None:
        self.tunnel: Any = None
        self.packets: list[Any] = []
        self.inner: list[int] = []  # inner (plaintext) bytes of each packet, for counters
        self.size = 0
        self.nbytes = 0
        self.closed = False

    def takes(self, tunnel: Any, size: int) -> bool:
        return (
            tunnel is self.tunnel
            and not self.closed
            and size <= self.size
            and len(self.packets) < MAX_SEGMENTS
            and self.nbytes + size <= MAX_PAYLOAD
        )

    def add(self, tunnel: Any, packet: Any, size: int, inner: int) -> None:
        if not self.packets:
            self.tunnel, self.size = tunnel, size
        elif size < self.size:
            self.closed = True
        self.packets.append(packet)
        self.inner.append(inner)
        self.nbytes += size

    def clear(self) -> None:
        self.tunnel = None
        self.packets = []
        self.inner = []
        self.size = self.nbytes = 0
        self.closed = False
