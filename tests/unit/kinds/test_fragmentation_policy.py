"""The concentrator's Fragmentation Policy: the rendered nftables half and the agent's TUN
MTU half, for each of the three choices."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labctl.agent.concentrator import ETHERNET_MTU, tun_mtu
from labctl.agent.settings import parse_settings
from labctl.esp import DEFAULT_TUNNEL_MTU
from labctl.kinds.concentrator.ours import FRAGMENT_NFT_PATH, fragment_rules
from labctl.render import render_node
from labctl.topology import load_lab

ROOT = Path(__file__).resolve().parents[3]
TOPOLOGY = ROOT / "topologies" / "fragmentation-policy.yaml"


def _with_policy(policy: str):
    lab = load_lab(TOPOLOGY)
    node = lab.node("vpn3000")
    vpn = node.vpn.model_copy(update={"fragmentation_policy": policy})
    return node.model_copy(update={"vpn": vpn})


@pytest.mark.parametrize("policy", ["fragment-encapsulated", "pmtud"])
def test_only_clear_df_touches_packets(policy: str) -> None:
    text = fragment_rules("vpn3000", _with_policy(policy))
    assert "chain" not in text and "frag-off" not in text
    assert text.splitlines()[0].endswith(f"Fragmentation Policy {policy}")


def test_clear_df_clears_it_before_routing_on_inside_traffic() -> None:
    text = fragment_rules("vpn3000", _with_policy("clear-df"))
    # prerouting: the forward path refuses a too-big DF packet before any forward hook
    assert "type filter hook prerouting priority -150" in text
    rule = next(line.strip() for line in text.splitlines() if "DF cleared" in line)
    # only unfragmented DF packets (frag-off exactly 0x4000), not from outside or the tunnel
    assert rule.startswith('iifname != { "public", "vpn0" } ip frag-off 0x4000 counter')
    assert "ip frag-off set 0" in rule


def test_the_rules_are_pushed_and_checked_before_the_agent_reloads() -> None:
    config = render_node(load_lab(TOPOLOGY), "vpn3000")
    paths = [f.path for f in config.files]
    assert FRAGMENT_NFT_PATH in paths
    nft = next(f for f in config.files if f.path == FRAGMENT_NFT_PATH)
    assert nft.check == "nft -c -f {path}"
    assert config.reload_commands[0] == f"nft -f {FRAGMENT_NFT_PATH}"
    assert config.reload_commands[-1] == "vpn service reload"


def test_tun_mtu_per_policy() -> None:
    import json

    config = render_node(load_lab(TOPOLOGY), "vpn3000")
    vpn_json = next(f for f in config.files if f.path.endswith("vpn.json"))
    settings = parse_settings(json.loads(vpn_json.content))
    assert settings.fragmentation_policy == "fragment-encapsulated"
    # whole packets into the tunnel: the ESP packet is what gets fragmented
    assert tun_mtu(settings) == ETHERNET_MTU == 1500
    for policy in ("pmtud", "clear-df"):
        assert tun_mtu(replace(settings, fragmentation_policy=policy)) == DEFAULT_TUNNEL_MTU


def test_an_unknown_policy_in_vpn_json_is_refused() -> None:
    import json

    from labctl.agent.settings import SettingsError

    config = render_node(load_lab(TOPOLOGY), "vpn3000")
    data = json.loads(next(f for f in config.files if f.path.endswith("vpn.json")).content)
    data["vpn"]["fragmentation_policy"] = "sometimes"
    with pytest.raises(SettingsError, match=r"vpn\.fragmentation_policy: 'sometimes' is not one"):
        parse_settings(data)


def test_client_mtu_setting_reaches_the_agent() -> None:
    import json

    config = render_node(load_lab(TOPOLOGY), "client1")
    data = json.loads(next(f for f in config.files if f.path.endswith("vpn.json")).content)
    assert parse_settings(data).mtu == 1300
