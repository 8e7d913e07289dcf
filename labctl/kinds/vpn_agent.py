"""Our VPN agent (labctl/agent, in the `vpn` image): what the `ours` implementations of
both VPN kinds share -- /etc/labctl/vpn.json, `vpn service` check and reload, and the
event-log and counter tables.

vpn.json is the node's settings section with every value written out (the topology model
holds the defaults; the agent reads the file strictly, agent/settings.py) and the
node's addresses, secrets in clear: the file goes into the node only (mode 0600).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

from .collect import run
from .spec import NodeConfig, RenderedFile, ShowTable

if TYPE_CHECKING:
    from ..topology.lab import Lab

VPN_CONFIG_PATH = "/etc/labctl/vpn.json"


def settings_json(settings: BaseModel) -> dict[str, Any]:
    """A settings section as JSON data, every value written, secrets in clear."""
    return _reveal(settings, settings.model_dump(mode="json", by_alias=False))


def _reveal(value: Any, dumped: Any) -> Any:
    """`dumped` with each masked secret replaced by the value `value` holds there."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {key: _reveal(getattr(value, key), item) for key, item in dumped.items()}
    if isinstance(value, dict):
        return {key: _reveal(value.get(key), item) for key, item in dumped.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v, d) for v, d in zip(value, dumped, strict=True)]
    return dumped


def agent_node_config(lab: Lab, name: str, settings: dict[str, Any]) -> NodeConfig:
    """vpn.json for the node's agent: its VPN settings plus its addressing."""
    config = {
        "lab": lab.name,
        "node": name,
        "kind": lab.node(name).kind,
        "interfaces": {
            if_name: str(address) for if_name, address, _ in lab.interfaces_of(name) if address
        },
        "vpn": settings,
    }
    content = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    return NodeConfig(
        name,
        (RenderedFile(VPN_CONFIG_PATH, content, 0o600, check="vpn service check {path}"),),
        # Starts the agent, or applies the new file to the running one.
        ("vpn service reload",),
    )


# --- show tables -------------------------------------------------------------------------


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


def collect_vpn_stats(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    stats = json.loads(run(handle, node, "vpn stats"))
    return stats, render_vpn_stats(stats)


def collect_vpn_log(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
    text = run(handle, node, f"vpn log -n {1000 if verbose else 100}")
    return [{"line": line} for line in text.splitlines()], text


AGENT_SHOWS = (
    ShowTable("log", "the VPN agent's event log (-v: more lines)", collect_vpn_log),
    ShowTable(
        "stats",
        "the VPN agent's counters: IKE messages dropped per reason, log, IPsec over TCP",
        collect_vpn_stats,
    ),
)
