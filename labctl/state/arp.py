"""The neighbour table ("show arp"), from `ip -j neigh`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

ARP_COMMAND = "ip -4 -j neigh show"


@dataclass(frozen=True)
class ArpEntry:
    interface: str
    ip: str
    mac: str | None
    state: str

    def to_json(self) -> dict:
        return asdict(self)

    def pix_line(self) -> str:
        return f"      {self.interface} {self.ip} {_cisco_mac(self.mac)}"


def _cisco_mac(mac: str | None) -> str:
    if not mac:
        return "incomplete"
    digits = mac.replace(":", "").lower()
    return ".".join(digits[i : i + 4] for i in range(0, 12, 4))


def parse_neigh_json(text: str, hide_interfaces: tuple[str, ...] = ("eth0",)) -> list[ArpEntry]:
    """Lab neighbours; the management interface is hidden by default."""
    entries = []
    for item in json.loads(text or "[]"):
        if item.get("dev") in hide_interfaces:
            continue
        entries.append(
            ArpEntry(
                interface=item.get("dev", "?"),
                ip=item.get("dst", "?"),
                mac=item.get("lladdr"),
                state=",".join(item.get("state", [])) or "?",
            )
        )
    return sorted(entries, key=lambda e: (e.interface, e.ip))


def render_arp(entries: list[ArpEntry]) -> str:
    return "".join(e.pix_line() + "\n" for e in entries)
