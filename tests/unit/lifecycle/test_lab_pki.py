"""`auth: certificate | hybrid` on the host: the lab CA and node certificates kept in the
lab's state folder (keys 0600), the files each node gets at push (render stays pure), the
agent reading them back, and validate refusing combinations that cannot work."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from labctl.agent.client import build_initiator_config
from labctl.agent.concentrator import build_policy
from labctl.agent.credentials import load_credentials
from labctl.agent.settings import SettingsError, parse_settings
from labctl.ike.constants import AuthMethod
from labctl.lifecycle.pki import with_certificates
from labctl.render import render_node, vpn_agent_config
from labctl.topology import TopologyError, load_lab, load_lab_text

ROOT = Path(__file__).resolve().parents[3]
CERTS = ROOT / "topologies" / "certificate-auth.yaml"
HYBRID = ROOT / "topologies" / "hybrid-auth.yaml"


def _files(lab, node: str, state: Path) -> dict[str, tuple[bytes, int]]:
    config = with_certificates(lab, node, state, render_node(lab, node))
    return {f.path: (f.content, f.mode) for f in config.files if "/pki/" in f.path}


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_nodes_get_the_lab_ca_and_their_own_certificates(tmp_path) -> None:
    lab = load_lab(CERTS)
    gateway = _files(lab, "vpn3000", tmp_path)
    client1 = _files(lab, "client1", tmp_path)
    assert (
        set(gateway)
        == set(client1)
        == {
            "/etc/labctl/pki/ca.pem",
            "/etc/labctl/pki/node.pem",
            "/etc/labctl/pki/node.key",
        }
    )
    assert gateway["/etc/labctl/pki/node.key"][1] == 0o600
    assert gateway["/etc/labctl/pki/ca.pem"] == client1["/etc/labctl/pki/ca.pem"]
    ca = _cert(gateway["/etc/labctl/pki/ca.pem"][0])
    assert ca.subject.rfc4514_string() == "CN=labctl certificate-auth CA,O=labctl"
    own = _cert(client1["/etc/labctl/pki/node.pem"][0])
    assert own.subject.rfc4514_string() == "CN=client1,OU=ciscovpn,O=labctl"  # OU = group
    assert own.issuer == ca.subject
    # client2's certificate is the other CA's, but it checks the gateway with the lab CA
    client2 = _files(lab, "client2", tmp_path)
    assert _cert(client2["/etc/labctl/pki/node.pem"][0]).issuer.rfc4514_string() == (
        "CN=labctl certificate-auth elsewhere CA,O=labctl"
    )
    assert client2["/etc/labctl/pki/ca.pem"][0] == gateway["/etc/labctl/pki/ca.pem"][0]
    # nodes without auth get nothing; render alone never carries key material
    assert _files(lab, "pix", tmp_path) == {}
    assert not any("/pki/" in f.path for f in render_node(lab, "vpn3000").files)


def test_the_ca_and_keys_stay_in_the_state_folder_root_only_and_are_reused(tmp_path) -> None:
    lab = load_lab(CERTS)
    first = _files(lab, "client1", tmp_path)
    again = _files(lab, "client1", tmp_path)
    assert first == again  # the same CA and certificate on every push
    folder = tmp_path / "pki"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    keys = sorted(folder.glob("*.key"))
    assert [k.name for k in keys] == ["ca-lab.key", "node-client1.key"]
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)


def test_a_changed_group_gets_a_new_certificate(tmp_path) -> None:
    lab = load_lab(CERTS)
    before = _cert(_files(lab, "client1", tmp_path)["/etc/labctl/pki/node.pem"][0])
    text = (
        CERTS.read_text()
        .replace("group: ciscovpn", "group: engineers")
        .replace("ciscovpn:", "engineers:")
    )
    renamed = load_lab_text(text.replace("group: ciscovpn}", "group: engineers}"), CERTS)
    after = _cert(_files(renamed, "client1", tmp_path)["/etc/labctl/pki/node.pem"][0])
    assert after.subject.rfc4514_string() == "CN=client1,OU=engineers,O=labctl"
    assert after.serial_number != before.serial_number


def test_a_hybrid_client_gets_only_the_root_it_trusts(tmp_path) -> None:
    lab = load_lab(HYBRID)
    client1 = _files(lab, "client1", tmp_path)
    client2 = _files(lab, "client2", tmp_path)
    gateway = _files(lab, "vpn3000", tmp_path)
    assert set(client1) == set(client2) == {"/etc/labctl/pki/ca.pem"}
    assert client1["/etc/labctl/pki/ca.pem"] == gateway["/etc/labctl/pki/ca.pem"]
    assert "elsewhere" in _cert(client2["/etc/labctl/pki/ca.pem"][0]).subject.rfc4514_string()


def _install(tmp_path: Path, lab, node: str) -> Path:
    target = tmp_path / node
    target.mkdir()
    for path, (content, _) in _files(lab, node, tmp_path / "state").items():
        (target / Path(path).name).write_bytes(content)
    return target


def test_the_agents_build_their_policies_from_the_pushed_files(tmp_path) -> None:
    lab = load_lab(CERTS)
    gateway = load_credentials("test", own=True, directory=_install(tmp_path, lab, "vpn3000"))
    policy = build_policy(parse_settings(vpn_agent_config(lab, "vpn3000")), gateway)
    assert {p.auth for p in policy.phase1} == {AuthMethod.XAUTH_INIT_RSA, AuthMethod.RSA_SIG}
    assert policy.groups["ciscovpn"].accepted_auth == AuthMethod.XAUTH_INIT_RSA
    client = load_credentials("test", own=True, directory=_install(tmp_path, lab, "client1"))
    config = build_initiator_config(parse_settings(vpn_agent_config(lab, "client1")), client)
    assert config.exchange == "main" and config.certificate is not None
    assert {p.auth for p in config.phase1} == {AuthMethod.XAUTH_INIT_RSA}


def test_missing_or_mismatched_files_are_named(tmp_path) -> None:
    with pytest.raises(SettingsError, match=r"auth: certificate needs .*/ca.pem \(labctl up/push"):
        load_credentials("auth: certificate", own=True, directory=tmp_path)
    lab = load_lab(CERTS)
    folder = _install(tmp_path, lab, "client1")
    other = _install(tmp_path, lab, "client2")
    (folder / "node.key").write_bytes((other / "node.key").read_bytes())
    with pytest.raises(SettingsError, match=r"node\.key is not the key of .*node\.pem"):
        load_credentials("x", own=True, directory=folder)
    (folder / "node.key").write_text("garbage")
    with pytest.raises(
        SettingsError, match=r"node\.key: not an unencrypted PEM private key"
    ) as err:
        load_credentials("x", own=True, directory=folder)
    assert "garbage" not in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("        auth: certificate\n", "        auth: certificate\n        group-password: x\n"),
         "vpn.group-password: not used with auth: certificate; remove it"),
        (("            auth: certificate\n", "            auth: certificate\n            psk: x\n"),
         "vpn.groups.ciscovpn.psk: not used with auth: certificate"),
        (("            auth: certificate\n", "            auth: psk\n"),
         "vpn.groups.ciscovpn.psk: required with auth: psk"),
        (("        auth: certificate\n", "        auth: hybrid\n"),
         "vpn.auth: hybrid, but group 'ciscovpn' on vpn3000 takes auth: certificate"),
    ],
)  # fmt: skip
def test_validate_refuses_combinations_that_cannot_work(change, message) -> None:
    text = CERTS.read_text().replace(*change, 1)
    with pytest.raises(TopologyError) as error:
        load_lab_text(text, CERTS)
    assert message in str(error.value)


def test_hybrid_needs_xauth_users_and_third_parties_render_psk_only() -> None:
    text = HYBRID.read_text()
    no_users = text.replace("          vpnclient1: {password: vpnclient1pw, group: ciscovpn}\n", "")
    no_users = no_users.replace(
        "          vpnclient2: {password: vpnclient2pw, group: ciscovpn}\n", ""
    )
    no_users = no_users.replace("        users:\n", "")
    with pytest.raises(TopologyError) as error:
        load_lab_text(no_users, HYBRID)
    assert "hybrid authenticates clients by XAUTH only" in str(error.value)
    vpnc = text.replace("      kind: vpn-client\n      interfaces: {eth1: 10.10.10.2/24}",
                        "      kind: vpn-client\n      implementation: vpnc\n"
                        "      interfaces: {eth1: 10.10.10.2/24}")  # fmt: skip
    with pytest.raises(TopologyError) as error:
        load_lab_text(vpnc, HYBRID)
    assert "implementation vpnc cannot express this setting: auth: hybrid" in str(error.value)
