"""Names and labels of everything a lab creates, so up, down and status agree.

Everything carries the lab name, so `down` can find a lab's leftovers after labctl was
killed half-way, and two labs with identical addresses never share a name.
"""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "labctl"

LABEL_LAB = "labctl.lab"
LABEL_NODE = "labctl.node"
LABEL_KIND = "labctl.kind"
LABEL_TOPOLOGY = "labctl.topology"
LABEL_TOPOLOGY_HASH = "labctl.topology-hash"
LABEL_ROLE = "labctl.role"  # "node" or "mgmt"


def container_name(lab: str, node: str) -> str:
    return f"{PREFIX}-{lab}-{node}"


def mgmt_network_name(lab: str) -> str:
    return f"{PREFIX}-{lab}-mgmt"


def fabric_netns(lab: str) -> str:
    """The lab-private namespace that holds the segment bridges."""
    return f"{PREFIX}-{lab}"


def lab_from_fabric_netns(name: str) -> str | None:
    prefix = f"{PREFIX}-"
    return name[len(prefix) :] if name.startswith(prefix) else None


def state_root() -> Path:
    """Where per-lab host state (the lab's SSH key, pinned host keys) lives."""
    return Path(os.environ.get("LABCTL_STATE_DIR", "/var/lib/labctl")) / "labs"


def state_dir(lab: str) -> Path:
    return state_root() / lab


def bridge_name(segment_index: int) -> str:
    # Bridges live in the lab's own fabric namespace, so short indexed names cannot clash.
    return f"br{segment_index}"


def fabric_port_name(segment_index: int, endpoint_index: int) -> str:
    return f"s{segment_index}p{endpoint_index}"
