"""Topology files: YAML -> validated, typed `Lab`.

lab = load_lab("topologies/nat-t-two-clients.yaml")   # raises TopologyError
lab.nodes["pix"].pat.outside, lab.segments, lab.interfaces_of("pix")

The node kinds' models live with their kinds (`labctl.kinds`).
"""

from .errors import TopologyError, TopologyIssue, UnknownNodeError
from .lab import Lab, Segment
from .load import load_lab, load_lab_text
from .model import KINDS, Endpoint, LabFile, NodeBase

__all__ = [
    "KINDS",
    "Endpoint",
    "Lab",
    "LabFile",
    "NodeBase",
    "Segment",
    "TopologyError",
    "TopologyIssue",
    "UnknownNodeError",
    "load_lab",
    "load_lab_text",
]
