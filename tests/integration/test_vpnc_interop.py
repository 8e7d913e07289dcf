"""Independent proof: a real vpnc (Debian package) against our responder, over real UDP in
network namespaces, through an nftables masquerade -- the seed lab in miniature.

Each scenario fixture builds its own namespaces (random suffix), runs tcpdump in the server
namespace, our minimal responder (tests/integration/ike_support/responder.py) and vpnc with a
script that only records its environment, connects, pushes encrypted pings through the
tunnel, disconnects and tears everything down.  The tests then read vpnc's own debug output,
the responder's events and the capture (through tshark).

What vpnc proves and what it cannot: vpnc verifies HASH_R and NAT-D itself, but its phase-2
hash check is compiled out -- so the phase-2 hashes are compared from vpnc's debug dump of its
expected values, and the ESP keys by a ping that vpnc must decrypt and answer.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from labctl.ike import keys
from labctl.ike.constants import P1Hash
from labctl.ike.crypto import CipherSpec
from tests.integration.ike_support import vpnclog
from tests.integration.ike_support.netlab import NAT_OUTSIDE, NetLab, missing_prerequisites
from tests.integration.ike_support.session import InteropSession, tshark

pytestmark = pytest.mark.integration

WEAK = {"Enable weak encryption": "", "Enable weak authentication": ""}


@pytest.fixture(scope="module", autouse=True)
def prerequisites() -> None:
    problems = missing_prerequisites()
    if problems:
        pytest.fail("vpnc interop tests cannot run: " + "; ".join(problems))


def _run_scenario(
    tmp: Path,
    clients: list[tuple[str, str, str]],
    responder_cfg: dict,
    vpnc_extra: dict | None = None,
    ping: bool = True,
    linger: float = 0,
) -> dict:
    """Connect every (node, user, password), ping through each tunnel, disconnect."""
    lab = NetLab(clients=max(1, len(clients))).create()
    session = InteropSession(lab, tmp, responder_cfg)
    result: dict = {"session": session, "clients": [], "work": tmp}
    try:
        session.start()
        started = [
            session.start_vpnc(node, user, pw, extra=vpnc_extra) for node, user, pw in clients
        ]
        for c in started:
            session.wait_connected(c)
            session.configure_tunnel(c)
        session.wait_event("ChildSaEstablished", count=len(started))
        if ping:
            session.wait_event("EspEchoReply", count=len(started), timeout=30)
        result["conntrack"] = lab.conntrack_udp()
        time.sleep(linger)  # idle time, e.g. for dead peer detection to kick in
        for c in started:
            result.setdefault("exit_codes", []).append(session.stop_client(c))
        session.wait_event("Phase1Deleted", count=len(started), timeout=15)
        result["clients"] = started
    finally:
        session.stop()
        lab.close()
    result["events"] = session.events()
    result["keys"] = session.keys()
    return result


def _events(result: dict, kind: str) -> list[dict]:
    return [e for e in result["events"] if e["type"] == kind]


# ---------------------------------------------------------------------------------------------
# Scenario A: vpnc defaults (it offers AES-256 first), one client behind the PAT


@pytest.fixture(scope="module")
def aes(tmp_path_factory) -> dict:
    return _run_scenario(
        tmp_path_factory.mktemp("aes"),
        [("client1", "vpnclient1", "pw-one")],
        {"dpd_idle": 2.0},
        vpnc_extra={"DPD idle timeout (our side)": "10"},
        linger=4.0,
    )


def test_aes_vpnc_completes_with_natt(aes) -> None:
    (client,) = aes["clients"]
    log = client.log_text()
    assert "IKE SA selected psk+xauth-aes256-sha1" in log
    assert "peer is NAT-T capable (RFC 3947)" in log
    assert "NAT status: this end behind NAT? YES -- remote end behind NAT? no" in log
    assert "got address 40.1.1.1" in log
    assert "IPSEC SA selected aes256-sha1" in log
    assert client.env["INTERNAL_IP4_ADDRESS"] == "40.1.1.1"
    (p1,) = _events(aes, "Phase1Established")
    assert p1["peer"][0] == NAT_OUTSIDE and p1["peer"][1] == 4500
    assert p1["nat"]["remote_behind_nat"] is True and p1["nat"]["local_behind_nat"] is False
    assert p1["nat"]["natt_version"] == "rfc3947" and p1["nat"]["floated"] is True
    assert p1["algorithms"]["encryption"] == "aes256-cbc"
    (mc,) = _events(aes, "ModeConfigApplied")
    assert mc["config"]["address"] == "40.1.1.1"
    assert mc["peer_app_version"].startswith("Cisco Systems VPN Client")
    (child,) = _events(aes, "ChildSaEstablished")
    assert child["encapsulation"] == "udp-tunnel"
    assert child["remote_ts"] == "40.1.1.1/32" and child["local_ts"] == "0.0.0.0/0"
    assert child["lifetime_seconds"] == 28800


def test_aes_phase2_hashes_agree_with_vpnc(aes) -> None:
    (client,) = aes["clients"]
    checks = vpnclog.hash_checks(client.log_text())
    # vpnc checks informationals that arrive during quick mode with the quick-mode nonce
    # mixed in (its own quirk), so only transaction and quick-mode hashes are comparable.
    comparable = [c for c in checks if c.exchange_type in (6, 32)]
    assert len(comparable) >= 4, checks  # XAUTH REQUEST, SET, Mode-Config REPLY, QM2
    assert all(c.ok for c in comparable), [c for c in comparable if not c.ok]


def _vpnc_vector(client, capture: Path, psk: bytes) -> dict:
    """Inputs and outputs of vpnc's phase-1 key derivation, as vpnc printed them, plus the
    responder nonce and KE as tshark decoded them from the wire."""
    log = client.log_text()
    icookie = vpnclog.first(log, "i_cookie")
    rows = tshark(
        "-r",
        str(capture),
        "-Y",
        "isakmp.exchangetype==4",
        "-T",
        "fields",
        "-e",
        "isakmp.ispi",
        "-e",
        "isakmp.rspi",
        "-e",
        "isakmp.nonce",
        "-e",
        "isakmp.key_exchange.data",
    ).splitlines()
    msg2 = [
        r.split("\t")
        for r in rows
        if r.startswith(icookie.hex()) and r.split("\t")[2] and r.split("\t")[1] != "0" * 16
    ]
    _ispi, rspi, nr, gxr = msg2[0]
    return {
        "source": "vpnc 0.5.3 --debug 99 against labctl's responder; Nr/g^xr from the capture",
        "psk": psk.decode(),
        "icookie": icookie.hex(),
        "rcookie": rspi,
        "ni": vpnclog.first(log, "i_nonce").hex(),
        "nr": nr,
        "gxi": vpnclog.first(log, "dh_public").hex(),
        "gxr": gxr,
        "gxy": vpnclog.first(log, "dh_shared_secret").hex(),
        "skeyid": vpnclog.first(log, "skeyid").hex(),
        "skeyid_d": vpnclog.first(log, "skeyid_d").hex(),
        "skeyid_a": vpnclog.first(log, "skeyid_a").hex(),
        "skeyid_e": vpnclog.first(log, "skeyid_e").hex(),
        "enc_key": vpnclog.first(log, "enc-key").hex(),
        "iv0": vpnclog.first(log, "current_iv").hex(),
        "p1_last": vpnclog.first(log, "initial_iv").hex(),
    }


def check_vector(v: dict, hash_id: int, block: int) -> None:
    b = {k: bytes.fromhex(v[k]) for k in v if k not in ("source", "psk", "hash", "cipher")}
    skeyid = keys.skeyid_psk(hash_id, v["psk"].encode(), b["ni"], b["nr"])
    assert skeyid == b["skeyid"]
    derived = keys.derive_phase1(
        hash_id,
        CipherSpec("x", block, len(b["enc_key"])),
        skeyid,
        b["gxy"],
        b["icookie"],
        b["rcookie"],
    )
    assert derived.skeyid_d == b["skeyid_d"]
    assert derived.skeyid_a == b["skeyid_a"]
    assert derived.skeyid_e == b["skeyid_e"]
    assert derived.enc_key == b["enc_key"]
    assert keys.phase1_iv(hash_id, b["gxi"], b["gxr"], block) == b["iv0"]


def test_aes_phase1_keys_match_vpnc(aes) -> None:
    (client,) = aes["clients"]
    vector = _vpnc_vector(client, aes["session"].capture, b"labsecret")
    check_vector(vector, P1Hash.SHA1, 16)
    (p1,) = _events(aes, "Phase1Established")
    assert p1["enc_key"] == vector["enc_key"]  # the engine used the same key as vpnc
    (aes["work"] / "vector.json").write_text(json.dumps(vector, indent=1))


def test_aes_esp_keys_work_in_both_directions(aes) -> None:
    replies = _events(aes, "EspEchoReply")
    assert replies and replies[0]["src"] == "40.1.1.1" and replies[0]["dst"] == "192.168.2.251"
    assert not _events(aes, "EspError")


def test_aes_dpd_both_ways(aes) -> None:
    (client,) = aes["clients"]
    log = client.log_text()  # complete: vpnc has exited
    assert "got r-u-there ack" in log, "vpnc never saw our R-U-THERE-ACK"
    stopped = _events(aes, "Stopped")[-1]
    assert stopped["stats"].get("dpd_acked", 0) >= 1  # we answered vpnc
    assert stopped["stats"].get("dpd_sent", 0) >= 1  # we asked vpnc
    assert not _events(aes, "PeerDead")


def test_aes_disconnect_deletes_sas(aes) -> None:
    (child,) = _events(aes, "ChildSaEstablished")
    deleted = _events(aes, "ChildSaDeleted")
    assert [d["inbound_spi"] for d in deleted] == [child["inbound_spi"]]
    assert deleted[0]["reason"] == "peer-delete"
    (gone,) = _events(aes, "Phase1Deleted")
    assert gone["reason"] == "peer-delete" and gone["user"] == "vpnclient1"
    stopped = _events(aes, "Stopped")[-1]
    assert stopped["stats"].get("malformed", 0) == 0


def _tshark_decode_args(capture: Path) -> list[str]:
    """-d udp.port==N,isakmp for every port that talked to UDP 500 (masquerade may pick
    ports tshark would otherwise give to other protocols)."""
    rows = tshark(
        "-r",
        str(capture),
        "-Y",
        "udp.port==500",
        "-T",
        "fields",
        "-e",
        "udp.srcport",
        "-e",
        "udp.dstport",
    ).split()
    ports = sorted({int(p) for p in rows} - {500})
    args = ["-r", str(capture)]
    for port in ports:
        args += ["-d", f"udp.port=={port},isakmp"]
    return args


def assert_clean_capture(capture: Path) -> str:
    """IKE (and the ESP around it) decodes without malformed packets, unknown payloads or
    expert warnings.  ICMP errors are left out: they quote packets a second time."""
    args = [*_tshark_decode_args(capture), "-Y", "(isakmp or udpencap or esp) and not icmp"]
    verbose = tshark(*args, "-V")
    assert "Malformed" not in verbose
    assert "[Expert Info" not in verbose, re.findall(r"\[Expert Info.*", verbose)[:5]
    payload_lines = re.findall(r"Payload: ([^\n]+)", verbose)
    assert payload_lines, "no ISAKMP payloads decoded at all"
    assert not [p for p in payload_lines if p.startswith("Unknown")], payload_lines
    expert = tshark(*args, "-q", "-z", "expert,warn")
    assert "Warns" not in expert and "Errors" not in expert, expert
    return verbose


def test_aes_capture_dissects_cleanly(aes) -> None:
    verbose = assert_clean_capture(aes["session"].capture)
    assert "Exchange type: Aggressive (4)" in verbose
    assert "Exchange type: Transaction (Config Mode) (6)" in verbose
    assert "Exchange type: Quick Mode (32)" in verbose
    assert "NAT-D (RFC 3947)" in verbose


def test_aes_capture_decrypts_with_exported_keys(aes) -> None:
    ikev1, esp = aes["keys"]
    args = _tshark_decode_args(aes["session"].capture)
    for line in ikev1:
        args += ["-o", f"uat:ikev1_decryption_table:{line}"]
    args += [
        "-o",
        "esp.enable_encryption_decode:TRUE",
        "-o",
        "esp.enable_authentication_check:TRUE",
    ]
    for line in esp:
        args += ["-o", f"uat:esp_sa:{line}"]
    verbose = tshark(*args, "-V")
    assert "INTERNAL IP4 ADDRESS: 40.1.1.1" in verbose  # the decrypted Mode-Config REPLY
    assert "Type: ISAKMP_CFG_REPLY (2)" in verbose
    assert "Echo (ping) reply" in verbose  # the decrypted ESP from vpnc
    assert "[Good: True]" in verbose and "[Bad: True]" not in verbose
    assert "Malformed" not in verbose


# ---------------------------------------------------------------------------------------------
# Scenario B: the seed's algorithms (3DES-168 / MD5 / group 2) and the seed's NAT-T dialect


@pytest.fixture(scope="module")
def seed(tmp_path_factory) -> dict:
    return _run_scenario(
        tmp_path_factory.mktemp("seed"),
        [("client1", "vpnclient1", "pw-one")],
        {"profile": "seed", "natt_versions": ["draft-02n"]},
        vpnc_extra=WEAK,
    )


def test_seed_3des_md5_with_draft_natt(seed) -> None:
    (client,) = seed["clients"]
    log = client.log_text()
    assert "IKE SA selected psk+xauth-3des-md5" in log
    assert "IPSEC SA selected 3des-md5" in log
    assert "NAT status: this end behind NAT? YES -- remote end behind NAT? no" in log
    assert "type 130" in log  # NAT-D payload number of the drafts
    (p1,) = _events(seed, "Phase1Established")
    assert p1["nat"]["natt_version"] == "draft-02n"
    assert p1["algorithms"]["encryption"] == "3des-cbc" and p1["algorithms"]["hash"] == "md5"
    (child,) = _events(seed, "ChildSaEstablished")
    assert child["encapsulation"] == "udp-tunnel-draft"
    assert child["encryption"] == "3des-cbc" and child["integrity"] == "hmac-md5-96"
    assert _events(seed, "EspEchoReply")


def test_seed_keys_and_hashes_match_vpnc(seed) -> None:
    (client,) = seed["clients"]
    vector = _vpnc_vector(client, seed["session"].capture, b"labsecret")
    check_vector(vector, P1Hash.MD5, 8)
    comparable = [c for c in vpnclog.hash_checks(client.log_text()) if c.exchange_type in (6, 32)]
    assert len(comparable) >= 4 and all(c.ok for c in comparable)
    (seed["work"] / "vector.json").write_text(json.dumps(vector, indent=1))


def test_seed_capture_dissects_cleanly(seed) -> None:
    verbose = assert_clean_capture(seed["session"].capture)
    assert "NAT-D (draft-ietf-ipsec-nat-t-ike-01 to 03) (130)" in verbose or "(130)" in verbose


# ---------------------------------------------------------------------------------------------
# Scenario C: the seed's PAT case -- two clients, one public address, the same group


@pytest.fixture(scope="module")
def pat(tmp_path_factory) -> dict:
    return _run_scenario(
        tmp_path_factory.mktemp("pat"),
        [("client1", "vpnclient1", "pw-one"), ("client2", "vpnclient2", "pw-two")],
        {},
    )


def test_pat_two_clients_distinct_addresses(pat) -> None:
    c1, c2 = pat["clients"]
    a1, a2 = c1.env["INTERNAL_IP4_ADDRESS"], c2.env["INTERNAL_IP4_ADDRESS"]
    assert {a1, a2} == {"40.1.1.1", "40.1.1.2"}
    p1s = _events(pat, "Phase1Established")
    assert len(p1s) == 2
    assert {p["peer"][0] for p in p1s} == {NAT_OUTSIDE}  # same public IP
    assert len({p["peer"][1] for p in p1s}) == 2  # different translated ports
    assert {p["group"] for p in p1s} == {"ciscovpn"}
    users = {m["user"]: m["config"]["address"] for m in _events(pat, "ModeConfigApplied")}
    assert users == {"vpnclient1": a1, "vpnclient2": a2}
    children = _events(pat, "ChildSaEstablished")
    assert {c["remote_ts"] for c in children} == {"40.1.1.1/32", "40.1.1.2/32"}
    assert len({c["udp_port"] for c in children}) == 2
    replies = _events(pat, "EspEchoReply")
    assert {r["src"] for r in replies} >= {"40.1.1.1", "40.1.1.2"}
    # INITIAL-CONTACT from the second client did not touch the first one's SA
    assert not [d for d in _events(pat, "Phase1Deleted") if d["reason"] == "initial-contact"]


def test_pat_xlate_shows_two_mappings(pat) -> None:
    table = pat["conntrack"]
    natt = [line for line in table.splitlines() if "dport=4500" in line and "udp" in line]
    assert len(natt) >= 2, table
    reply_ports = {
        re.search(r"dst=171\.69\.89\.78 sport=4500 dport=(\d+)", line).group(1)
        for line in natt
        if "dst=171.69.89.78" in line
    }
    assert len(reply_ports) == 2, natt


def test_pat_capture_dissects_cleanly(pat) -> None:
    assert_clean_capture(pat["session"].capture)


# ---------------------------------------------------------------------------------------------
# Scenario D: NAT transparency switched off on the concentrator (the seed's trouble case)


@pytest.fixture(scope="module")
def natt_off(tmp_path_factory) -> dict:
    return _run_scenario(
        tmp_path_factory.mktemp("nattoff"),
        [("client1", "vpnclient1", "pw-one")],
        # Plain ESP through the PAT is the seed's "tunnel up, no data" case: no ping here.
        {"natt_enabled": False, "probe": None},
        ping=False,
    )


def test_natt_disabled_negotiates_plain_tunnel(natt_off) -> None:
    (client,) = natt_off["clients"]
    log = client.log_text()
    assert "NAT status: no NAT-T VID seen" in log
    assert "got address 40.1.1.1" in log
    (p1,) = _events(natt_off, "Phase1Established")
    assert p1["nat"]["natt_version"] is None and p1["nat"]["floated"] is False
    assert p1["peer"][1] == 500
    (child,) = _events(natt_off, "ChildSaEstablished")
    assert child["encapsulation"] == "tunnel" and child["udp_port"] is None
    assert "t.attributes.u.attr_16: 0001 (IPSEC_ENCAP_TUNNEL)" in log  # vpnc's own reading
    verbose = assert_clean_capture(natt_off["session"].capture)
    assert "NAT-D" not in verbose


# ---------------------------------------------------------------------------------------------
# Scenario E: Cisco "IPsec over UDP" (Mode-Cfg 0x7005 = 10000, IKE stays on 500)


@pytest.fixture(scope="module")
def cisco_udp(tmp_path_factory) -> dict:
    return _run_scenario(
        tmp_path_factory.mktemp("ciscoudp"),
        [("client1", "vpnclient1", "pw-one")],
        {"natt_enabled": False, "cisco_udp_port": 10000},
        vpnc_extra={"NAT Traversal Mode": "cisco-udp"},
    )


def test_cisco_udp_encapsulation(cisco_udp) -> None:
    (p1,) = _events(cisco_udp, "Phase1Established")
    assert p1["peer"][1] == 500 and p1["nat"]["floated"] is False
    (mc,) = _events(cisco_udp, "ModeConfigApplied")
    assert mc["config"]["udp_encap_port"] == 10000
    (child,) = _events(cisco_udp, "ChildSaEstablished")
    assert child["encapsulation"] == "cisco-udp" and child["udp_port"] == 10000
    replies = _events(cisco_udp, "EspEchoReply")
    assert replies and replies[0]["how"] == "udp"


# ---------------------------------------------------------------------------------------------
# Scenario F: vpnc rekeys phase 1 (at 80 % of the lifetime our RESPONDER-LIFETIME announced)


@pytest.fixture(scope="module")
def rekey(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("rekey")
    lab = NetLab(clients=1).create()
    # vpnc rekeys only in "timed mode" (DPD on) and checks the lifetime when its select()
    # times out, i.e. at its 9.5 s NAT-keepalive ticks.  DPD idle 86400 keeps timed mode
    # without periodic R-U-THEREs: vpnc cannot handle a DPD ACK arriving while it waits for
    # its rekey message 2.  Lifetime 33 s: the tick at ~28.5 s (> 80 %) starts the rekey.
    session = InteropSession(lab, tmp, {"ike_lifetime": 33, "probe": None})
    try:
        session.start()
        client = session.start_vpnc(
            "client1", "vpnclient1", "pw-one", extra={"DPD idle timeout (our side)": "86400"}
        )
        session.wait_connected(client)
        session.wait_event("ChildSaEstablished")
        session.wait_event("Phase1Deleted", timeout=60)  # the old SA, deleted by vpnc
        time.sleep(1)
        session.stop_client(client)
        session.wait_event("Phase1Deleted", count=2, timeout=15)
    finally:
        session.stop()
        lab.close()
    return {"client": client, "events": session.events(), "session": session}


def test_vpnc_phase1_rekey_keeps_the_session(rekey) -> None:
    p1 = _events(rekey, "Phase1Established")
    assert len(p1) == 2 and not p1[1]["initial_contact"]  # vpnc's rekey omits it
    assert p1[0]["peer"] == p1[1]["peer"]  # the rekey came over the floated 4500 mapping
    xauth = _events(rekey, "XauthResult")
    assert [x["success"] for x in xauth] == [True, True]
    applied = _events(rekey, "ModeConfigApplied")
    assert [a["style"] for a in applied] == ["pull", "inherited"]
    assert applied[1]["config"]["address"] == "40.1.1.1"
    (rekeyed,) = _events(rekey, "Phase1Rekeyed")
    assert rekeyed["handle"] == p1[1]["handle"] and rekeyed["replaces"] == p1[0]["handle"]
    deleted = _events(rekey, "Phase1Deleted")
    assert deleted[0]["handle"] == p1[0]["handle"] and deleted[0]["reason"] == "peer-delete"
    assert deleted[0]["replaced_by"] == p1[1]["handle"]
    # the child outlived its first phase-1 SA and went only when vpnc quit
    children = _events(rekey, "ChildSaDeleted")
    assert len(children) == 1 and children[0]["handle"] == p1[1]["handle"]
    assert deleted[1]["handle"] == p1[1]["handle"]
    stats = _events(rekey, "Stopped")[-1]["stats"]
    # Debian's vpnc names the new SA in its "delete the old one" message (a bug fixed
    # upstream in 2023); the responder's compatibility rule must have mapped it back.
    log = rekey["client"].log_text()
    new_cookies = p1[1]["handle"]["icookie"]
    buggy = re.search(r"d\.spi: " + " ".join([new_cookies[:8], new_cookies[8:]]), log)
    assert bool(buggy) == (stats.get("vpnc_rekey_delete_quirk", 0) == 1)
    assert "starting phase1 rekey" in log
    assert "got ike lifetime attributes: 33 seconds" in log


# ---------------------------------------------------------------------------------------------
# Failures: wrong password, wrong group password


def _run_failure(tmp: Path, responder_cfg: dict, user: str, password: str, psk: str) -> dict:
    wait_kind = responder_cfg.pop("_wait_for")
    lab = NetLab(clients=1).create()
    session = InteropSession(lab, tmp, responder_cfg)
    try:
        session.start()
        client = session.start_vpnc("client1", user, password, psk=psk)
        client.proc.wait(timeout=60)
        session.wait_event(wait_kind, timeout=30)
    finally:
        session.stop()
        lab.close()
    return {"client": client, "events": session.events()}


def test_wrong_password_fails_cleanly_on_both_sides(tmp_path) -> None:
    result = _run_failure(
        tmp_path,
        {"xauth_max_attempts": 1, "_wait_for": "Phase1Deleted"},
        "vpnclient1",
        "not-the-password",
        "labsecret",
    )
    client = result["client"]
    assert client.proc.returncode != 0
    assert "authentication unsuccessful" in client.log_text()
    xauth = [e for e in result["events"] if e["type"] == "XauthResult"]
    assert [x["success"] for x in xauth] == [False]
    assert not [e for e in result["events"] if e["type"] == "ModeConfigApplied"]


def test_wrong_group_password_fails_cleanly_on_both_sides(tmp_path) -> None:
    result = _run_failure(
        tmp_path,
        {"half_open_timeout": 3.0, "_wait_for": "ExchangeFailed"},
        "vpnclient1",
        "pw-one",
        "not-the-group-password",
    )
    client = result["client"]
    assert client.proc.returncode != 0
    assert "hash comparison failed" in client.log_text()
    (failed,) = [e for e in result["events"] if e["type"] == "ExchangeFailed"]
    assert failed["stage"] == "phase1"
    assert not [e for e in result["events"] if e["type"] == "Phase1Established"]
