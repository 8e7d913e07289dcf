"""Scenario steps name real nodes; traffic from several nodes checks every one."""

from __future__ import annotations

import pytest

from labctl.topology import TopologyError, load_lab_text

LAB = """
name: sem
topology:
  nodes:
    a: {kind: host, interfaces: {eth1: 10.0.0.2/24}}
    b: {kind: host, interfaces: {eth1: 10.0.0.3/24}}
  links:
    - {endpoints: [a:eth1, b:eth1]}
scenarios:
  s:
    steps:
      - traffic: {from: FROM, to: 10.0.0.3}
"""


def test_traffic_from_several_nodes_is_valid() -> None:
    lab = load_lab_text(LAB.replace("FROM", "[a, b]"))
    assert lab.spec.scenarios["s"].steps[0].traffic.source == ["a", "b"]


def test_traffic_from_an_unknown_node_names_it() -> None:
    with pytest.raises(TopologyError, match="no node 'ghost'"):
        load_lab_text(LAB.replace("FROM", "[a, ghost]"))
