"""Names and labels of everything a lab creates, so up, down and status agree.

Everything carries the lab name, so `down` can find a lab's leftovers after labctl was
killed half-way, and two labs with identical addresses never share a name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import LabctlError

PREFIX = "labctl"

# The one rule for lab names, for every command that takes one: the name becomes a path
# component under the state root, a container/network/netns name prefix and a label value.
LAB_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,23}$"
LAB_NAME_RULE = "1-24 characters a-z, 0-9 or '-', starting with a letter or digit"
# Written into every state directory labctl creates; `down` removes only directories with it.
STATE_MARKER = ".labctl-lab"


class LabNameError(LabctlError, ValueError):
    """A string that is not a valid lab name (the message names it and the rule)."""

    status = 2


def check_lab_name(name: object, what: str = "lab name") -> str:
    """Return `name` if it is a valid lab name, else raise LabNameError naming `what`."""
    if not isinstance(name, str) or not re.fullmatch(LAB_NAME_PATTERN, name):
        raise LabNameError(f"{what} {name!r} is not a lab name ({LAB_NAME_RULE})")
    return name


LABEL_LAB = "labctl.lab"
LABEL_NODE = "labctl.node"
LABEL_KIND = "labctl.kind"
LABEL_TOPOLOGY = "labctl.topology"
LABEL_TOPOLOGY_HASH = "labctl.topology-hash"
LABEL_ROLE = "labctl.role"  # "node" ("mgmt": Docker networks an older labctl made)


def container_name(lab: str, node: str) -> str:
    return f"{PREFIX}-{lab}-{node}"


def fabric_netns(lab: str) -> str:
    """The lab-private namespace that holds the segment bridges."""
    return f"{PREFIX}-{check_lab_name(lab)}"


def lab_from_fabric_netns(name: str) -> str | None:
    prefix = f"{PREFIX}-"
    if not name.startswith(prefix):
        return None
    lab = name[len(prefix) :]
    return lab if re.fullmatch(LAB_NAME_PATTERN, lab) else None


def state_root() -> Path:
    """Where per-lab host state (the lab's SSH key, pinned host keys) lives."""
    return Path(os.environ.get("LABCTL_STATE_DIR", "/var/lib/labctl")) / "labs"


def lock_root() -> Path:
    """Per-lab lock files: beside the labs' state dirs, never inside one `down` removes."""
    return state_root().parent / "locks"


def state_dir(lab: str) -> Path:
    """<state root>/labs/<lab>, for a valid lab name only (never '..', '', '/x' or 'a/b')."""
    return state_root() / check_lab_name(lab)


def bridge_name(segment_index: int) -> str:
    # Bridges live in the lab's own fabric namespace, so short indexed names cannot clash.
    return f"br{segment_index}"


def fabric_port_name(segment_index: int, endpoint_index: int) -> str:
    return f"s{segment_index}p{endpoint_index}"


# The management plane lives in the fabric namespace too: one bridge, a port per node.
LABEL_MGMT_IPV4 = "labctl.mgmt-ipv4"  # the node's management address/prefix, set at create
MGMT_BRIDGE = "mgmt"


def mgmt_port_name(node_index: int) -> str:
    return f"m{node_index}"


def mgmt_port_alias(node: str) -> str:
    # Like a link port's "node:interface"; eth0 is reserved, so no lab link has this alias.
    return f"{node}:eth0"
