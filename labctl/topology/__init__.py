"""Topology files: YAML -> validated, typed `Lab`.

lab = load_lab("topologies/nat-t-two-clients.yaml")   # raises TopologyError
lab.nodes["pix"].pat.outside, lab.segments, lab.interfaces_of("pix")
"""

from .errors import TopologyError, TopologyIssue, UnknownNodeError
from .lab import Lab, Segment
from .load import load_lab, load_lab_text
from .model import (
    KINDS,
    ConcentratorNode,
    Endpoint,
    HostNode,
    LabFile,
    NodeBase,
    PatFirewallNode,
    RouterNode,
    VpnClientNode,
)
from .semantics import parse_pool

__all__ = [
    "KINDS",
    "ConcentratorNode",
    "Endpoint",
    "HostNode",
    "Lab",
    "LabFile",
    "NodeBase",
    "PatFirewallNode",
    "RouterNode",
    "Segment",
    "TopologyError",
    "TopologyIssue",
    "UnknownNodeError",
    "VpnClientNode",
    "load_lab",
    "load_lab_text",
    "parse_pool",
]
