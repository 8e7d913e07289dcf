"""A strongSwan branch site (vpn-site, implementation strongswan): a net-to-net IKEv1 main
mode PSK connection with one child per network pair; what charon cannot express is a
validate error naming the setting (the lab run is topologies/l2l-strongswan-site.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labctl.kinds import implementation_of
from labctl.render import render_node
from labctl.topology import TopologyError, load_lab_text

ROOT = Path(__file__).resolve().parents[3]
SITE = ROOT / "topologies" / "l2l-strongswan-site.yaml"


def variant(**vpn) -> str:
    data = yaml.safe_load(SITE.read_text())
    data["topology"]["nodes"]["site"]["vpn"].update(vpn)
    return yaml.safe_dump(data, sort_keys=False)


def swanctl(text: str) -> str:
    lab = load_lab_text(text, SITE)
    assert implementation_of(lab.node("site")).name == "strongswan"
    files = {f.path: f for f in render_node(lab, "site").files}
    rendered = files["/etc/swanctl/swanctl.conf"]
    assert rendered.mode == 0o600
    return rendered.content.decode()


def test_main_mode_psk_net_to_net_and_no_clear_psk() -> None:
    text = swanctl(variant(psk="branch-psk-123"))
    assert "version = 1" in text and "aggressive = no" in text
    assert "remote_addrs = 172.16.172.50" in text
    assert "local_ts = 10.20.0.0/24" in text and "remote_ts = 192.168.2.0/24" in text
    assert "branch-psk-123" not in text and "secret = 0s" in text
    assert "xauth" not in text and "vips" not in text  # a site: no XAUTH, no Mode-Config


def test_one_child_per_network_pair() -> None:
    data = yaml.safe_load(variant(**{"remote-networks": ["192.168.2.0/24", "192.168.3.0/24"]}))
    entry = data["topology"]["nodes"]["vpn3000"]["vpn"]["lan-to-lan"]["branch"]
    entry["local-networks"] = ["192.168.2.0/24", "192.168.3.0/24"]
    text = swanctl(yaml.safe_dump(data, sort_keys=False))
    children = [line.strip() for line in text.splitlines() if line.strip().startswith("net-")]
    assert children == ["net-0 {", "net-1 {"]
    assert "remote_ts = 192.168.3.0/24" in text


def test_nat_t_off_cannot_be_expressed() -> None:
    text = variant(**{"nat-t": False})
    with pytest.raises(TopologyError) as error:
        load_lab_text(text, SITE)
    messages = [f"{i.field}: {i.message}" for i in error.value.issues]
    assert any("nat" in m and "implementation strongswan cannot express" in m for m in messages)


def test_key_export_renders_the_key_log() -> None:
    """The site exports its keys like the other strongSwan kinds (their tests:
    tests/unit/kinds/test_swan_key_export.py)."""
    lab = load_lab_text(variant(**{"debug": {"export-keys": True}}), SITE)
    config = render_node(lab, "site")
    conf = {f.path: f for f in config.files}["/etc/strongswan.conf"].content.decode()
    assert "path = /var/log/labctl/keys/charon-keys.log" in conf
    assert config.reload_commands[-1] == "labctl-swan reload"
