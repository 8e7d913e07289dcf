"""Outer sockets of the data plane: UDP (NAT-T 4500, Cisco 10000) and raw IP protocol 50."""

from __future__ import annotations

import socket

from labctl.esp.encap import IPPROTO_ESP

# Linux socket option numbers not exported by the socket module on every Python.
SO_NO_CHECK = 11
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_DONT = getattr(socket, "IP_PMTUDISC_DONT", 0)

DEFAULT_BUFFER = 4 * 1024 * 1024


def _tune(sock: socket.socket, buffer_bytes: int) -> None:
    sock.setblocking(False)
    # Outer packets may be fragmented by the kernel instead of being refused with EMSGSIZE:
    # the inner MTU is sized so this does not happen on a 1500-byte path, and if the path
    # is narrower fragments still arrive (like the kernel's own IPsec, which clears DF).
    sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
    for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:  # root may exceed net.core.[rw]mem_max; others get what the sysctl allows
            sock.setsockopt(socket.SOL_SOCKET, force, buffer_bytes)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, buffer_bytes)


def open_udp(
    bind_ip: str, port: int, *, zero_checksum: bool = True, buffer_bytes: int = DEFAULT_BUFFER
) -> socket.socket:
    """Non-blocking UDP socket for ESP-in-UDP (and IKE on 4500).

    ``zero_checksum``: RFC 3948 §2.1 says the UDP checksum of encapsulated ESP SHOULD be 0
    (ESP's ICV already protects the payload); Linux honours SO_NO_CHECK on IPv4 UDP.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        _tune(sock, buffer_bytes)
        if zero_checksum:
            sock.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        sock.bind((bind_ip, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot open UDP {bind_ip}:{port} for ESP: {exc.strerror}"
        ) from exc
    return sock


def open_raw_esp(
    bind_ip: str | None = None, *, buffer_bytes: int = DEFAULT_BUFFER
) -> socket.socket:
    """Raw IPv4 socket for protocol 50. Receives include the IP header; sends do not."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_ESP)
    try:
        _tune(sock, buffer_bytes)
        if bind_ip is not None:
            sock.bind((bind_ip, 0))
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot open raw ESP socket on {bind_ip}: {exc.strerror}"
        ) from exc
    return sock
