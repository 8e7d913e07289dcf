"""Entering network namespaces: netlink sockets by path, and sysctls by setns().

Containers' namespaces are reached through /proc/<pid>/ns/net, never by mounting them
under /run/netns, so nothing is left on the host when a container goes away.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from ipaddress import IPv4Interface
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute, netns

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


def pid_netns_path(pid: int) -> str:
    return f"/proc/{pid}/ns/net"


def named_netns_path(name: str) -> str:
    return f"/run/netns/{name}"


def open_netns(path: str) -> IPRoute:
    """A netlink handle inside the namespace at ``path`` (a /proc or /run/netns path).

    Its socket is made by a thread that joined the namespace (socket_in_netns), not by
    pyroute2's NetNS, which forks this process for every handle: a third of the CPU of
    wiring a node, measured (a lab of 200 opens some 400)."""
    sock = socket_in_netns(path, socket.AF_NETLINK, socket.SOCK_DGRAM)
    try:
        return IPRoute(use_socket=sock)
    except BaseException:
        sock.close()
        raise


def ensure_address(ns: IPRoute, index: int, address: IPv4Interface) -> None:
    """Add an IPv4 address to the link unless it already has it (re-runs are no-ops)."""
    present = {
        (a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ns.get_addr(index=index, family=2)
    }
    if (str(address.ip), address.network.prefixlen) not in present:
        ns.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)


def create_named_netns(name: str) -> None:
    if name not in netns.listnetns():
        netns.create(name)


def remove_named_netns(name: str) -> bool:
    if name in netns.listnetns():
        netns.remove(name)
        return True
    return False


def list_named_netns() -> list[str]:
    return list(netns.listnetns())


def run_in_netns(path: str, action: Callable[[], T]) -> T:
    """Run ``action`` in a fresh OS thread that has joined the namespace at ``path``.

    /proc/sys/net reflects the namespace of the thread that opens it, so sysctls of a
    container can be set from the host without a shell inside the container.
    """
    result: dict[str, object] = {}

    def worker() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)  # a missing namespace is the caller's error too
        except OSError as exc:
            result["error"] = exc
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({path}): {os.strerror(err)}")
            result["value"] = action()
        except BaseException as exc:  # handed to the caller's thread below
            result["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=worker, name="netns-worker")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


def socket_in_netns(
    path: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A socket that lives in the namespace at ``path``, usable from any thread.

    A socket belongs to the namespace its creating thread was in, for good; only that
    thread has to join the namespace (setns is per thread), and run_in_netns makes a fresh
    one that ends right after, so no thread of this process is ever left in it."""
    return run_in_netns(path, lambda: socket.socket(family, kind))


def write_sysctls(path: str, values: dict[str, str]) -> None:
    """Set net.* sysctls inside the namespace at ``path``; unknown keys are an error."""

    def apply() -> None:
        for key, value in values.items():
            target = Path("/proc/sys") / key.replace(".", "/")
            try:
                target.write_text(f"{value}\n")
            except FileNotFoundError:
                raise ValueError(f"sysctl {key} does not exist in this kernel") from None

    run_in_netns(path, apply)
