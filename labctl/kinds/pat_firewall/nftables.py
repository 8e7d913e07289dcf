"""The `pat-firewall` on Linux: nftables masquerade, conntrack as the translation table."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

from ..collect import json_and_text, run
from ..spec import Implementation, NodeConfig, RenderedFile, ShowTable
from .model import PatFirewallNode

if TYPE_CHECKING:
    from ...topology.lab import Lab

NFT_PATH = "/etc/labctl/nftables.nft"
PAT_TABLE = "labctl_pat"


def render(lab: Lab, name: str) -> NodeConfig:
    from ..templates import render_template  # Jinja2 only when rendering

    node = lab.node(name)
    assert isinstance(node, PatFirewallNode)
    pat = node.pat
    outside_address = node.interfaces[pat.outside].ipv4
    text = render_template(
        __package__,
        "nftables.nft.j2",
        lab_name=lab.name,
        node_name=name,
        inside=pat.inside,
        outside=pat.outside,
        outside_address=outside_address.ip if outside_address else "?",
        timeouts=pat.timeouts,
        allow_inbound=pat.allow_inbound,
        port_allocation=pat.port_allocation,
        global_ports=pat.global_ports,
        drop_fragments=pat.drop_fragments,
    )
    # Per-flow packet/byte counters, so xlate records show what crossed the PAT.
    sysctls = {"net.netfilter.nf_conntrack_acct": "1"}
    if pat.timeouts.icmp:
        sysctls["net.netfilter.nf_conntrack_icmp_timeout"] = str(pat.timeouts.icmp)
    return NodeConfig(
        name,
        (RenderedFile(NFT_PATH, text.encode(), check="nft -c -f {path}"),),
        (f"nft -f {NFT_PATH}",),
        sysctls,
    )


# --- show tables -------------------------------------------------------------------------


def inside_networks(handle: Any, node: str) -> list[IPv4Network]:
    spec = handle.lab.node(node)
    assert isinstance(spec, PatFirewallNode)
    networks = []
    for if_name in spec.pat.inside:
        address = spec.interfaces[if_name].ipv4
        if address is not None:
            networks.append(address.network)
    # Networks routed behind an inside interface (a client fleet's addresses) are inside
    # too: `nat (inside) 1 0 0` translates whatever arrives there (not the default route).
    connected = list(networks)
    for route in spec.routes:
        if route.dst.prefixlen and any(route.via in network for network in connected):
            networks.append(route.dst)
    return networks


def collect_xlate(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    from ...state.xlate import XLATE_COMMAND, parse_conntrack_xml, render_xlate, xlate_entries

    flows = parse_conntrack_xml(run(handle, node, XLATE_COMMAND))
    entries = xlate_entries(flows, inside_networks(handle, node))
    return [e.to_json() for e in entries], render_xlate(entries, verbose)


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


def collect_counters(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    rows = nft_counters(json.loads(run(handle, node, "nft -j list table ip " + PAT_TABLE)))
    lines = [f"{'CHAIN':<12} {'PACKETS':>9} {'BYTES':>11}  RULE"]
    lines += [
        f"{r['chain']:<12} {r['packets']:>9} {r['bytes']:>11}  {r['comment'] or '-'}" for r in rows
    ]
    return rows, "\n".join(lines) + "\n"


NFTABLES = Implementation(
    "nftables",
    image_role="node",
    render=render,
    shows=(
        ShowTable("xlate", "PAT translations from conntrack (PIX 'show xlate')", collect_xlate),
        ShowTable(
            "nft",
            "the nftables ruleset with counters",
            json_and_text("nft -j list ruleset", "nft list ruleset"),
        ),
        ShowTable(
            "counters",
            "packet counters of the PAT's rules (e.g. 'no PAT for this protocol' drops)",
            collect_counters,
        ),
    ),
)
