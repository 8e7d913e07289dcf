"""What a lab may leave on the host: everything labctl or Docker made for it, by name."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


@dataclass(frozen=True)
class LabFootprint:
    containers: tuple[str, ...]
    networks: tuple[str, ...]
    netns: tuple[str, ...]
    state_dir: bool
    host_links: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (
            self.containers or self.networks or self.netns or self.state_dir or self.host_links
        )


def lab_footprint(lab: str) -> LabFootprint:
    client = docker.from_env()
    containers = tuple(
        sorted(
            c.attrs["Names"][0].lstrip("/")
            for c in client.containers.list(
                all=True, filters={"label": f"labctl.lab={lab}"}, sparse=True
            )
        )
    )
    networks = tuple(
        sorted(n.name for n in client.networks.list(filters={"label": f"labctl.lab={lab}"}))
    )
    netns = tuple(
        sorted(
            line.split()[0]
            for line in _run("ip", "netns", "list").splitlines()
            if line.split() and line.split()[0] == f"labctl-{lab}"
        )
    )
    state_dir = Path(f"/var/lib/labctl/labs/{lab}").exists()
    # No lab veth or bridge may ever live in the host namespace.
    host_links = tuple(
        sorted(name for name in host_link_names() if re.match(r"^(s\d+p\d+|br\d+)$", name))
    )
    return LabFootprint(containers, networks, netns, state_dir, host_links)


def host_link_names() -> list[str]:
    names = []
    for line in _run("ip", "-o", "link", "show").splitlines():
        parts = line.split(": ")
        if len(parts) > 1:
            names.append(parts[1].split("@")[0])
    return names


def docker_bridges() -> set[str]:
    return {name for name in host_link_names() if name.startswith(("br-", "docker", "veth"))}


def host_routes() -> list[str]:
    """The host's routes, minus those on Docker's own bridges."""
    return sorted(
        line
        for line in _run("ip", "route", "show", "table", "all").splitlines()
        if not re.search(r"\bdev (br-[0-9a-f]+|docker0|veth\w+)\b", line)
    )


def host_addresses() -> list[str]:
    """The host's addresses (all families), minus those on Docker's own bridges."""
    return sorted(
        " ".join(line.split()[1:4])
        for line in _run("ip", "-o", "addr", "show").splitlines()
        if not re.search(r"^\d+: (br-[0-9a-f]+|docker0|veth\w+)[ @]", line)
    )


def host_ipv4_addresses() -> list[str]:
    """Every IPv4 address the host has, Docker's bridge gateways included."""
    addresses = []
    for line in _run("ip", "-o", "-4", "addr", "show").splitlines():
        addresses.append(line.split()[3].split("/")[0])
    return addresses


def host_firewall_rules() -> list[str]:
    """iptables and nftables rules outside Docker's own chains and bridges."""
    rules = []
    for line in _run("iptables-save").splitlines() + _run("ip6tables-save").splitlines():
        if line.startswith("#") or re.search(r"DOCKER|br-[0-9a-f]{12}", line):
            continue
        rules.append(re.sub(r"\[\d+:\d+\]", "", line))
    tables = [t for t in _run("nft", "list", "tables").splitlines()]
    return sorted(rules + tables)


def _foreign_bridges(lab: str) -> set[str]:
    """Host bridges of Docker networks that are not this lab's (other labs, Docker's own)."""
    bridges = {"docker0"}
    for network in docker.from_env().networks.list():
        if (network.attrs.get("Labels") or {}).get("labctl.lab") != lab:
            bridges.add(network.attrs["Options"].get("com.docker.network.bridge.name") or "")
            bridges.add(f"br-{network.id[:12]}")
    return bridges - {""}


def host_state_of(lab: str) -> dict[str, list[str]]:
    """Routes, addresses and firewall rules of the host, minus what belongs to Docker
    networks that are not `lab`'s: other labs come and go on a shared machine, but anything
    this lab adds on the host (a bridge of its own, an address, a route, a rule) shows."""
    foreign = "|".join(re.escape(b) for b in sorted(_foreign_bridges(lab)))
    on_foreign = re.compile(rf"(^\d+: |\bdev | -[io] )({foreign}|veth\w+)\b")
    routes = [
        line
        for line in _run("ip", "route", "show", "table", "all").splitlines()
        if not on_foreign.search(line)
    ]
    addresses = [
        " ".join(line.split()[1:4])
        for line in _run("ip", "-o", "addr", "show").splitlines()
        if not on_foreign.search(line)
    ]
    rules = [
        re.sub(r"\[\d+:\d+\]", "", line)
        for line in _run("iptables-save").splitlines() + _run("ip6tables-save").splitlines()
        if not line.startswith("#") and not on_foreign.search(line)
    ]
    tables = _run("nft", "list", "tables").splitlines()
    return {
        "routes": sorted(routes),
        "addresses": sorted(addresses),
        "firewall": sorted(rules + tables),
    }
