"""tshark decrypts the seed lab: an independent judge of our IKE and ESP on the real wire.

The concentrator and the clients are both ours and could share one mistake (a key derived
the wrong way on both ends still makes a working tunnel). tshark cannot share it: given
only the keys the concentrator exports (lab-only switch), it must decrypt the Mode-Config
exchange captured on the public link and the tunnelled pings, with every ESP ICV good.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import SEED, RunningLab, bring_up, labctl
from .vpn_support import (
    KEY_TABLES,
    LinkCapture,
    key_dir_listing,
    key_tables,
    topology_variant,
    tshark,
    tshark_rows,
    wireshark_profile,
)

CLIENTS = {"client1": "40.1.1.1", "client2": "40.1.1.2"}
SERVER = "192.168.2.10"
PINGS = 3


def _export_keys_on_concentrator(data: dict) -> None:
    data["topology"]["nodes"]["vpn3000"]["vpn"]["debug"] = {"export-keys": True}
    # client1 too: behind the PAT its own address is not the one on the public link
    client1 = data["topology"]["nodes"]["client1"]
    client1.setdefault("vpn", {})["debug"] = {"export-keys": True}


@pytest.fixture(scope="module")
def keyed_lab(tmp_path_factory) -> Iterator[RunningLab]:
    topology = topology_variant(
        SEED,
        tmp_path_factory.mktemp("topo") / "seed-export-keys.yaml",
        _export_keys_on_concentrator,
    )
    lab = None
    try:
        lab = bring_up(topology, "keys")
        yield lab
    finally:
        if lab is not None:
            labctl("down", lab.name, check=False)


@pytest.fixture(scope="module")
def capture(keyed_lab: RunningLab, tmp_path_factory) -> Path:
    """The public link from before the clients connect until after their pings."""
    for client in CLIENTS:  # they connected at `up`; start over inside the capture
        keyed_lab.exec(client, "vpn", "disconnect")
    pcap = tmp_path_factory.mktemp("capture") / "public.pcap"
    tap = LinkCapture(keyed_lab, "public", pcap).start()
    try:
        for client in CLIENTS:
            keyed_lab.exec(client, "vpn", "connect", "--wait", "--timeout", "30")
        for client in CLIENTS:
            result = keyed_lab.exec(
                client, "ping", "-c", str(PINGS), "-i", "0.2", "-W", "2", SERVER
            )
            assert f"{PINGS} received" in result.stdout, result.stdout
    finally:
        tap.stop()
    return pcap


@pytest.fixture(scope="module")
def profile(keyed_lab: RunningLab, capture: Path) -> Iterator[dict[str, str]]:
    tables = key_tables(keyed_lab, "vpn3000")
    assert all(tables[name].strip() for name in KEY_TABLES), "the concentrator exported no keys"
    with wireshark_profile(tables) as env:
        yield env


def test_tshark_decrypts_the_mode_config_addresses(capture: Path, profile) -> None:
    field = "isakmp.cfg.attr.internal_ip4_address"
    rows = tshark_rows(profile, capture, field, field, "isakmp.cfg.type")
    assigned = {address for row in rows for address in row[0]}
    assert set(CLIENTS.values()) <= assigned, rows
    assert all("2" in row[1] for row in rows), rows  # in ISAKMP_CFG_REPLY messages
    # The same capture without the keys shows no address: the decryption is tshark's own.
    assert not tshark_rows(None, capture, field, "frame.number")


def test_tshark_decrypts_the_tunnelled_pings_with_good_icvs(capture: Path, profile) -> None:
    rows = tshark_rows(
        profile,
        capture,
        "esp && icmp",
        "udp.srcport",
        "udp.dstport",
        "ip.src",
        "ip.dst",
        "icmp.type",
        "esp.icv_good",
    )
    requests: dict[str, int] = {}
    replies: dict[str, int] = {}
    for sport, dport, src, dst, icmp_type, icv_good in rows:
        assert "4500" in sport + dport, f"ESP not on the NAT-T port: {sport} -> {dport}"
        assert icv_good == ["1"], f"ESP ICV not verified good: {icv_good}"
        outer_src, inner_src = src[0], src[-1]
        inner_dst = dst[-1]
        assert len(src) == 2, f"expected outer and inner IP headers, got {src}"
        if icmp_type == ["8"]:
            assert inner_dst == SERVER
            assert outer_src == "171.69.89.78"  # the PIX's global address
            requests[inner_src] = requests.get(inner_src, 0) + 1
        elif icmp_type == ["0"]:
            assert inner_src == SERVER
            replies[inner_dst] = replies.get(inner_dst, 0) + 1
    for address in CLIENTS.values():
        assert requests.get(address, 0) >= PINGS, (address, requests)
        assert replies.get(address, 0) >= PINGS, (address, replies)


def test_a_natted_clients_own_keys_decrypt_its_tunnel_on_the_public_link(
    keyed_lab: RunningLab, capture: Path
) -> None:
    """The client exports its end as "*": its private address never crosses the PAT."""
    tables = key_tables(keyed_lab, "client1")
    assert '"*"' in tables["esp_sa"], tables["esp_sa"].splitlines()[:2]
    with wireshark_profile(tables) as env:
        rows = tshark_rows(env, capture, "esp && icmp", "ip.src", "ip.dst", "esp.icv_good")
    inner = {(src[-1], dst[-1]) for src, dst, _ in rows}
    assert (CLIENTS["client1"], SERVER) in inner and (SERVER, CLIENTS["client1"]) in inner
    assert all(icv == ["1"] for _, _, icv in rows), rows[:3]
    assert CLIENTS["client2"] not in {address for pair in inner for address in pair}


def test_every_esp_packet_authenticates_and_nothing_is_malformed(capture: Path, profile) -> None:
    esp = tshark_rows(profile, capture, "esp", "esp.spi", "esp.icv_good", "esp.icv_bad")
    assert esp, "no ESP on the public link"
    assert all(row[1] == ["1"] and row[2] != ["1"] for row in esp), [
        r for r in esp if r[1] != ["1"]
    ][:5]
    broken = "_ws.malformed || _ws.expert.severity >= error"
    assert not tshark_rows(profile, capture, broken, "frame.number")
    errors = tshark(profile, "-r", str(capture), "-q", "-z", "expert,error")
    assert "Errors" not in errors, errors


def test_inner_addresses_are_the_pool_and_the_private_server(capture: Path, profile) -> None:
    """Every decrypted inner packet is between the pool and the private net, never the
    outer endpoints: proof that tshark read the tunnel's payload, not the wrapper."""
    pool = ipaddress.ip_network("40.1.1.0/24")
    private = ipaddress.ip_network("192.168.2.0/24")
    rows = tshark_rows(profile, capture, "esp && ip.proto == 1", "ip.src", "ip.dst")
    assert rows
    for src, dst in rows:
        inner = {ipaddress.ip_address(src[-1]), ipaddress.ip_address(dst[-1])}
        assert any(a in pool for a in inner) and any(a in private for a in inner), (src, dst)


def test_key_export_is_off_by_default(keyed_lab: RunningLab) -> None:
    """client2 runs the same agent with the switch left at its default: no key files."""
    assert keyed_lab.exec("client2", "vpn", "status", "--json").stdout
    assert key_dir_listing(keyed_lab, "client2") == []
    assert sorted(key_dir_listing(keyed_lab, "client1")) == sorted(KEY_TABLES)
    assert sorted(key_dir_listing(keyed_lab, "vpn3000")) == sorted(KEY_TABLES)


def test_seed_concentrator_exports_no_keys(seed_lab: RunningLab) -> None:
    seed_lab.exec("client1", "vpn", "connect", "--wait", "--timeout", "30")
    assert key_dir_listing(seed_lab, "vpn3000") == []
    log = seed_lab.exec("vpn3000", "vpn", "log", "-n", "200").stdout
    assert "LAB ONLY" not in log
