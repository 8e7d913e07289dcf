"""One table drives Mode-Config in both directions: every ModeConfig setting has exactly one
row, and what a row encodes decodes back to the same setting."""

from __future__ import annotations

from dataclasses import fields
from ipaddress import IPv4Address, IPv4Network

from labctl.ike.modecfg import FIELDS, ModeConfig

FULL = ModeConfig(
    address=IPv4Address("40.1.1.1"),
    netmask=IPv4Address("255.255.255.0"),
    dns=(IPv4Address("192.168.2.53"), IPv4Address("192.168.2.54")),
    nbns=(IPv4Address("192.168.2.55"),),
    address_expiry=86400,
    app_version="Cisco Systems, Inc./VPN 3000 Concentrator Version 4.0.1.B",
    banner="authorised users only",
    save_password=False,
    default_domain="lab.example",
    split_dns=("lab.example", "corp.example"),
    split_include=(IPv4Network("192.168.2.0/24"), IPv4Network("10.20.0.0/16")),
    local_lan=(IPv4Network("192.168.1.0/24"),),
    pfs=True,
    udp_encap_port=10000,
    backup_servers=("172.16.172.51", "172.16.172.52"),
    ddns_hostname="client1",
    fw_type=bytes.fromhex("800100018002000180030002"),
)


def test_every_setting_has_exactly_one_row() -> None:
    settings = {f.name for f in fields(ModeConfig)} - {"unknown"}
    rows = [row.name for row in FIELDS]
    assert sorted(rows) == sorted(settings)
    assert len({row.attr for row in FIELDS}) == len(FIELDS)


def test_every_row_round_trips_and_rows_set_the_order() -> None:
    attrs = FULL.to_attributes()
    assert ModeConfig.from_attributes(attrs) == FULL
    order = [row.attr for row in FIELDS]
    positions = [order.index(a.type) for a in attrs]
    assert positions == sorted(positions)
    assert [a.type for a in attrs].count(3) == 2  # one INTERNAL_IP4_DNS per server


def test_a_reply_carries_only_what_was_asked_for() -> None:
    asked = {1, 3}  # address and DNS
    got = {a.type for a in FULL.to_attributes(asked)}
    assert got == asked  # no APPLICATION_VERSION / UDP port unasked (strongSwan logs those)
    assert {a.type for a in FULL.to_attributes(set())} == set()
    assert {a.type for a in FULL.to_attributes()} == {row.attr for row in FIELDS}  # a SET
