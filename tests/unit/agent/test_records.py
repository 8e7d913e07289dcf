"""Address pool, status records and their tables."""

from __future__ import annotations

import json

from labctl.agent.control import ControlError, ControlServer
from labctl.agent.records import (
    ClientStatus,
    IkeSaRecord,
    IpsecSaRecord,
    LanToLanRecord,
    SessionRecord,
    SessionSummary,
)
from labctl.agent.tables import render_client_status, render_sessions


def _session() -> SessionRecord:
    return SessionRecord(
        username="vpnclient1",
        group="ciscovpn",
        assigned_ip="40.1.1.1",
        public_ip="171.69.89.78",
        public_port=1029,
        protocol="IPsec/NAT-T",
        encryption="3DES-168",
        login_time=1000.0,
        client_type="WinNT",
        client_version="3.6.1 (Rel)",
        bytes_tx=768,
        bytes_rx=768,
        ike=IkeSaRecord(
            1,
            "3DES-168",
            "MD5",
            "Group 2 (1024-bit)",
            "Pre-Shared Keys (XAUTH)",
            "Aggressive",
            86400,
            "b69224f4960a2d9e",
            "76fef6551f9d49f3",
            1000.0,
        ),
        ipsec=[
            IpsecSaRecord(
                2,
                "40.1.1.1",
                "0.0.0.0/255.255.255.255",
                "3DES-168",
                "MD5",
                "Tunnel",
                1029,
                4500,
                28800,
                "0x5beebb4c",
                "0x02cc3526",
                bytes_rx=256,
                bytes_tx=256,
            )
        ],
    )


def test_session_record_round_trips_through_json() -> None:
    record = _session()
    again = SessionRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again == record


def test_sessions_table_shows_the_seed_columns() -> None:
    summary = SessionSummary(0, 2, 0, 2, 100, 7)
    text = render_sessions([_session()], summary, now=1000.0 + 244, detail=True)
    assert "vpnclient1" in text and "40.1.1.1" in text and "171.69.89.78" in text
    assert "IPsec/NAT-T" in text and "3DES-168" in text and "0:04:04" in text
    assert "UDP Source Port       1029" in text and "UDP Destination Port  4500" in text
    assert summary.to_json()["total_active"] == 2


def test_client_status_says_who_is_behind_nat() -> None:
    status = ClientStatus(
        state="connected",
        server="172.16.172.50",
        group="ciscovpn",
        user="vpnclient1",
        local_behind_nat=True,
        remote_behind_nat=False,
    )
    text = render_client_status(status, now=0.0)
    assert "Remote end is NOT behind a NAT device" in text
    assert "This   end IS behind a NAT device" in text


def test_control_dispatch_refuses_unknown_commands_and_reports_errors() -> None:
    def fail(args):
        raise ControlError("no such user 'x'")

    server = ControlServer.__new__(ControlServer)
    server.handlers = {"ping": lambda args: {"pong": args.get("n")}, "logout": fail}
    assert server.dispatch(b'{"cmd": "ping", "args": {"n": 3}}') == {
        "ok": True,
        "result": {"pong": 3},
    }
    assert server.dispatch(b'{"cmd": "logout"}') == {"ok": False, "error": "no such user 'x'"}
    assert not server.dispatch(b"garbage")["ok"]
    assert not server.dispatch(b'{"cmd": "nope"}')["ok"]


def test_tcp_sessions_show_tcp_ports_in_records_and_tables() -> None:
    from dataclasses import replace

    record = _session()
    record.protocol = "IPsec/TCP"
    record.ipsec = [
        replace(
            record.ipsec[0],
            udp_source_port=None,
            udp_destination_port=None,
            tcp_source_port=41000,
            tcp_destination_port=10000,
        )
    ]
    again = SessionRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again == record and again.ipsec[0].tcp_source_port == 41000
    text = render_sessions([record], SessionSummary(0, 1, 0, 1, 100, 1), 1000.0, detail=True)
    assert "IPSec/TCP Session" in text
    assert "TCP Source Port       41000" in text and "TCP Destination Port  10000" in text
    assert "UDP Source Port" not in text
    status = ClientStatus("connected", "172.16.172.50", "g", "u", transport="TCP")
    status.local_port, status.remote_port = 41000, 10000
    assert "TCP ports:             local 41000 -> remote 10000" in render_client_status(status, 0)


def _lan_to_lan() -> LanToLanRecord:
    seed = _session()
    return LanToLanRecord(
        connection_name="branch",
        ip_address="171.69.89.78",
        public_port=1029,
        protocol="IPsec/NAT-T",
        encryption="3DES-168",
        login_time=1000.0,
        bytes_tx=1200,
        bytes_rx=840,
        local_networks=["192.168.2.0/24"],
        remote_networks=["10.20.0.0/24"],
        ike=seed.ike,
        ipsec=seed.ipsec,
    )


def test_lan_to_lan_record_round_trips_through_json() -> None:
    record = _lan_to_lan()
    assert LanToLanRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_lan_to_lan_table_counts_and_columns() -> None:
    summary = SessionSummary(1, 1, 0, 2, 100, 2)
    text = render_sessions([_session()], summary, 1065.0, detail=True, lan_to_lan=[_lan_to_lan()])
    lines = text.splitlines()
    assert lines[3].split()[:4] == ["1", "1", "0", "2"]  # LAN-to-LAN, remote, management, total
    table = lines[lines.index("LAN-to-LAN Sessions") + 2 :]
    assert table[0].split("  ")[0] == "Connection Name"
    for column in ("IP Address", "Protocol", "Encryption", "Login Time", "Duration", "Bytes Tx"):
        assert column in table[0]
    assert table[1].split()[:4] == ["branch", "171.69.89.78", "IPsec/NAT-T", "3DES-168"]
    assert table[1].split()[-3:] == ["0:01:05", "1200", "840"]
    # the LAN-to-LAN table comes before the remote-access one, as on a VPN 3000
    assert text.index("LAN-to-LAN Sessions") < text.index("Remote Access Sessions")
    assert "LAN-to-LAN detail: branch (171.69.89.78:1029; local 192.168.2.0/24" in text
    assert "UDP Source Port       1029" in text
    empty = render_sessions([], SessionSummary(0, 0, 0, 0, 100, 0), 0.0)
    assert "No LAN-to-LAN Sessions" in empty
