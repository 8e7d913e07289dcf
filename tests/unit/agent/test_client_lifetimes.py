"""A client's lifetimes come from the topology (vpn.ike-lifetime / vpn.ipsec-lifetime)
through the rendered vpn.json into the engine's proposals."""

from __future__ import annotations

from pathlib import Path

from labctl.agent.client import build_initiator_config
from labctl.agent.settings import ClientSettings, parse_settings
from labctl.render import vpn_agent_config
from labctl.topology import load_lab

ROOT = Path(__file__).resolve().parents[3]


def test_client_lifetimes_reach_the_engine() -> None:
    data = vpn_agent_config(load_lab(ROOT / "topologies" / "nat-t-two-clients.yaml"), "client1")
    assert (data["vpn"]["ike_lifetime"], data["vpn"]["ipsec_lifetime"]) == (86400, 28800)
    data["vpn"]["ike_lifetime"], data["vpn"]["ipsec_lifetime"] = 3600, 600
    settings = parse_settings(data)
    assert isinstance(settings, ClientSettings)
    config = build_initiator_config(settings)
    assert {p.lifetime for p in config.phase1} == {3600}
    assert {p.lifetime for p in config.phase2} == {600}
