"""`labctl up` configures the network before the VPN clients (which connect at once)."""

from __future__ import annotations

from pathlib import Path

from labctl.lifecycle.up import push_order
from labctl.topology import load_lab

ROOT = Path(__file__).resolve().parents[3]


def test_vpn_clients_are_configured_after_everything_else() -> None:
    lab = load_lab(ROOT / "topologies" / "nat-t-two-clients.yaml")
    assert push_order(lab) == [["pix", "router", "vpn3000", "server"], ["client1", "client2"]]
