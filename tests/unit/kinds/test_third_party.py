"""strongSwan and vpnc as implementations: what each cannot express is a validate error
naming the setting and the implementation; what they render (see also the golden files of
topologies/interop-strongswan-vpnc.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from labctl.kinds import implementation_of
from labctl.kinds.vpn_client import VpnClientNode
from labctl.kinds.vpn_client.vpnc import vpnc_values
from labctl.render import render_node
from labctl.topology import TopologyError, load_lab_text

ROOT = Path(__file__).resolve().parents[3]
INTEROP = ROOT / "topologies" / "interop-strongswan-vpnc.yaml"


def edited(**edits: dict[str, Any]) -> str:
    """The interop topology with node settings merged in (node -> {field: value})."""
    data = yaml.safe_load(INTEROP.read_text())
    nodes = data["topology"]["nodes"]
    for node, fields in edits.items():
        for key, value in fields.items():
            if key == "vpn":
                nodes[node]["vpn"].update(value)
            else:
                nodes[node][key] = value
    return yaml.safe_dump(data, sort_keys=False)


def errors_of(text: str) -> list[str]:
    with pytest.raises(TopologyError) as error:
        load_lab_text(text, ROOT / "topologies" / "t.yaml")
    return [f"{issue.field}: {issue.message}" for issue in error.value.issues]


def test_the_interop_topology_validates_and_picks_implementations() -> None:
    lab = load_lab_text(INTEROP.read_text(), INTEROP)
    chosen = {name: implementation_of(node).name for name, node in lab.nodes.items()}
    assert chosen["swangw"] == "strongswan" and chosen["swanc"] == "strongswan"
    assert chosen["vpncc"] == "vpnc" and chosen["client1"] == "ours"
    assert {implementation_of(lab.node(n)).image_role for n in ("swangw", "vpncc")} == {
        "strongswan"
    }


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {"swangw": {"vpn": {"nat-transparency": {"nat-t": False}}}},
            "topology.nodes.swangw.vpn.nat_transparency.nat_t: implementation strongswan "
            "cannot express this setting: charon always negotiates NAT-T",
        ),
        (
            {
                "swangw": {
                    "vpn": {
                        "nat-transparency": {"nat-t": True, "ipsec-over-tcp": {"enabled": True}}
                    }
                }
            },
            "topology.nodes.swangw.vpn.nat_transparency.ipsec_over_tcp: implementation "
            "strongswan cannot express this setting",
        ),
        (
            {
                "swangw": {
                    "vpn": {
                        "nat-transparency": {"nat-t": True, "ipsec-over-udp": {"enabled": True}}
                    }
                }
            },
            "topology.nodes.swangw.vpn.nat_transparency.ipsec_over_udp: implementation "
            "strongswan cannot express this setting",
        ),
        (
            {"swangw": {"vpn": {"max-sessions": 30}}},
            "topology.nodes.swangw.vpn.max_sessions: implementation strongswan cannot express "
            "this setting: charon's ikesa_limit counts IKE SAs",
        ),
        (
            {"swanc": {"vpn": {"transparent-tunneling": {"mode": "udp"}}}},
            "topology.nodes.swanc.vpn.transparent_tunneling.mode: implementation strongswan "
            "cannot express this setting: 'udp'",
        ),
        (
            {"swanc": {"vpn": {"transparent-tunneling": {"enabled": False}}}},
            "topology.nodes.swanc.vpn.transparent_tunneling.enabled: implementation strongswan",
        ),
        (
            {"swanc": {"vpn": {"client-version": "4.0"}}},
            "topology.nodes.swanc.vpn.client_version: implementation strongswan",
        ),
        (
            {"vpncc": {"vpn": {"transparent-tunneling": {"mode": "tcp"}}}},
            "topology.nodes.vpncc.vpn.transparent_tunneling.mode: implementation vpnc cannot "
            "express this setting: 'tcp'",
        ),
        (
            {"vpncc": {"vpn": {"nat-keepalive": 10}}},
            "topology.nodes.vpncc.vpn.nat_keepalive: implementation vpnc",
        ),
        (
            {"vpncc": {"vpn": {"ike-proposals": ["aes128-sha1-modp1024", "3des-md5-modp1536"]}}},
            "topology.nodes.vpncc.vpn.ike_proposals: implementation vpnc cannot express this "
            "setting: vpnc uses one DH group",
        ),
        (
            {"vpncc": {"vpn": {"debug": {"export-keys": True}}}},
            "topology.nodes.vpncc.vpn.debug.export_keys: implementation vpnc",
        ),
        (
            {"vpncc": {"vpn": {"ike-fragmentation": {"enabled": True}}}},
            "topology.nodes.vpncc.vpn.ike_fragmentation.enabled: implementation vpnc",
        ),
        (
            {"vpncc": {"vpn": {"ipsec-lifetime": 3600}}},
            "topology.nodes.vpncc.vpn.ipsec_lifetime: implementation vpnc",
        ),
        (
            {"swanc": {"vpn": {"mtu": 1300}}},
            "topology.nodes.swanc.vpn.mtu: implementation strongswan",
        ),
        (
            {"swanc": {"vpn": {"transparent-tunneling": {"nat-t-versions": ["draft-01"]}}}},
            "topology.nodes.swanc.vpn.transparent_tunneling.nat_t_versions: implementation "
            "strongswan cannot express this setting: charon's NAT-T vendor IDs are built in",
        ),
        (
            {"vpncc": {"vpn": {"transparent-tunneling": {"nat-t-versions": ["rfc3947"]}}}},
            "topology.nodes.vpncc.vpn.transparent_tunneling.nat_t_versions: implementation vpnc",
        ),
        (
            {
                "swangw": {
                    "vpn": {"nat-transparency": {"nat-t": True, "nat-t-versions": ["draft-00"]}}
                }
            },
            "topology.nodes.swangw.vpn.nat_transparency.nat_t_versions: implementation strongswan",
        ),
        (
            {
                "swangw": {
                    "vpn": {
                        "lan-to-lan": {
                            "site": {
                                "peer": "171.69.89.78",
                                "psk": "x",
                                "local-networks": ["192.168.3.0/24"],
                                "remote-networks": ["10.20.0.0/24"],
                            }
                        }
                    }
                }
            },
            "topology.nodes.swangw.vpn.lan_to_lan: implementation strongswan",
        ),
    ],
)
def test_a_setting_an_implementation_cannot_express_is_an_error(
    edits: dict[str, Any], expected: str
) -> None:
    errors = errors_of(edited(**edits))
    assert any(expected in error for error in errors), errors


def test_users_of_several_groups_cannot_be_kept_apart_on_strongswan() -> None:
    data = yaml.safe_load(INTEROP.read_text())
    vpn = data["topology"]["nodes"]["swangw"]["vpn"]
    vpn["groups"]["other"] = {"psk": "x", "pool": "50.2.1.1-50.2.1.9"}
    vpn["users"]["someone"] = {"password": "y", "group": "other"}
    errors = errors_of(yaml.safe_dump(data, sort_keys=False))
    assert any("swangw.vpn.users: implementation strongswan" in e for e in errors), errors


def test_an_implementation_a_kind_lacks_is_a_model_error() -> None:
    errors = errors_of(edited(swangw={"implementation": "vpnc"}))
    assert any("swangw" in e and "implementation" in e for e in errors), errors


def test_rendered_third_party_files_are_secret_mode_and_hold_no_clear_psk_for_swanctl() -> None:
    lab = load_lab_text(INTEROP.read_text(), INTEROP)
    for node in ("swangw", "swanc", "vpncc"):
        files = {f.path: f for f in render_node(lab, node).files}
        for path, rendered in files.items():
            if path.endswith((".conf",)):
                assert rendered.mode == 0o600, path
    swanctl = {f.path: f for f in render_node(lab, "swangw").files}["/etc/swanctl/swanctl.conf"]
    # base64 ("0s..."): no quoting problem, and the PSK is not greppable in clear
    assert b"swan123" not in swanctl.content and b"secret = 0s" in swanctl.content


def test_vpnc_weak_switches_and_groups_follow_the_proposals() -> None:
    lab = load_lab_text(
        edited(
            vpncc={
                "vpn": {
                    "ike-proposals": ["3des-md5-modp1536"],
                    "ipsec-proposals": ["3des-md5-modp1536"],
                }
            }
        ),
        INTEROP,
    )
    node = lab.node("vpncc")
    assert isinstance(node, VpnClientNode)
    values = vpnc_values(node, "vpncc")
    assert values["dh_group"] == "dh5" and values["pfs"] == "dh5"
    assert values["weak_encryption"] and values["weak_authentication"]
    assert values["natt_mode"] == "natt"
    assert values["application_version"] == "Cisco Systems VPN Client 3.6.2 (Rel):WinNT"


def test_auto_tunneling_is_nat_t_toward_a_concentrator_with_nat_t() -> None:
    # vpn3000 has NAT-T on: 'auto' picks it, which strongSwan and vpnc do
    load_lab_text(
        edited(
            swanc={"vpn": {"transparent-tunneling": {"mode": "auto"}}},
            vpncc={"vpn": {"transparent-tunneling": {"mode": "auto"}}},
        ),
        INTEROP,
    )
    data = yaml.safe_load(
        edited(
            swanc={"vpn": {"transparent-tunneling": {"mode": "auto"}}},
            vpncc={"vpn": {"transparent-tunneling": {"mode": "auto"}}},
        )
    )
    vpn = data["topology"]["nodes"]["vpn3000"]["vpn"]
    vpn["nat-transparency"] = {"nat-t": False, "ipsec-over-udp": {"enabled": True}}
    errors = errors_of(yaml.safe_dump(data, sort_keys=False))
    for node, implementation in (("swanc", "strongswan"), ("vpncc", "vpnc")):
        expected = f"{node}.vpn.transparent_tunneling.mode: implementation {implementation}"
        assert any(expected in e for e in errors), errors


def test_names_swanctl_cannot_carry_unquoted_are_refused() -> None:
    data = yaml.safe_load(INTEROP.read_text())
    vpn = data["topology"]["nodes"]["swangw"]["vpn"]
    (group,) = vpn["groups"]
    vpn["groups"]["bad.group {x}"] = vpn["groups"].pop(group)
    for user in vpn["users"].values():
        user["group"] = "bad.group {x}"
    vpn["users"]["user name"] = {"password": "y", "group": "bad.group {x}"}
    data["topology"]["nodes"]["swanc"]["vpn"]["user"] = 'a"b'
    errors = errors_of(yaml.safe_dump(data, sort_keys=False))
    assert any(
        "swangw.vpn.groups.bad.group {x}: implementation strongswan cannot express" in e
        and "section name" in e
        for e in errors
    ), errors
    assert any("swangw.vpn.users.user name: implementation strongswan" in e for e in errors)
    assert any("swanc.vpn.user: implementation strongswan" in e for e in errors), errors


def test_a_line_break_in_a_vpnc_secret_is_refused_without_showing_it() -> None:
    errors = errors_of(edited(vpncc={"vpn": {"password": "pw\nScript /tmp/evil"}}))
    found = [e for e in errors if e.startswith("topology.nodes.vpncc.vpn.password:")]
    assert found and "line break" in found[0], errors
    assert not any("evil" in e for e in errors)


def test_sha256_translates_for_strongswan_and_is_refused_for_vpnc() -> None:
    from labctl.kinds.third_party import parse_proposal

    assert parse_proposal("aes256-sha256-modp2048") is not None  # as the agent takes it
    errors = errors_of(edited(vpncc={"vpn": {"ipsec-proposals": ["aes128-sha256"]}}))
    assert any(
        e.startswith("topology.nodes.vpncc.vpn.ipsec_proposals.0:") and "MD5 and SHA1" in e
        for e in errors
    ), errors
    load_lab_text(edited(swanc={"vpn": {"ipsec-proposals": ["aes128-sha256"]}}), INTEROP)


def test_a_strongswan_client_gets_the_concentrators_shorter_lifetimes() -> None:
    """charon ignores RESPONDER-LIFETIME: labctl renders what the notify would say."""
    from labctl.checks.matrix import variants

    (variant,) = [
        v
        for v in variants(ROOT / "topologies" / "rekey-same-ports.yaml")
        if v.label == "gw=ours client=strongswan"
    ]
    assert variant.lab is not None
    (swanctl,) = [
        f for f in render_node(variant.lab, "client1").files if f.path.endswith("swanctl.conf")
    ]
    text = swanctl.content.decode()
    assert "reauth_time = 67s" in text  # 90 % of the group's 75 s
    assert "life_time = 60s" in text and "rekey_time = 54s" in text
    assert "\t\t\t\trand_time = 0s" in text  # 90 % exactly: a gateway rekeying at 80 % goes first


def _gateway_swanctl(topology: str, label: str) -> str:
    from labctl.checks.matrix import variants

    (variant,) = [v for v in variants(ROOT / "topologies" / topology) if v.label == label]
    assert variant.lab is not None
    (swanctl,) = [
        f for f in render_node(variant.lab, "vpn3000").files if f.path.endswith("swanctl.conf")
    ]
    return swanctl.content.decode()


def test_a_strongswan_gateway_offers_vpnc_clients_one_esp_transform() -> None:
    """vpnc answers a gateway's quick mode (charon's rekey) only when its one proposal
    has exactly one transform; charon offers every configured ESP proposal in it."""
    for_vpnc = _gateway_swanctl("gateway-starts-rekey.yaml", "gw=strongswan client=vpnc")
    assert "esp_proposals = 3des-md5\n" in for_vpnc
    for_ours = _gateway_swanctl("gateway-starts-rekey.yaml", "gw=strongswan client=ours")
    assert "esp_proposals = 3des-md5,aes128-sha1\n" in for_ours


def test_ike_fragmentation_size_is_charons_fragment_size_in_both_roles() -> None:
    """The same field our agent reads: `size` (our fragments' UDP payload) becomes charon's
    global fragment_size (a whole IP datagram: + 28); unwritten, charon keeps its own."""
    frag = {"ike-fragmentation": {"enabled": True, "size": 700}}
    lab = load_lab_text(edited(swanc={"vpn": frag}, swangw={"vpn": frag}), INTEROP)
    for node, swanctl in (("swanc", "fragmentation = yes"), ("swangw", "fragmentation = yes")):
        files = {f.path: f.content.decode() for f in render_node(lab, node).files}
        assert "\tfragment_size = 728\n" in files["/etc/strongswan.conf"]
        assert swanctl in files["/etc/swanctl/swanctl.conf"]
    plain = load_lab_text(INTEROP.read_text(), INTEROP)
    files = {f.path: f.content.decode() for f in render_node(plain, "swanc").files}
    assert "fragment_size" not in files["/etc/strongswan.conf"]
