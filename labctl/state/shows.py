"""What `labctl show NODE WHAT` can show, per node kind, read from the node's real state."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

from ..errors import LabctlError
from ..topology import PatFirewallNode
from .arp import ARP_COMMAND, parse_neigh_json, render_arp
from .xlate import XLATE_COMMAND, parse_conntrack_xml, render_xlate, xlate_entries


class ShowError(LabctlError):
    """A show cannot be collected or is unknown for the node."""


@dataclass(frozen=True)
class Show:
    name: str
    help: str
    kinds: tuple[str, ...] | None  # None: every kind
    # (handle, node, verbose) -> (records for --json, text for people)
    collect: Callable[[Any, str, bool], tuple[Any, str]]


def _run(handle, node: str, command: str) -> str:
    return handle.session(node).run(command).check().stdout


def inside_networks(handle, node: str) -> list[IPv4Network]:
    spec = handle.lab.node(node)
    assert isinstance(spec, PatFirewallNode)
    networks = []
    for if_name in spec.pat.inside:
        address = spec.interfaces[if_name].ipv4
        if address is not None:
            networks.append(address.network)
    return networks


def collect_xlate(handle, node: str, verbose: bool = False):
    flows = parse_conntrack_xml(_run(handle, node, XLATE_COMMAND))
    entries = xlate_entries(flows, inside_networks(handle, node))
    return [e.to_json() for e in entries], render_xlate(entries, verbose)


def collect_arp(handle, node: str, verbose: bool = False):
    entries = parse_neigh_json(_run(handle, node, ARP_COMMAND))
    return [e.to_json() for e in entries], render_arp(entries)


def collect_conntrack(handle, node: str, verbose: bool = False):
    from dataclasses import asdict

    flows = parse_conntrack_xml(_run(handle, node, XLATE_COMMAND))
    return [asdict(f) for f in flows], _run(handle, node, "conntrack -L 2>/dev/null")


PAT_TABLE = "labctl_pat"


def nft_counters(ruleset: dict[str, Any], table: str = PAT_TABLE) -> list[dict[str, Any]]:
    """One row per counted rule of the PAT's table: chain, comment, packets, bytes."""
    rows = []
    for item in ruleset.get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("table") != table:
            continue
        counter = next((e["counter"] for e in rule.get("expr", []) if "counter" in e), None)
        if not isinstance(counter, dict):
            continue
        rows.append(
            {
                "chain": rule.get("chain"),
                "comment": rule.get("comment", ""),
                "packets": counter.get("packets", 0),
                "bytes": counter.get("bytes", 0),
                "handle": rule.get("handle"),
            }
        )
    return rows


def collect_counters(handle, node: str, verbose: bool = False):
    rows = nft_counters(json.loads(_run(handle, node, "nft -j list table ip " + PAT_TABLE)))
    lines = [f"{'CHAIN':<12} {'PACKETS':>9} {'BYTES':>11}  RULE"]
    lines += [
        f"{r['chain']:<12} {r['packets']:>9} {r['bytes']:>11}  {r['comment'] or '-'}" for r in rows
    ]
    return rows, "\n".join(lines) + "\n"


def _json_and_text(json_command: str, text_command: str):
    def collect(handle, node: str, verbose: bool = False):
        return json.loads(_run(handle, node, json_command) or "null"), _run(
            handle, node, text_command
        )

    return collect


def collect_sessions(handle, node: str, verbose: bool = False):
    detail = " -v" if verbose else ""
    records = json.loads(_run(handle, node, "vpn show sessions --json"))
    return records["sessions"], _run(handle, node, f"vpn show sessions{detail}")


def collect_administer(handle, node: str, verbose: bool = False):
    """The whole Administer Sessions screen: summary, remote-access sessions and the
    management sessions (the web console's own)."""
    records = json.loads(_run(handle, node, "vpn show sessions --json"))
    records.setdefault("management", [])  # an agent from before management sessions
    return records, _run(handle, node, "vpn show sessions" + (" -v" if verbose else ""))


def collect_client_status(handle, node: str, verbose: bool = False):
    return json.loads(_run(handle, node, "vpn status --json")), _run(handle, node, "vpn status")


def render_vpn_stats(stats: dict[str, Any]) -> str:
    """The counters an operator looks at first: what was dropped, what the log summarised,
    what IPsec over TCP refused (the full record is the --json output)."""
    drops = stats.get("drops") or {}
    lines = ["IKE messages dropped: " + (", ".join(f"{k} {v}" for k, v in drops.items()) or "-")]
    log = stats.get("log") or {}
    lines.append(
        f"Event log: {log.get('suppressed', 0)} lines summarised, "
        f"{log.get('rotations', 0)} rotations"
    )
    tcp = stats.get("tcp")
    if isinstance(tcp, dict) and "accepted" in tcp:
        lines.append(
            f"IPsec over TCP: {tcp.get('accepted', 0)} accepted, {tcp.get('refused', 0)} refused, "
            f"{tcp.get('evicted', 0)} evicted, {len(tcp.get('connections') or [])} open"
        )
    ike = stats.get("ike") or {}
    if ike:
        lines.append("IKE: " + ", ".join(f"{k} {v}" for k, v in sorted(ike.items())))
    return "\n".join(lines) + "\n"


def collect_vpn_stats(handle, node: str, verbose: bool = False):
    stats = json.loads(_run(handle, node, "vpn stats"))
    return stats, render_vpn_stats(stats)


def collect_vpn_log(handle, node: str, verbose: bool = False):
    text = _run(handle, node, f"vpn log -n {1000 if verbose else 100}")
    return [{"line": line} for line in text.splitlines()], text


SHOWS: dict[str, Show] = {
    show.name: show
    for show in [
        Show(
            "xlate",
            "PAT translations from conntrack (PIX 'show xlate')",
            ("pat-firewall",),
            collect_xlate,
        ),
        Show("arp", "neighbour table of the lab interfaces (PIX 'show arp')", None, collect_arp),
        Show("conntrack", "every conntrack flow in the node", None, collect_conntrack),
        Show("route", "routing table", None, _json_and_text("ip -j route", "ip route")),
        Show(
            "interfaces",
            "interfaces and addresses",
            None,
            _json_and_text("ip -j addr", "ip -br addr"),
        ),
        Show(
            "nft",
            "the nftables ruleset with counters",
            ("pat-firewall",),
            _json_and_text("nft -j list ruleset", "nft list ruleset"),
        ),
        Show(
            "counters",
            "packet counters of the PAT's rules (e.g. 'no PAT for this protocol' drops)",
            ("pat-firewall",),
            collect_counters,
        ),
        Show(
            "sessions",
            "VPN sessions (VPN 3000 'Administer Sessions'; -v: IKE/IPsec SAs)",
            ("concentrator",),
            collect_sessions,
        ),
        Show(
            "administer",
            "VPN 3000 'Administer Sessions': session summary, remote access and management "
            "sessions",
            ("concentrator",),
            collect_administer,
        ),
        Show("status", "VPN client status and statistics", ("vpn-client",), collect_client_status),
        Show(
            "log",
            "the VPN agent's event log (-v: more lines)",
            ("concentrator", "vpn-client"),
            collect_vpn_log,
        ),
        Show(
            "stats",
            "the VPN agent's counters: IKE messages dropped per reason, log, IPsec over TCP",
            ("concentrator", "vpn-client"),
            collect_vpn_stats,
        ),
    ]
}


def register(show: Show) -> None:
    """Kind-specific packages (the VPN agents) add their own shows here."""
    SHOWS[show.name] = show


def collect(handle, node: str, what: str, verbose: bool = False) -> tuple[Any, str]:
    show = SHOWS.get(what)
    kind = handle.lab.node(node).kind
    available = sorted(n for n, s in SHOWS.items() if s.kinds is None or kind in s.kinds)
    if show is None or (show.kinds is not None and kind not in show.kinds):
        raise ShowError(
            f"cannot show {what!r} on {node} ({kind}); available: {', '.join(available)}"
        )
    return show.collect(handle, node, verbose)
