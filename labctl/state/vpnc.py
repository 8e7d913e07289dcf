"""vpnc's state as the client status record our agent publishes (ClientStatus keys).

labctl-vpnc prints key=value lines: whether vpnc runs and the tunnel is up, the
Mode-Config attributes vpnc passed to labctl-vpnc-script, and the TUN's counters (bytes
and packets into and out of the tunnel, before encryption). vpnc shows nothing of its SAs
(SPIs, ports, algorithms, NAT detection): those fields are None and listed in
`unreported`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .records_common import annotate

UNREPORTED = (
    "local_ip",
    "local_behind_nat",
    "remote_behind_nat",
    "local_port",
    "remote_port",
    "encryption",
    "authentication",
    "spi_in",
    "spi_out",
    "packets_discarded",
    "packets_bypassed",
    "last_error",
    "transparent_tunneling",
    "reconnects",
    "waiting_for",
    "ike_dropped",
)


def parse_state(text: str) -> dict[str, str]:
    state = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            state[key.strip()] = value.strip()
    return state


def _int(state: dict[str, str], key: str) -> int:
    try:
        return int(state.get(key, "0"))
    except ValueError:
        return 0


def split_networks(state: dict[str, str]) -> list[str]:
    count = _int(state, "CISCO_SPLIT_INC")
    networks = []
    for index in range(count):
        addr = state.get(f"CISCO_SPLIT_INC_{index}_ADDR")
        masklen = state.get(f"CISCO_SPLIT_INC_{index}_MASKLEN")
        if addr and masklen:
            try:
                networks.append(str(ipaddress.IPv4Network(f"{addr}/{masklen}", strict=False)))
            except ValueError:
                continue  # a garbled line from the node reads as no network, not a crash
    return networks


def _seconds(state: dict[str, str], key: str) -> float | None:
    try:
        return float(state[key])
    except (KeyError, ValueError):
        return None


def vpnc_status(state: dict[str, str], vpn: Any) -> dict[str, Any]:
    running = "pid" in state
    connected = running and state.get("connected") == "1"
    record = {
        "state": "connected" if connected else "connecting" if running else "disconnected",
        "server": str(vpn.host),
        "group": vpn.group,
        "user": vpn.user,
        "assigned_ip": state.get("INTERNAL_IP4_ADDRESS") if connected else None,
        "netmask": state.get("INTERNAL_IP4_NETMASK") if connected else None,
        "local_ip": None,
        "transparent_tunneling": None,
        "transport": "UDP",
        "local_behind_nat": None,
        "remote_behind_nat": None,
        "local_port": None,
        "remote_port": None,
        "encryption": None,
        "authentication": None,
        "spi_in": None,
        "spi_out": None,
        "packets_encrypted": _int(state, "tx_packets"),
        "packets_decrypted": _int(state, "rx_packets"),
        "packets_discarded": None,
        "packets_bypassed": None,
        "bytes_sent": _int(state, "tx_bytes"),
        "bytes_received": _int(state, "rx_bytes"),
        "connected_at": _seconds(state, "connected_at") if connected else None,
        "split_networks": split_networks(state) if connected else [],
        "banner": state.get("CISCO_BANNER") if connected else None,
        "last_error": None,
        "reconnects": None,
        "waiting_for": None,
        "ike_dropped": None,
    }
    # vpnc itself does the ESP (user space, through its TUN)
    return annotate(record, "vpnc", UNREPORTED, "vpnc")


def render_status(record: dict[str, Any]) -> str:
    from .records_common import render_status_text

    return render_status_text(record)
