"""TUN device: inner IPv4 packets in and out of the kernel, one packet per read/write.

Opened with IFF_TUN | IFF_NO_PI (raw IP, no packet-info header) and without IFF_VNET_HDR and
TUNSETOFFLOAD, so the device advertises no checksum offload: the kernel completes every
checksum before handing a packet to us (no CHECKSUM_PARTIAL surprises) and verifies every
packet we write. Addresses, routes, MTU and link state go through the ``ip`` command
(iproute2 is in every node image; pyroute2 is not).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import struct
import subprocess
from collections.abc import Sequence

from labctl.esp.sizes import DEFAULT_TUNNEL_MTU

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
TUN_PATH = "/dev/net/tun"


class TunError(OSError):
    """Creating or configuring the TUN device failed; the message names the step."""


def run_ip(*args: str) -> str:
    """Run ``ip ARGS``; its output, or TunError with the command and its stderr."""
    cmd = ["ip", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TunError(f"`{' '.join(cmd)}` could not run: {exc}") from exc
    if done.returncode != 0:
        raise TunError(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def run_ip_batch(commands: Sequence[Sequence[str]], *, force: bool = False) -> None:
    """Run several ``ip`` commands in ONE process (``ip -batch -``).

    Why: every ``ip`` process is a fork + exec that blocks the agent's event loop for
    several milliseconds (tens on a loaded host). Setting up a tunnel's address and routes
    one command at a time was most of the time from Mode-Config to the tunnel being up.
    ``force``: carry on past failing commands (teardown), and do not raise.
    """
    if not commands:
        return
    for command in commands:
        for arg in command:
            if not arg or any(c.isspace() for c in arg) or arg.startswith("#"):
                raise TunError(f"ip batch argument {arg!r} is empty or has whitespace")
    script = "".join(" ".join(command) + "\n" for command in commands)
    cmd = ["ip", *(["-force"] if force else []), "-batch", "-"]
    try:
        done = subprocess.run(
            cmd, input=script, capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        if force:
            return
        raise TunError(f"`{' '.join(cmd)}` could not run: {exc}") from exc
    if done.returncode != 0 and not force:
        raise TunError(
            f"`{' '.join(cmd)}` failed ({done.returncode}) on:\n{script}{done.stderr.strip()}"
        )


def _disable_ipv6(ifname: str) -> None:
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
    try:
        with open(path, "w") as f:
            f.write("1")
    except OSError:  # IPv6 compiled out or /proc/sys read-only: nothing to silence
        pass


class TunDevice:
    """An open TUN interface. Non-blocking; closing the fd deletes the interface."""

    def __init__(self, fd: int, name: str, mtu: int) -> None:
        self.fd = fd
        self.name = name
        self.mtu = mtu

    @classmethod
    def create(
        cls,
        name: str = "tun%d",
        mtu: int = DEFAULT_TUNNEL_MTU,
        up: bool = True,
        txqueuelen: int | None = None,
        disable_ipv6: bool = True,
    ) -> TunDevice:
        """Create, size and (by default) bring up a TUN.

        ``disable_ipv6``: the data plane carries IPv4 only; without this the kernel sends
        router solicitations and MLD reports into the tunnel, counted as drops.
        """
        if len(name.encode()) >= IFNAMSIZ:
            raise TunError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} bytes")
        try:
            fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise TunError(
                f"cannot open {TUN_PATH} ({exc.strerror}): the node needs the device and"
                " CAP_NET_ADMIN"
            ) from exc
        try:
            ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
            result = fcntl.ioctl(fd, TUNSETIFF, ifr)
            real_name = result[:IFNAMSIZ].rstrip(b"\0").decode()
            dev = cls(fd, real_name, mtu)
            if disable_ipv6:
                _disable_ipv6(real_name)
            dev.set_mtu(mtu)
            if txqueuelen is not None:
                run_ip("link", "set", "dev", real_name, "txqueuelen", str(txqueuelen))
            if up:
                run_ip("link", "set", "dev", real_name, "up")
        except Exception:
            os.close(fd)
            raise
        return dev

    # ------------------------------------------------------------------ configuration
    def set_mtu(self, mtu: int) -> None:
        if not 68 <= mtu <= 65535:
            raise TunError(f"TUN MTU {mtu} outside 68..65535")
        run_ip("link", "set", "dev", self.name, "mtu", str(mtu))
        self.mtu = mtu

    def add_address(self, cidr: str, peer: str | None = None) -> None:
        iface = ipaddress.IPv4Interface(cidr)  # validates before touching the system
        args = ["addr", "add", str(iface), "dev", self.name]
        if peer is not None:
            args[3:3] = ["peer", str(ipaddress.IPv4Network(peer))]
        run_ip(*args)

    def add_route(self, network: str, src: str | None = None, metric: int | None = None) -> None:
        net = ipaddress.IPv4Network(network)
        args = ["route", "replace", str(net), "dev", self.name]
        if src is not None:
            args += ["src", str(ipaddress.IPv4Address(src))]
        if metric is not None:
            args += ["metric", str(metric)]
        run_ip(*args)

    def delete_route(self, network: str) -> None:
        run_ip("route", "del", str(ipaddress.IPv4Network(network)), "dev", self.name)

    # ------------------------------------------------------------------ packets
    def fileno(self) -> int:
        return self.fd

    def read_into(self, buf: bytearray) -> int:
        """One packet into ``buf``; BlockingIOError when none is queued."""
        return os.readv(self.fd, (buf,))

    def write(self, packet: bytes | bytearray | memoryview) -> int:
        return os.write(self.fd, packet)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __repr__(self) -> str:
        return f"TunDevice(name={self.name!r}, fd={self.fd}, mtu={self.mtu})"
