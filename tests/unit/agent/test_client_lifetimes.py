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
    assert data["vpn"]["ipsec_lifetime_kb"] is None
    data["vpn"]["ike_lifetime"], data["vpn"]["ipsec_lifetime"] = 3600, 600
    data["vpn"]["ipsec_lifetime_kb"] = 5000
    settings = parse_settings(data)
    assert isinstance(settings, ClientSettings)
    config = build_initiator_config(settings)
    assert {p.lifetime for p in config.phase1} == {3600}
    assert {(p.lifetime, p.lifetime_kb) for p in config.phase2} == {(600, 5000)}


def test_a_group_kilobyte_lifetime_reaches_the_concentrators_policy() -> None:
    from labctl.agent.concentrator import build_policy
    from labctl.agent.settings import ConcentratorSettings

    data = vpn_agent_config(load_lab(ROOT / "topologies" / "nat-t-two-clients.yaml"), "vpn3000")
    for group in data["vpn"]["groups"].values():
        group["ipsec_lifetime_kb"] = 2000
    data["vpn"]["initiate_rekeys"] = True
    settings = parse_settings(data)
    assert isinstance(settings, ConcentratorSettings)
    policy = build_policy(settings)
    assert policy.ipsec_lifetime_kb == 2000 and policy.initiate_rekeys
    assert {p.lifetime_kb for p in policy.phase2} == {2000}
