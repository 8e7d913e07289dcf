"""Topology loading: the seed lab, inheritance, secrets and every kind of mistake."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from labctl.kinds.pat_firewall import PatFirewallNode
from labctl.topology import TopologyError, load_lab, load_lab_text
from labctl.topology.schema import topology_schema, topology_schema_text

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "topologies" / "nat-t-two-clients.yaml"
SEED_TEXT = SEED.read_text()


def line_containing(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def test_seed_lab_model() -> None:
    lab = load_lab(SEED)
    assert list(lab.nodes) == ["client1", "client2", "pix", "router", "vpn3000", "server"]
    pix = lab.nodes["pix"]
    assert isinstance(pix, PatFirewallNode)
    assert str(pix.interfaces["outside"].ipv4) == "171.69.89.78/23"
    assert [str(r.dst) for r in pix.routes] == ["0.0.0.0/0"]
    inside = lab.segment_of("client2", "eth1")
    assert inside is not None and inside.is_lan and inside.name == "inside"
    assert {str(n) for n in lab.subnets().values()} == {
        "10.10.10.0/24",
        "171.69.88.0/23",
        "172.16.172.0/24",
        "192.168.2.0/24",
    }
    # The router has no route to the private side: the tunnel is the only way in.
    assert lab.nodes["router"].routes == []


def test_kind_defaults_are_inherited_and_node_values_win() -> None:
    lab = load_lab(SEED)
    c1, c2 = lab.nodes["client1"], lab.nodes["client2"]
    assert str(c1.vpn.host) == "172.16.172.50" == str(c2.vpn.host)
    assert c1.vpn.user == "vpnclient1" and c2.vpn.user == "vpnclient2"
    assert [str(r.via) for r in c2.routes] == ["10.10.10.1"]


def test_groups_and_defaults() -> None:
    text = """
name: g
topology:
  defaults: {labels: {team: a}}
  groups:
    lanhost: {kind: host, routes: [default via 10.0.0.1], labels: {team: b}}
  nodes:
    gw: {kind: router, interfaces: {e1: 10.0.0.1/24}}
    h1: {group: lanhost, interfaces: {e1: 10.0.0.2/24}}
  links:
    - endpoints: [gw:e1, h1:e1]
"""
    lab = load_lab_text(text)
    assert lab.nodes["h1"].kind == "host"
    assert lab.nodes["h1"].labels == {"team": "b"}
    assert lab.nodes["gw"].labels == {"team": "a"}


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "psk.txt").write_text("from-a-file\n")
    monkeypatch.setenv("LAB_USER_PW", "from-the-env")
    text = SEED_TEXT.replace("psk: cisco123", "psk: {file: psk.txt}").replace(
        "{password: vpnclient1pw, group", "{password: {env: LAB_USER_PW}, group"
    )
    topo = tmp_path / "lab.yaml"
    topo.write_text(text)
    lab = load_lab(topo)
    vpn = lab.nodes["vpn3000"].vpn
    assert vpn.groups["ciscovpn"].psk.get_secret_value() == "from-a-file"
    assert vpn.users["vpnclient1"].password.get_secret_value() == "from-the-env"
    dumped = repr(lab.spec) + str(lab.spec) + lab.spec.model_dump_json()
    for secret in ("from-a-file", "from-the-env", "cisco123", "vpnclient2pw"):
        assert secret not in dumped


MISTAKES = [
    # (what, old, new, needle on the reported line, message fragment)
    ("unknown kind", "kind: router", "kind: rooter", "kind: rooter", "unknown kind 'rooter'"),
    (
        "unknown field",
        "outside: outside       #",
        "outsde: outside       #",
        "outsde",
        "did you mean 'outside'",
    ),
    (
        "address outside its segment",
        "10.10.10.3/24",
        "10.10.11.3/24",
        "10.10.11.3/24",
        "outside the subnet 10.10.10.0/24",
    ),
    ("duplicate address", "10.10.10.3/24", "10.10.10.2/24", None, "duplicate address 10.10.10.2"),
    (
        "link to a missing node",
        "client2:eth1]",
        "client3:eth1]",
        "client3:eth1",
        "client3:eth1 names a node that does not exist",
    ),
    (
        "duplicate node name",
        "    server:\n      kind: host",
        "    server:\n      kind: host\n    server:\n      kind: host",
        None,
        "duplicate key 'server'",
    ),
    (
        "gateway not connected",
        "default via 171.69.88.1",
        "default via 171.69.99.1",
        "default via 171.69.99.1",
        "gateway 171.69.99.1 is not on any subnet of pix",
    ),
    (
        "invalid address",
        "171.69.88.1/23",
        "171.69.888.1/23",
        "171.69.888.1/23",
        "not a valid IPv4 interface",
    ),
    ("YAML syntax", "    pix:\n", "    pix\n  x: [\n", None, "YAML syntax"),
    (
        "overlapping subnets",
        "192.168.2.251/24",
        "172.16.172.51/24",
        "name: private",
        "overlaps 172.16.172.0/24",
    ),
    (
        "unknown VPN user",
        "user: vpnclient1,",
        "user: vpnclient9,",
        "vpnclient9",
        "has no user 'vpnclient9'",
    ),
    (
        "interface on no link",
        "eth2: 172.16.172.1/24",
        "eth2: 172.16.172.1/24\n        eth3: 10.9.0.1/24",
        "eth3: 10.9.0.1/24",
        "interface eth3 is not on any link",
    ),
    ("bad lab name", "name: nat-t-two-clients", "name: Nat_T", "name: Nat_T", "invalid value"),
    (
        "reserved interface",
        "{eth1: 192.168.2.10/24}",
        "{eth0: 192.168.2.10/24}",
        "eth0:",
        "reserved",
    ),
    (
        "pool overlapping a lab subnet",
        "40.1.1.1-40.1.1.254",
        "192.168.2.100-192.168.2.200",
        "192.168.2.100-192.168.2.200",
        "overlaps lab subnet 192.168.2.0/24",
    ),
    (
        "PAT interface missing",
        "inside: [inside] ",
        "inside: [insde] ",
        "pat:",
        "'insde' is not an interface of this node",
    ),
    (
        "missing secret variable",
        "psk: cisco123",
        "psk: {env: LABCTL_TEST_UNSET_VAR}",
        "psk: {env: LABCTL_TEST_UNSET_VAR}",
        "LABCTL_TEST_UNSET_VAR",
    ),
]


@pytest.mark.parametrize(
    ("what", "old", "new", "needle", "fragment"), MISTAKES, ids=[m[0] for m in MISTAKES]
)
def test_mistakes_are_reported_with_file_and_line(
    what: str, old: str, new: str, needle: str | None, fragment: str
) -> None:
    assert old in SEED_TEXT, what
    text = SEED_TEXT.replace(old, new, 1)
    with pytest.raises(TopologyError) as caught:
        load_lab_text(text, Path("topologies/broken.yaml"))
    messages = str(caught.value).splitlines()
    matching = [m for m in messages if fragment in m]
    assert matching, f"{what}: no message contains {fragment!r}: {messages}"
    assert all(m.startswith("topologies/broken.yaml:") for m in messages)
    if needle is not None:
        expected_line = line_containing(text, needle.splitlines()[0])
        assert any(m.startswith(f"topologies/broken.yaml:{expected_line}:") for m in matching), (
            f"{what}: expected line {expected_line}: {matching}"
        )


def test_missing_file_is_one_line() -> None:
    with pytest.raises(TopologyError, match=r"nope\.yaml: cannot read"):
        load_lab("nope.yaml")


def test_published_schema_is_current_and_accepts_the_shipped_topologies() -> None:
    published = ROOT / "topologies" / "labctl.schema.json"
    assert published.read_text() == topology_schema_text(), (
        "run: labctl schema > topologies/labctl.schema.json"
    )
    schema = topology_schema()
    for path in sorted((ROOT / "topologies").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "topology": {"nodes": {"a": {"kind": "nope"}}}}, schema)
    assert json.loads(published.read_text())["title"] == "labctl topology"
