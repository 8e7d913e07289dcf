"""Matchers and table expectations against recorded rows (no lab needed)."""

from __future__ import annotations

import pytest

from labctl.checks.evaluate import evaluate_table, parse_ping
from labctl.checks.matchers import parse_matcher
from labctl.topology.checks_model import Expectation, Step, TableCheck

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


class RecordedProbe:
    def __init__(self, tables: dict[str, list[dict]]) -> None:
        self.tables = tables

    def table(self, node: str, what: str) -> list[dict]:
        return self.tables[what]

    def ping(self, source, to, count, size):  # pragma: no cover - not used here
        raise AssertionError


def test_session_follows_xlate_knows_tcp_sessions() -> None:
    from labctl.checks.evaluate import evaluate

    xlate = [
        {"protocol": "tcp", "global_port": 41000, "remote_port": 10000},
        {"protocol": "tcp", "global_port": 41001, "remote_port": 10000},
        {"protocol": "udp", "global_port": 4500, "remote_port": 4500},
    ]
    sessions = [
        {"username": "u1", "ipsec": [{"tcp_source_port": 41000, "tcp_destination_port": 10000}]},
        {"username": "u2", "ipsec": [{"udp_source_port": 4500, "udp_destination_port": 4500}]},
    ]
    check = Expectation.model_validate(
        {"session-follows-xlate": {"firewall": "pix", "concentrator": "vpn3000"}}
    )
    probe = RecordedProbe({"xlate": xlate, "sessions": sessions})
    outcome = evaluate(check, probe, "lab")
    assert outcome.ok, outcome.text()
    assert outcome.summary.endswith("ports [4500, 41000]")
    sessions[0]["ipsec"][0]["tcp_source_port"] = 41002  # no such TCP translation
    outcome = evaluate(check, RecordedProbe({"xlate": xlate, "sessions": sessions}), "lab")
    assert not outcome.ok
    assert "TCP source port 41002 is not a global port of the PAT's TCP 10000" in outcome.text()
    assert "[41000, 41001]" in outcome.text()
