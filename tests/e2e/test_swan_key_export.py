"""strongSwan's keys exported for tshark like ours (issue 10): the lab-only
`vpn.debug.export-keys` on a strongSwan client and a strongSwan concentrator, and tshark
decrypts a capture of the public link with ONLY their keys -- the IKE phase-1 encrypted
messages (Mode-Config, quick modes) and the ESP of both tunnels, rekeys included.

The lab is the interop topology cut to two tunnels, each with one strongSwan end:
  swanc (strongSwan client, AES-256/SHA1, behind the PAT) -> vpn3000 (ours)
  client1 (our client, 3DES/MD5, behind the PAT)          -> swangw (strongSwan concentrator)
Both ciphers need Ka expanded from SKEYID_e. Our nodes export nothing here, so every key
tshark gets is charon's, collected by `labctl capture --keys` (the user's path).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT, RunningLab, bring_up, labctl
from .vpn_support import key_dir_listing, topology_variant, tshark_rows

INTEROP = ROOT / "topologies" / "interop-strongswan-vpnc.yaml"
KEYS_LOG = "/var/log/labctl/keys/charon-keys.log"
NORMAL_LOG = "/var/log/labctl/charon.log"
# client -> (the server it pings, its pool address)
TUNNELS = {
    "swanc": ("192.168.2.10", "40.1.1.1"),
    "client1": ("192.168.3.10", "50.1.1.1"),
}
PINGS = 3


def _two_tunnels(data: dict) -> None:
    nodes = data["topology"]["nodes"]
    for gone in ("vpncc", "client2", "vpncc2", "swanc2"):
        del nodes[gone]
    data["topology"]["links"][0]["endpoints"] = ["pix:inside", "client1:eth1", "swanc:eth1"]
    aes256 = {"ike-proposals": ["aes256-sha1-modp1024"], "ipsec-proposals": ["aes256-sha1"]}
    nodes["swanc"]["vpn"].update(aes256)
    nodes["vpn3000"]["vpn"]["groups"]["ciscovpn"].update(aes256)
    users = nodes["vpn3000"]["vpn"]["users"]
    nodes["vpn3000"]["vpn"]["users"] = {"swanuser": users["swanuser"]}
    users = nodes["swangw"]["vpn"]["users"]
    nodes["swangw"]["vpn"]["users"] = {"vpnclient1": users["vpnclient1"]}
    for node in ("swanc", "swangw"):
        nodes[node]["vpn"]["debug"] = {"export-keys": True}
    data.pop("expect", None)  # the tests below check what they need


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[RunningLab]:
    topology = topology_variant(
        INTEROP, tmp_path_factory.mktemp("topo") / "swan-key-export.yaml", _two_tunnels
    )
    running = None
    try:
        running = bring_up(topology, "swankeys")
        yield running
    finally:
        if running is not None:
            labctl("down", running.name, check=False)


def _ping(lab: RunningLab, client: str) -> None:
    server = TUNNELS[client][0]
    result = lab.exec(client, "ping", "-c", str(PINGS), "-i", "0.2", "-W", "2", server)
    assert f"{PINGS} received" in result.stdout, result.stdout


@pytest.fixture(scope="module")
def captured(lab: RunningLab, tmp_path_factory) -> tuple[Path, Path]:
    """The public link and the keys `labctl capture --keys` collected: both clients connect
    afresh inside it, ping, the strongSwan client rekeys its child, the strongSwan
    concentrator rekeys its child toward our client, and both ping again."""
    for client in TUNNELS:
        lab.exec(client, "vpn" if client == "client1" else "labctl-swan", "disconnect")
    work = tmp_path_factory.mktemp("capture")
    keys, pcap = work / "keys", work / "public.pcap"
    command = [sys.executable, "-m", "labctl", "capture", "--lab", lab.name, "public"]
    command += ["-w", str(pcap), "--keys", str(keys), "--seconds", "180"]
    capture = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert capture.stderr is not None
        assert "capturing link public" in capture.stderr.readline()
        lab.exec("swanc", "labctl-swan", "connect", "labctl", "60")
        lab.exec("client1", "vpn", "connect", "--wait", "--timeout", "60")
        for client in TUNNELS:
            _ping(lab, client)
        assert (
            "rekey completed" in lab.exec("swanc", "swanctl", "--rekey", "--child", "labctl").stdout
        )
        rekey = lab.exec("swangw", "swanctl", "--rekey", "--child", "group-swangroup")
        assert "rekey completed" in rekey.stdout
        time.sleep(2)  # the old SAs go; the new carry the next pings
        for client in TUNNELS:
            _ping(lab, client)
        # no wait for the 2 s key refresh: capture reads the keys once more when it stops
    finally:
        capture.send_signal(signal.SIGINT)
        try:
            capture.wait(timeout=20)
        finally:
            if capture.poll() is None:
                capture.kill()
                capture.wait(timeout=10)
    assert capture.returncode == 0
    return pcap, keys


def _env(keys: Path) -> dict[str, str]:
    return {**os.environ, "WIRESHARK_CONFIG_DIR": str(keys)}


def test_only_the_strongswan_ends_export_keys(lab: RunningLab, captured) -> None:
    _, keys = captured
    for node in ("vpn3000", "client1"):
        assert key_dir_listing(lab, node) == [], node
    for node in ("swanc", "swangw"):
        assert key_dir_listing(lab, node) == ["charon-keys.log"], node
    tables = {name: (keys / name).read_text() for name in ("ikev1_decryption_table", "esp_sa")}
    # two phase-1 SAs (one per tunnel: the ones made inside the capture and at `up`)
    assert len(tables["ikev1_decryption_table"].splitlines()) >= 2
    assert len(tables["esp_sa"].splitlines()) >= 8  # two children per tunnel, both ways


def test_tshark_decrypts_the_phase1_encrypted_messages(captured) -> None:
    pcap, keys = captured
    encrypted = tshark_rows(
        _env(keys), pcap, "isakmp.flag_e == 1", "isakmp.ispi", "isakmp.hash", "isakmp.exchangetype"
    )
    assert len(encrypted) >= 12, encrypted
    # every encrypted IKEv1 message starts with a HASH payload: seen only when decrypted
    undecrypted = [row for row in encrypted if not row[1]]
    assert undecrypted == [], undecrypted
    by_exchange = {(row[0][0], x) for row in encrypted for x in row[2]}
    for exchange in ("6", "32"):  # Transaction (Mode-Config, XAUTH), Quick Mode
        cookies = {cookie for cookie, x in by_exchange if x == exchange}
        assert len(cookies) >= 2, (exchange, by_exchange)  # both tunnels
    field = "isakmp.cfg.attr.internal_ip4_address"
    assigned = {a for row in tshark_rows(_env(keys), pcap, field, field) for a in row[0]}
    assert {pool for _, pool in TUNNELS.values()} <= assigned, assigned
    # the same capture without keys shows none: the decryption is tshark's own
    assert not tshark_rows(None, pcap, field, "frame.number")


def test_tshark_decrypts_the_esp_of_both_tunnels_across_the_rekeys(captured) -> None:
    pcap, keys = captured
    rows = tshark_rows(
        _env(keys), pcap, "esp", "esp.spi", "esp.icv_good", "ip.src", "ip.dst", "icmp.type"
    )
    assert rows, "no ESP on the public link"
    bad = [row for row in rows if row[1] != ["1"] or not row[4]]
    assert bad == [], bad[:5]  # every ESP packet authenticated and its ICMP decrypted
    echoes: dict[tuple[str, str], set[str]] = {}
    for spi, _, src, dst, icmp_type in rows:
        inner = (src[-1], dst[-1])
        echoes.setdefault(inner, set()).add(spi[0])
        assert icmp_type[0] in ("0", "8")
    for server, pool in TUNNELS.values():
        # requests and replies, each on two SPIs (before and after the rekey)
        assert len(echoes.get((pool, server), set())) == 2, echoes
        assert len(echoes.get((server, pool), set())) == 2, echoes
    broken = "_ws.malformed || _ws.expert.severity >= error"
    assert not tshark_rows(_env(keys), pcap, broken, "frame.number")


def _key_hexes(keys: Path) -> list[str]:
    """Every key in the exported tables, lower-case hex."""
    found = [
        line.split(",")[1] for line in (keys / "ikev1_decryption_table").read_text().splitlines()
    ]
    for line in (keys / "esp_sa").read_text().splitlines():
        fields = [f.strip('"') for f in line.split('","')]
        found += [fields[5][2:], fields[7][2:]]
    return found


def test_keys_file_is_root_only_and_no_key_is_anywhere_else(lab: RunningLab, captured) -> None:
    _, keys = captured
    hexes = _key_hexes(keys)
    assert len(hexes) >= 10
    for node in ("swanc", "swangw"):
        modes = lab.exec(node, "stat", "-c", "%a %n", KEYS_LOG, "/var/log/labctl/keys").stdout
        assert modes.split() == ["600", KEYS_LOG, "700", "/var/log/labctl/keys"], modes
        # the key log holds them (as charon's dumps) ...
        dumps = lab.exec(node, "cat", KEYS_LOG).stdout
        assert " bytes @ " in dumps
        # ... the normal log and what `show` prints do not
        normal = lab.exec(node, "cat", NORMAL_LOG).stdout
        assert normal.strip() and " bytes @ " not in normal
        table = "sessions" if node == "swangw" else "status"
        shown = labctl("show", "--lab", lab.name, node, table, "-v").stdout
        shown += labctl("show", "--lab", lab.name, node, table, "--json").stdout
        shown += labctl("show", "--lab", lab.name, node, "log", "-v").stdout
        for text in (normal, shown):
            flat = re.sub(r"[^0-9a-f]", "", text.lower())
            for key in hexes:
                assert key[:16] not in flat, f"{node}: a key appears outside the key log"
