"""Matchers and table expectations against recorded rows (no lab needed)."""

from __future__ import annotations

import pytest

from labctl.checks.evaluate import evaluate, evaluate_table, parse_ping
from labctl.topology.checks_model import Expectation, Step, TableCheck
from labctl.topology.matchers import UnknownSavedValue, parse_matcher

XLATE = [
    {
        "protocol": "udp",
        "local_ip": "10.10.10.2",
        "local_port": 4500,
        "global_ip": "171.69.89.78",
        "global_port": 4500,
        "bytes_out": 120,
    },
    {
        "protocol": "udp",
        "local_ip": "10.10.10.3",
        "local_port": 4500,
        "global_ip": "171.69.89.78",
        "global_port": 30342,
        "bytes_out": 0,
    },
    {
        "protocol": "icmp",
        "local_ip": "10.10.10.2",
        "local_port": None,
        "global_ip": "171.69.89.78",
        "global_port": None,
        "bytes_out": 84,
    },
]


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (4500, 4500, True),
        (4500, "4500", True),
        ("4500", 4500, True),
        (4500, 4501, False),
        ("> 0", 1, True),
        ("> 0", 0, False),
        (">= 2", 2, True),
        ("< 5", 7, False),
        ("!= IPsec", "IPsec/NAT-T", True),
        ("!= IPsec", "IPsec", False),
        ("~ ^40\\.1\\.1\\.", "40.1.1.7", True),
        ("~ ^40\\.1\\.1\\.", "10.1.1.7", False),
        ("in 40.1.1.0/24", "40.1.1.200", True),
        ("in 40.1.1.0/24", "40.1.2.1", False),
        ("in 40.1.1.0/24", None, False),
        (True, True, True),
        (False, True, False),
        (["IPsec", "IPsec/NAT-T"], "IPsec/NAT-T", True),
        ("any", None, True),
        ("> 0", None, False),
    ],
)
def test_matchers(spec, value, expected) -> None:
    assert parse_matcher(spec)(value) is expected


@pytest.mark.parametrize("bad", ["> many", "~ (", "in nowhere"])
def test_bad_matchers_say_why(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_matcher(bad)


def test_two_clients_share_one_global_address_on_distinct_ports() -> None:
    check = TableCheck(
        node="pix",
        where={"protocol": "udp", "local_port": 4500},
        count=2,
        same=["global_ip"],
        distinct=["global_port"],
    )
    outcome = evaluate_table(XLATE, check, "xlate on pix")
    assert outcome.ok, outcome.text()
    assert "2 of 3 rows" in outcome.summary


def test_failures_say_what_was_expected_and_what_was_seen() -> None:
    check = TableCheck(
        node="pix",
        where={"protocol": "udp"},
        count=3,
        all={"bytes_out": "> 0"},
        distinct=["global_ip"],
    )
    outcome = evaluate_table(XLATE, check, "xlate on pix")
    assert not outcome.ok
    text = outcome.text()
    assert "count: expected 3, observed 2" in text
    assert "bytes_out: expected > 0, observed 0" in text
    assert '"171.69.89.78" (2 rows)' in text


def test_no_matching_row_lists_what_was_there() -> None:
    check = TableCheck(node="pix", where={"protocol": "tcp"}, count=1)
    outcome = evaluate_table(XLATE, check, "xlate on pix")
    assert not outcome.ok and "no row matched" in outcome.text()


def test_expectation_and_step_take_exactly_one_kind() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        Expectation.model_validate(
            {"xlate": {"node": "pix"}, "ping": {"from": "a", "to": "1.1.1.1"}}
        )
    with pytest.raises(ValueError, match="exactly one of"):
        Step.model_validate({"wait": 1, "push": "pix"})
    assert Expectation.model_validate({"ping": {"from": "c1", "to": "10.0.0.1"}}).kind == "ping"


def test_parse_ping_summary() -> None:
    assert parse_ping("3 packets transmitted, 2 received, 33% packet loss") == (3, 2)
    assert parse_ping("garbage") == (0, 0)


SESSIONS = [
    {
        "username": "vpnclient1",
        "ike": {"responder_cookie": "aa" * 8},
        "ipsec": [{"spi_in": "0x01020304", "udp_source_port": 4500}],
    },
    {
        "username": "vpnclient2",
        "ike": {"responder_cookie": "bb" * 8},
        "ipsec": [{"spi_in": "0x0a0b0c0d", "udp_source_port": 1029}],
    },
]


def test_dotted_fields_reach_into_nested_records() -> None:
    check = TableCheck(
        node="vpn3000",
        where={"ipsec.0.udp_source_port": 1029},
        count=1,
        all={"ike.responder_cookie": "~ ^bb", "username": "vpnclient2"},
    )
    assert evaluate_table(SESSIONS, check, "sessions").ok
    missing = TableCheck(node="vpn3000", all={"ipsec.3.spi_in": "any", "ike.nope": "x"})
    text = evaluate_table(SESSIONS, missing, "sessions").text()
    assert "ike.nope: expected 'x', observed None" in text


def test_saved_values_compare_later_rows() -> None:
    save = TableCheck(
        node="pix",
        where={"local_ip": "10.10.10.3", "protocol": "udp"},
        save={"port": "global_port"},
    )
    first = evaluate_table(XLATE, save, "xlate")
    assert first.ok and first.saved == {"port": 30342}
    assert "$port=30342" in first.summary

    moved = [dict(XLATE[1], global_port=1025)]
    same = TableCheck(node="pix", all={"global_port": "== $port"})
    changed = TableCheck(node="pix", all={"global_port": "!= $port"})
    assert evaluate_table(XLATE[1:2], same, "xlate", first.saved).ok
    assert evaluate_table(moved, changed, "xlate", first.saved).ok
    failed = evaluate_table(moved, same, "xlate", first.saved)
    assert not failed.ok
    assert "global_port: expected == $port (30342), observed 1025" in failed.text()


def test_a_name_saved_from_several_rows_means_one_of_them() -> None:
    save = TableCheck(node="pix", where={"protocol": "udp"}, save={"ports": "global_port"})
    saved = evaluate_table(XLATE, save, "xlate").saved
    assert saved == {"ports": [4500, 30342]}
    assert parse_matcher("== $ports", saved)(30342)
    assert parse_matcher("$ports", saved)(4500)
    assert not parse_matcher("!= $ports", saved)(4500)
    assert parse_matcher("!= $ports", saved)(1025)


def test_a_counter_compares_with_a_saved_number() -> None:
    saved = {"dropped": 4, "ports": [4500, 30342], "name": "pix"}
    assert parse_matcher("> $dropped", saved)(6)
    assert not parse_matcher("> $dropped", saved)(4)
    assert parse_matcher(">= $dropped", saved)(4) and parse_matcher("< $dropped", saved)(3)
    assert parse_matcher("> $dropped", saved).text == "> $dropped (4)"
    with pytest.raises(ValueError, match=r"> \$name: the saved value 'pix' is no number"):
        parse_matcher("> $name", saved)
    with pytest.raises(ValueError, match="no number"):  # several saved rows: no one number
        parse_matcher("> $ports", saved)


def test_an_unknown_saved_name_is_an_error_naming_what_was_saved() -> None:
    with pytest.raises(UnknownSavedValue, match=r"no saved value \$nope \(saved so far: \$a\)"):
        parse_matcher("!= $nope", {"a": 1})


def test_a_failed_check_saves_nothing() -> None:
    check = TableCheck(node="pix", count=5, save={"ports": "global_port"})
    assert evaluate_table(XLATE, check, "xlate").saved == {}


def test_traffic_lists_and_loss_limits_are_for_ping() -> None:
    step = Step.model_validate(
        {"traffic": {"from": ["c1", "c2"], "to": "10.0.0.1", "max-loss": "0%", "seconds": 200}}
    )
    assert step.traffic.source == ["c1", "c2"] and step.traffic.max_loss == "0%"
    with pytest.raises(ValueError, match="only supported for ping"):
        Step.model_validate({"traffic": {"from": ["c1", "c2"], "to": "10.0.0.1", "kind": "tcp"}})
    with pytest.raises(ValueError, match="max-loss applies to ping"):
        Step.model_validate(
            {"traffic": {"from": "c1", "to": "10.0.0.1", "kind": "udp", "max-loss": "1%"}}
        )
    with pytest.raises(ValueError, match="pattern"):
        TableCheck.model_validate({"node": "pix", "save": {"1bad": "global_port"}})


def test_lost_echoes_are_named_as_ranges() -> None:
    from labctl.checks.steps import _ranges

    assert _ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert _ranges([5]) == "5"


class _FakeProbe:
    def __init__(self, xlate, sessions, lan_to_lan=()):
        self.tables = {"xlate": xlate, "sessions": sessions, "lan-to-lan": list(lan_to_lan)}

    def table(self, node, what):
        return self.tables[what]


def _session(user, port, dport=4500, protocol="IPsec/NAT-T"):
    return {
        "username": user,
        "public_ip": "171.69.89.78",
        "protocol": protocol,
        "ipsec": [{"spi_in": "0x1", "udp_source_port": port, "udp_destination_port": dport}],
    }


def _xlate(port, dport=4500):
    return {
        "protocol": "udp",
        "global_ip": "171.69.89.78",
        "global_port": port,
        "remote_port": dport,
    }


def test_sessions_follow_the_translation_of_their_own_destination_port() -> None:
    expectation = Expectation.model_validate(
        {"session-follows-xlate": {"firewall": "pix", "concentrator": "vpn3000"}}
    )
    probe = _FakeProbe(
        [_xlate(4500), _xlate(1025, 10000)],
        [_session("vpnclient1", 4500), _session("vpnclient2", 1025, 10000, "IPsec/UDP")],
    )
    assert evaluate(expectation, probe, "lab").ok
    # The mapping moved to 1026; a session still on 1025 has not followed it.
    probe = _FakeProbe([_xlate(1026)], [_session("vpnclient1", 1025)])
    outcome = evaluate(expectation, probe, "lab")
    assert not outcome.ok
    assert "comes from 171.69.89.78(1025)" in outcome.text()
    assert "171.69.89.78(1026)" in outcome.text()
    # Plain ESP has no port to follow.
    probe = _FakeProbe([_xlate(4500)], [_session("vpnclient1", None, None, "IPsec")])
    assert "not UDP-encapsulated (protocol IPsec)" in evaluate(expectation, probe, "lab").text()


def test_tcp_sessions_follow_their_tcp_translations() -> None:
    expectation = Expectation.model_validate(
        {"session-follows-xlate": {"firewall": "pix", "concentrator": "vpn3000"}}
    )
    tcp_session = {
        "username": "vpnclient1",
        "public_ip": "171.69.89.78",
        "protocol": "IPsec/TCP",
        "ipsec": [{"spi_in": "0x1", "tcp_source_port": 41000, "tcp_destination_port": 10000}],
    }
    tcp_xlate = dict(_xlate(41000, 10000), protocol="tcp")
    probe = _FakeProbe([tcp_xlate, _xlate(4500)], [tcp_session, _session("vpnclient2", 4500)])
    outcome = evaluate(expectation, probe, "lab")
    assert outcome.ok, outcome.text()
    assert "vpnclient1 171.69.89.78(41000)" in outcome.summary
    # a UDP translation with the same numbers is not the TCP session's
    probe = _FakeProbe([_xlate(41000, 10000)], [tcp_session])
    outcome = evaluate(expectation, probe, "lab")
    assert not outcome.ok
    assert "not a global address of the PAT's TCP 10000 translations: none" in outcome.text()


def test_lan_to_lan_sessions_follow_the_translation_too() -> None:
    """A branch behind the PAT is a LAN-to-LAN record (connection name, ip_address)."""
    expectation = Expectation.model_validate(
        {"session-follows-xlate": {"firewall": "pix", "concentrator": "vpn3000"}}
    )
    branch = {
        "connection_name": "branch",
        "ip_address": "171.69.89.78",
        "protocol": "IPsec/NAT-T",
        "ipsec": [{"spi_in": "0x2", "udp_source_port": 1030, "udp_destination_port": 4500}],
    }
    outcome = evaluate(expectation, _FakeProbe([_xlate(1030)], [], [branch]), "lab")
    assert outcome.ok, outcome.text()
    assert "LAN-to-LAN branch 171.69.89.78(1030)" in outcome.summary
    outcome = evaluate(expectation, _FakeProbe([_xlate(1031)], [], [branch]), "lab")
    assert not outcome.ok
    assert "LAN-to-LAN branch: comes from 171.69.89.78(1030)" in outcome.text()


class _FleetProbe:
    """A PAT and a concentrator with `count` NAT-T sessions, each on its own global port."""

    def __init__(self, count: int, moved: int | None = None) -> None:
        self.count, self.moved = count, moved

    def table(self, node: str, what: str) -> list[dict]:
        if what == "xlate":
            return [
                {"protocol": "udp", "remote_port": 4500, "global_ip": "171.69.89.78",
                 "global_port": 1024 + n}
                for n in range(self.count)
            ]  # fmt: skip
        if what == "sessions":
            return [
                {"username": f"vpnclient{n}", "public_ip": "171.69.89.78",
                 "ipsec": [{"udp_source_port": 1024 + n + 5000 * (n == self.moved),
                            "udp_destination_port": 4500}]}
                for n in range(self.count)
            ]  # fmt: skip
        return []

    def ping(self, source: str, to: str, count: int, size: int | None) -> tuple[int, int, str]:
        raise AssertionError("not used")


def test_session_follows_xlate_lists_a_crowd_in_one_line_and_names_the_one_that_moved() -> None:
    expectation = Expectation.model_validate(
        {"session-follows-xlate": {"firewall": "pix", "concentrator": "vpn3000"}}
    )
    outcome = evaluate(expectation, _FleetProbe(1000), "lab")
    assert outcome.ok
    assert outcome.summary.endswith("... and 980 more")
    assert outcome.summary.count("171.69.89.78(") == 20
    small = evaluate(expectation, _FleetProbe(2), "lab")
    assert small.ok and small.summary.endswith(
        "vpnclient0 171.69.89.78(1024), vpnclient1 171.69.89.78(1025)"
    )
    broken = evaluate(expectation, _FleetProbe(1000, moved=17), "lab")
    assert not broken.ok and len(broken.details) == 1
    assert broken.details[0].startswith("session vpnclient17: comes from 171.69.89.78(6041)")
