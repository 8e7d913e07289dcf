"""labctl graph: DOT, Mermaid and (with Graphviz installed) SVG of the seed lab."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labctl.graph import to_dot, to_mermaid, to_svg
from labctl.topology import load_lab

SEED = Path(__file__).resolve().parents[3] / "topologies" / "nat-t-two-clients.yaml"


def test_dot_has_every_node_and_link_with_addresses() -> None:
    dot = to_dot(load_lab(SEED))
    for node in ("client1", "client2", "pix", "router", "vpn3000", "server"):
        assert f'"{node}" [shape=' in dot
    assert '"lan:inside" [shape=point' in dot  # three endpoints: a LAN segment
    assert '"client2" -- "lan:inside"' in dot
    assert '"pix" -- "router"' in dot and "171.69.88.0/23" in dot
    assert "outside\\n171.69.89.78/23" in dot


def test_mermaid_lists_the_segments() -> None:
    text = to_mermaid(load_lab(SEED))
    assert text.startswith("graph LR")
    assert "inside<br/>10.10.10.0/24" in text
    assert text.count("---|") == 3 + 3  # three LAN members, three point-to-point links


def test_svg_through_graphviz() -> None:
    if shutil.which("dot") is None:
        pytest.fail("Graphviz's dot is missing: scripts/host-deps.sh installs it")
    svg = to_svg(load_lab(SEED))
    assert "<svg" in svg and "vpn3000" in svg
