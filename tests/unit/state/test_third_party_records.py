"""strongSwan's and vpnc's state as the records our agents publish, from output captured
on a lab (tests/unit/state/data/, topologies/interop-strongswan-vpnc.yaml)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

from labctl.agent.records import ClientStatus, IkeSaRecord, IpsecSaRecord, SessionRecord
from labctl.checks.evaluate import evaluate_table
from labctl.state.swanctl import client_status, gateway_sessions, parse_list_sas
from labctl.state.vpnc import parse_state, vpnc_status
from labctl.topology.checks_model import TableCheck

DATA = Path(__file__).parent / "data"
EXTRA = {"implementation", "esp", "unreported"}


def names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def gateway() -> list[dict]:
    raw = (DATA / "swanctl-gateway-list-sas.raw").read_text()
    return gateway_sessions(parse_list_sas(raw), "libipsec")


def test_raw_list_sas_parses_nested_sections_and_lists() -> None:
    (sa,) = parse_list_sas((DATA / "swanctl-gateway-list-sas.raw").read_text())
    assert sa["name"] == "group-swangroup" and sa["remote-xauth-id"] == "vpnclient1"
    assert sa["remote-vips"] == ["50.1.1.1"]
    (child,) = sa["child-sas"].values()
    assert child["encap"] == "yes" and child["local-ts"] == ["192.168.3.0/24"]


def test_gateway_sessions_have_our_record_shape() -> None:
    (session,) = gateway()
    assert set(session) == names(SessionRecord) | EXTRA
    assert set(session["ike"]) == names(IkeSaRecord)
    assert set(session["ipsec"][0]) == names(IpsecSaRecord)
    assert session["username"] == "vpnclient1" and session["group"] == "swangroup"
    assert session["assigned_ip"] == "50.1.1.1"
    assert (session["public_ip"], session["public_port"]) == ("171.69.89.78", 4500)
    assert session["protocol"] == "IPsec/NAT-T" and session["encryption"] == "3DES-168"
    assert session["ike"]["hashing"] == "MD5"
    assert session["ike"]["dh_group"] == "Group 2 (1024-bit)"
    assert session["bytes_rx"] == 1008 and session["ipsec"][0]["packets_tx"] == 12
    assert session["esp"] == "libipsec" and session["implementation"] == "strongswan"
    # what strongSwan does not report is null and listed
    assert session["client_type"] is None and "client_type" in session["unreported"]
    assert session["ipsec"][0]["dropped"] is None and "ipsec.dropped" in session["unreported"]


def test_client_status_has_our_record_shape() -> None:
    raw = (DATA / "swanctl-client-list-sas.raw").read_text()
    vpn = SimpleNamespace(host="172.16.172.50", group="ciscovpn", user="swanuser")
    record = client_status(parse_list_sas(raw), vpn, "libipsec")
    assert set(record) == names(ClientStatus) | EXTRA
    assert record["state"] == "connected" and record["assigned_ip"] == "40.1.1.2"
    assert record["local_behind_nat"] is True
    assert record["transparent_tunneling"] == "Active on UDP port 4500"
    assert record["encryption"] == "AES-128" and record["authentication"] == "SHA1"
    assert record["split_networks"] == ["192.168.2.0/24"]


def test_no_sa_is_disconnected() -> None:
    vpn = SimpleNamespace(host="172.16.172.50", group="g", user="u")
    record = client_status(parse_list_sas("list-sas reply {}\n"), vpn, "kernel")
    assert record["state"] == "disconnected" and record["assigned_ip"] is None


def test_vpnc_status_has_our_record_shape() -> None:
    state = parse_state((DATA / "vpnc-state.txt").read_text())
    vpn = SimpleNamespace(host="172.16.172.50", group="ciscovpn", user="vpncuser")
    record = vpnc_status(state, vpn)
    assert set(record) == names(ClientStatus) | EXTRA
    assert record["state"] == "connected" and record["assigned_ip"] == "40.1.1.1"
    assert record["split_networks"] == ["192.168.2.0/24"]
    assert record["packets_encrypted"] == 3 and record["bytes_received"] == 252
    assert record["spi_in"] is None and "spi_in" in record["unreported"]
    stopped = vpnc_status({}, vpn)
    assert stopped["state"] == "disconnected" and stopped["assigned_ip"] is None


def test_an_expectation_on_an_unreported_field_fails_saying_so() -> None:
    check = TableCheck(node="swangw", all={"client_type": "WinNT"})
    outcome = evaluate_table(gateway(), check, "sessions on swangw")
    assert not outcome.ok
    assert "client_type: strongswan does not report this field" in outcome.text()


def test_an_expectation_on_a_nested_unreported_field_fails_too() -> None:
    check = TableCheck(node="swangw", all={"ipsec.0.dropped": 0})
    outcome = evaluate_table(gateway(), check, "sessions on swangw")
    assert not outcome.ok and "ipsec.0.dropped: strongswan does not report" in outcome.text()


def test_expectations_on_reported_fields_pass() -> None:
    check = TableCheck(
        node="swangw", count=1, all={"protocol": "IPsec/NAT-T", "ike.hashing": "MD5"}
    )
    assert evaluate_table(gateway(), check, "sessions on swangw").ok


def test_a_session_without_an_installed_child_sa_has_no_protocol_yet() -> None:
    raw = (
        (DATA / "swanctl-gateway-list-sas.raw")
        .read_text()
        .replace("state=INSTALLED", "state=INSTALLING")
    )
    (session,) = gateway_sessions(parse_list_sas(raw), "libipsec")
    assert session["protocol"] is None and session["ipsec"] == []


def _mixed_rows() -> list[dict]:
    """Our record (reports everything) next to strongSwan's (no rekey interval)."""
    (swan,) = gateway()
    ours = {**swan, "implementation": "ours", "unreported": [], "username": "ours"}
    ours["ike"] = {**swan["ike"], "rekey_interval": 75}
    return [ours, swan]


def test_if_reported_fields_are_checked_where_reported_and_skipped_where_not() -> None:
    check = TableCheck(
        node="gw", count=2, all={"ike.rekey_interval": 75}, if_reported=["ike.rekey_interval"]
    )
    outcome = evaluate_table(_mixed_rows(), check, "sessions on gw")
    assert outcome.ok, outcome.text()
    assert "not checked where unreported: ike.rekey_interval (strongswan)" in outcome.summary


def test_if_reported_still_fails_a_wrong_value_where_it_is_reported() -> None:
    check = TableCheck(
        node="gw", all={"ike.rekey_interval": 60}, if_reported=["ike.rekey_interval"]
    )
    outcome = evaluate_table(_mixed_rows(), check, "sessions on gw")
    assert not outcome.ok
    assert "ike.rekey_interval: expected" in outcome.text() and "observed 75" in outcome.text()


def test_if_reported_leaves_the_other_fields_mandatory() -> None:
    check = TableCheck(
        node="gw",
        all={"ike.rekey_interval": 75, "client_type": "WinNT"},
        if_reported=["ike.rekey_interval"],
    )
    outcome = evaluate_table(_mixed_rows(), check, "sessions on gw")
    assert not outcome.ok and "client_type: strongswan does not report" in outcome.text()


def test_a_strongswan_session_reports_the_lifetime_charon_holds_its_child_to() -> None:
    (session,) = gateway()
    # install-time=132 + life-time=28668 in the captured output
    assert session["ipsec"][0]["rekey_interval"] == 28800
    assert "ipsec.rekey_interval" not in session["unreported"]
    assert "ike.rekey_interval" in session["unreported"]
