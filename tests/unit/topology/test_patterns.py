"""Topology patterns: N similar nodes, users and links written once (issue 13)."""

from __future__ import annotations

from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from labctl.cli.main import main
from labctl.topology import TopologyError, load_lab, load_lab_text
from labctl.topology.patterns import Copy, PatternError, evaluate, parse_range, substitute

HERE = Path(__file__).parent
TOPOLOGIES = HERE.parents[2] / "topologies"

FLEET = """\
name: scale-fleet
topology:
  kinds:
    vpn-client:
      routes: [default via 10.10.8.1]
      vpn: {host: 172.16.172.50, group: g, group-password: gpw12345}
  nodes:
    client{001..300}:
      kind: vpn-client
      interfaces: {eth1: "{10.10.8.2+i}/22"}
      vpn: {user: "vpnclient{n}", password: "pw{n}"}
    pix:
      kind: pat-firewall
      interfaces: {inside: 10.10.8.1/22, outside: 172.16.172.1/24}
      pat: {inside: [inside], outside: outside}
    vpn3000:
      kind: concentrator
      interfaces: {public: 172.16.172.50/24}
      vpn:
        public-interface: public
        groups:
          g: {psk: psk12345, pool: 40.1.0.1-40.1.3.254}
        users:
          vpnclient{1..300}: {password: "pw{n}", group: g}
    r{1..2}:
      kind: router
      interfaces: {eth1: "192.168.{n}.1/24"}
    h{1..2}:
      kind: host
      interfaces: {eth1: "192.168.{n}.10/24"}
  links:
    - name: inside
      endpoints: [pix:inside, "client{001..300}:eth1"]
    - {name: outside, endpoints: [pix:outside, vpn3000:public]}
    - {name: "lan{1..2}", endpoints: ["r{n}:eth1", "h{n}:eth1"]}
"""


def test_ranges_numbers_and_padding() -> None:
    plain = parse_range("client{1..3}")
    assert plain is not None
    assert [plain.name(c) for c in plain.copies] == ["client1", "client2", "client3"]
    padded = parse_range("c{08..10}x")
    assert padded is not None
    assert [padded.name(c) for c in padded.copies] == ["c08x", "c09x", "c10x"]
    assert [(c.n, c.i) for c in padded.copies] == [(8, 0), (9, 1), (10, 2)]
    assert parse_range("client1") is None


def test_expressions() -> None:
    copy = Copy(n=300, i=299, text="300")
    assert substitute("vpnclient{n}", copy) == "vpnclient300"
    assert substitute("{n+1}-{ n - 2 }-{i}", copy) == "301-298-299"
    # an address plus an index crosses octets: the 300th address of a /22 from .8.2
    assert substitute("{10.10.8.2+i}/22", copy) == "10.10.9.45/22"
    assert substitute("keep {1..3} and p{x*y}", copy) == "keep {1..3} and p{x*y}"
    with pytest.raises(PatternError, match="unknown name 'm'"):
        evaluate("m", copy)
    with pytest.raises(PatternError, match="runs past the IPv4 address space"):
        evaluate("255.255.255.255+n", copy)
    with pytest.raises(PatternError, match="the address comes first"):
        evaluate("n+10.0.0.1", copy)
    with pytest.raises(PatternError, match="not an address"):
        evaluate("10.0.0.300+n", copy)


def test_a_fleet_of_three_hundred_clients_in_a_slash_22() -> None:
    lab = load_lab_text(FLEET)
    clients = [name for name in lab.nodes if name.startswith("client")]
    assert clients[0] == "client001" and clients[-1] == "client300" and len(clients) == 300
    last = lab.nodes["client300"]
    assert last.interfaces["eth1"].ipv4 == IPv4Interface("10.10.9.45/22")
    assert last.vpn.user == "vpnclient300"
    assert last.vpn.password.get_secret_value() == "pw300"
    users = lab.nodes["vpn3000"].vpn.users
    assert len(users) == 300 and users["vpnclient300"].password.get_secret_value() == "pw300"
    inside = lab.segments[0]
    assert len(inside.endpoints) == 301 and str(inside.endpoints[-1]) == "client300:eth1"
    lans = [s for s in lab.segments if s.name.startswith("lan")]
    assert [(s.name, [str(e) for e in s.endpoints]) for s in lans] == [
        ("lan1", ["r1:eth1", "h1:eth1"]),
        ("lan2", ["r2:eth1", "h2:eth1"]),
    ]
    addresses = {lab.address_of(c, "eth1") for c in clients}
    assert len(addresses) == 300


def test_the_patterned_many_clients_is_the_hand_written_one() -> None:
    patterned = load_lab(TOPOLOGIES / "many-clients.yaml")
    by_hand = load_lab(HERE / "data" / "many-clients-by-hand.yaml")
    assert patterned.spec.model_dump(mode="json") == by_hand.spec.model_dump(mode="json")
    assert patterned.segments == by_hand.segments


def test_an_error_in_a_copy_points_at_the_pattern_line() -> None:
    text = FLEET.replace("{10.10.8.2+i}/22", "{10.10.8.2+i}/24")
    with pytest.raises(TopologyError) as caught:
        load_lab_text(text, Path("fleet.yaml"))
    pattern_line = next(n for n, line in enumerate(text.splitlines(), 1) if "+i}/24" in line)
    route_line = next(n for n, line in enumerate(text.splitlines(), 1) if "routes:" in line)
    issues = caught.value.issues  # the copies' addresses and their (inherited) route
    assert issues and all(issue.line in (pattern_line, route_line) for issue in issues)
    assert any(issue.field.startswith("topology.nodes.client2") for issue in issues)


def test_a_secret_with_a_bad_expression_is_not_quoted() -> None:
    text = FLEET.replace('password: "pw{n}", group', 'password: "s3cr{zq}", group')
    with pytest.raises(TopologyError) as caught:
        load_lab_text(text)
    assert "s3cr" not in str(caught.value) and "zq" not in str(caught.value)
    assert "not shown: a secret" in str(caught.value)


def test_validate_expand_prints_every_copy_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "fleet.yaml"
    file.write_text(FLEET)
    assert main(["validate", "--expand", str(file)]) == 0
    out = capsys.readouterr().out
    assert "client300:\n" in out and "ipv4: 10.10.9.45/22" in out
    assert "vpnclient300:" in out and "client300:eth1" in out
    assert "pw300" not in out and "psk12345" not in out and "gpw12345" not in out
    assert "{n}" not in out and "{1..300}" not in out


def test_the_schema_accepts_patterns() -> None:
    import jsonschema
    import yaml

    from labctl.topology.schema import topology_schema

    jsonschema.validate(yaml.safe_load(FLEET), topology_schema())


def test_placeholders_in_inherited_settings_are_refused_not_taken_literally() -> None:
    """`kinds`/`defaults`/`groups` are merged after the copies are made: a `{n}` there
    would reach every node as the literal text, so it is an error at its line."""
    text = FLEET.replace(
        "vpn: {host: 172.16.172.50, group: g, group-password: gpw12345}",
        'vpn: {host: 172.16.172.50, group: g, group-password: gpw12345, user: "u{n}"}',
    )
    with pytest.raises(TopologyError) as caught:
        load_lab_text(text)
    (issue,) = caught.value.issues
    assert issue.field == "topology.kinds.vpn-client.vpn.user" and issue.line == 6
    assert "only inside a pattern" in issue.message
