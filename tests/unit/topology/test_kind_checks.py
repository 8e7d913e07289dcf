"""What a check or step may name follows from the kinds' specs: the tables each kind's
implementation has, which kinds a scenario can connect, and each kind's own checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.topology import TopologyError, load_lab_text

ROOT = Path(__file__).resolve().parents[3]
SEED = (ROOT / "topologies" / "nat-t-two-clients.yaml").read_text()


def errors_of(text: str) -> list[str]:
    with pytest.raises(TopologyError) as error:
        load_lab_text(text, ROOT / "topologies" / "t.yaml")
    return [f"{issue.field}: {issue.message}" for issue in error.value.issues]


def with_scenario(*steps: str) -> str:
    body = "".join(f"      - {step}\n" for step in steps)
    return SEED + f"scenarios:\n  s:\n    steps:\n{body}"


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (
            "connect: pix",
            "scenarios.s.steps.0.connect: pix is a pat-firewall; "
            "this needs a vpn-client or vpn-site or vpn-fleet",
        ),
        (
            "disconnect: [client1, vpn3000]",
            "scenarios.s.steps.0.disconnect: vpn3000 is a concentrator; "
            "this needs a vpn-client or vpn-site or vpn-fleet",
        ),
        (
            "expect: [{sessions: {node: client1}}]",
            "scenarios.s.steps.0.expect.0.sessions.node: client1 is a vpn-client; "
            "this needs a concentrator",
        ),
        (
            "expect: [{client: {node: vpn3000}}]",
            "scenarios.s.steps.0.expect.0.client.node: vpn3000 is a concentrator; "
            "this needs a vpn-client or vpn-site or vpn-fleet",
        ),
        (
            "expect: [{session-follows-xlate: {firewall: router, concentrator: pix}}]",
            "scenarios.s.steps.0.expect.0.session-follows-xlate.firewall: router is a router; "
            "this needs a pat-firewall",
        ),
    ],
)
def test_steps_and_checks_name_nodes_of_the_kinds_that_can_do_them(
    step: str, expected: str
) -> None:
    assert expected in errors_of(with_scenario(step))


def test_a_show_names_a_table_of_the_nodes_implementation() -> None:
    errors = errors_of(with_scenario("expect: [{show: {node: client1, what: sessions}}]"))
    assert errors == [
        "scenarios.s.steps.0.expect.0.show.what: client1 (vpn-client) has no table 'sessions' "
        "(available: arp, conntrack, interfaces, log, route, stats, status)"
    ]


def test_tables_of_every_kind_are_accepted() -> None:
    load_lab_text(
        with_scenario(
            "connect: [client1, client2]",
            "expect: [{show: {node: pix, what: counters}}, {show: {node: vpn3000, what: stats}},"
            " {show: {node: server, what: arp}}, {client: {node: client2}}]",
        ),
        ROOT / "topologies" / "t.yaml",
    )


def test_each_kind_checks_its_own_settings() -> None:
    text = (
        SEED.replace("outside: outside       #", "outside: wan  #")
        .replace("pool: 40.1.1.1-40.1.1.254", "pool: 10.10.10.100-10.10.10.200")
        .replace("vpn: {user: vpnclient2,", "vpn: {user: nobody,")
    )
    assert errors_of(text) == [
        "topology.nodes.client2.vpn.user: concentrator vpn3000 has no user 'nobody'",
        "topology.nodes.pix.pat: interface 'wan' is not an interface of this node",
        "topology.nodes.vpn3000.vpn.groups.ciscovpn.pool: pool 10.10.10.100-10.10.10.200 "
        "overlaps lab subnet 10.10.10.0/24",
    ]


def test_a_fleet_refuses_certificates_it_would_not_get() -> None:
    """labctl issues no certificates for simulated clients: asking for them is an error at
    validate, not a fleet whose every member fails at connect."""
    text = (ROOT / "topologies" / "fleet-clients.yaml").read_text()
    text = text.replace(
        "        group-password: cisco123\n        user:", "        auth: hybrid\n        user:"
    )
    assert "topology.nodes.fleet.vpn.auth: a fleet authenticates with psk only, not hybrid" in (
        errors_of(text)
    )
