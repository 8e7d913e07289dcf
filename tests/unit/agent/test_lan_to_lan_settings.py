"""From the topology's lan-to-lan entries and vpn-site to the engines' configuration."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from pathlib import Path

from labctl.agent.concentrator import build_policy
from labctl.agent.settings import ConcentratorSettings, SiteSettings, parse_settings
from labctl.agent.site import build_site_config
from labctl.ike.config import NattMode
from labctl.ike.constants import AuthMethod, IdType
from labctl.render import render_node
from labctl.topology import load_lab

ROOT = Path(__file__).resolve().parents[3]


def _settings(topology: str, node: str):
    config = render_node(load_lab(ROOT / "topologies" / topology), node)
    vpn_json = next(f for f in config.files if f.path.endswith("vpn.json"))
    return parse_settings(json.loads(vpn_json.content))


def test_concentrator_entry_becomes_a_lan_to_lan_policy() -> None:
    settings = _settings("l2l-nat-t.yaml", "vpn3000")
    assert isinstance(settings, ConcentratorSettings)
    policy = build_policy(settings)
    (entry,) = policy.lan_to_lan
    assert (entry.name, entry.peer, entry.natt_enabled) == ("branch", "171.69.89.78", True)
    assert entry.local_networks == (IPv4Network("192.168.2.0/24"),)
    assert entry.remote_networks == (IPv4Network("10.20.0.0/24"), IPv4Network("10.21.0.0/24"))
    assert entry.psk == b"l2lsecret" and "l2lsecret" not in repr(entry)
    assert all(p.auth == AuthMethod.PSK for p in entry.phase1)
    # LAN-to-LAN entries only (no group): the remote-access box stays off, the entry's on
    off_settings = _settings("l2l-nat-t-off.yaml", "vpn3000")
    assert isinstance(off_settings, ConcentratorSettings) and not off_settings.groups
    off = build_policy(off_settings)
    assert not off.groups and not off.natt_enabled and not off.lan_to_lan[0].natt_enabled


def test_site_becomes_a_main_mode_network_to_network_initiator() -> None:
    settings = _settings("l2l-nat-t.yaml", "site")
    assert isinstance(settings, SiteSettings)
    assert str(settings.lan_address) == "10.20.0.1"
    config = build_site_config(settings)
    assert (config.exchange, config.id_type, config.modecfg) == ("main", IdType.IPV4_ADDR, "none")
    assert config.natt is NattMode.NATT and config.user is None
    assert config.local_networks == (IPv4Network("10.20.0.0/24"), IPv4Network("10.21.0.0/24"))
    assert config.remote_networks == (IPv4Network("192.168.2.0/24"),)
    assert "l2lsecret" not in repr(settings) and "l2lsecret" not in repr(config)
