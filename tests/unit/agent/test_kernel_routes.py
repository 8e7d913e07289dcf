"""gateway_towards: the main table's next hop, from /proc/net/route's text."""

from __future__ import annotations

import struct

from labctl.agent.kernel_routes import gateway_towards

HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"


def _hex(address: str) -> str:
    """As the kernel prints it: the address's network-order bytes read as a native int."""
    raw = bytes(int(part) for part in address.split("."))
    return f"{struct.unpack('=I', raw)[0]:08X}"


def _table(*routes: tuple[str, str, str, str, int]) -> str:
    lines = [HEADER]
    for iface, dest, gateway, mask, metric in routes:
        flags = 0x0001 | (0x0002 if gateway != "0.0.0.0" else 0)
        lines.append(
            f"{iface}\t{_hex(dest)}\t{_hex(gateway)}\t{flags:04X}\t0\t0\t{metric}\t"
            f"{_hex(mask)}\t0\t0\t0\n"
        )
    return "".join(lines)


SEED_CLIENT = _table(
    ("eth1", "0.0.0.0", "10.10.10.1", "0.0.0.0", 0),
    ("eth1", "10.10.10.0", "0.0.0.0", "255.255.255.0", 0),
    ("eth0", "172.30.1.0", "0.0.0.0", "255.255.255.0", 0),
)


def test_default_route_gives_its_gateway() -> None:
    assert gateway_towards("172.16.172.50", SEED_CLIENT) == "10.10.10.1"


def test_reads_the_kernels_own_table() -> None:
    """This machine's table: the answer is an address or None, never an exception."""
    answer = gateway_towards("192.0.2.1")
    assert answer is None or answer.count(".") == 3


def test_on_link_destination_has_no_gateway() -> None:
    assert gateway_towards("10.10.10.3", SEED_CLIENT) is None


def test_longest_prefix_then_lowest_metric_wins() -> None:
    table = _table(
        ("eth1", "0.0.0.0", "10.10.10.1", "0.0.0.0", 0),
        ("eth2", "172.16.0.0", "10.20.0.1", "255.255.0.0", 10),
        ("eth3", "172.16.0.0", "10.30.0.1", "255.255.0.0", 5),
        ("eth4", "172.16.172.0", "10.40.0.1", "255.255.255.0", 100),
    )
    assert gateway_towards("172.16.172.50", table) == "10.40.0.1"
    assert gateway_towards("172.16.1.1", table) == "10.30.0.1"
    assert gateway_towards("8.8.8.8", table) == "10.10.10.1"


def test_no_route_and_down_routes() -> None:
    down = SEED_CLIENT.replace("\t0003\t", "\t0002\t")  # the default route without RTF_UP
    assert gateway_towards("192.0.2.1", down) is None
    assert gateway_towards("192.0.2.1", HEADER) is None
