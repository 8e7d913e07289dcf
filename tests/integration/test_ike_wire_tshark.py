"""Our INITIATOR (and the responder paths vpnc never exercises: main mode, PFS, push
Mode-Config, DPD, deletes, rekeys) judged by an independent dissector.

The in-process exchanges are written to a pcap exactly as the concentrator's side of the PAT
would see them (non-ESP marker on 4500 included); tshark must dissect every message without
malformed packets, expert warnings or unknown payloads, and -- given only the encryption keys
from our lab-only key export -- decrypt every encrypted message itself (its own IV chaining,
its own padding handling) and find the Mode-Config address in it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from labctl.ike import (
    NattVersion,
    Phase1Established,
    Phase1Proposal,
    Phase2Proposal,
    decode_header,
)
from labctl.ike.config import seed_phase1, seed_phase2
from labctl.ike.constants import EspAuth, EspTransform, Flag, P1Encryption, P1Hash
from labctl.ike.keyexport import ikev1_line_for
from tests.integration.ike_support.pcap import udp_packet, write_pcap
from tests.integration.ike_support.session import tshark
from tests.unit.ike.builders import add_client, connect, make_lab

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def need_tshark() -> None:
    if shutil.which("tshark") is None:
        pytest.fail("tshark not found: apt-get install tshark")


def _dissect(lab, tmp: Path) -> tuple[str, int, int]:
    packets = []
    for t, f in lab.wire_view():
        payload = (b"\x00\x00\x00\x00" + f.data) if f.marker else f.data
        packets.append((t, udp_packet(f.src, f.dst, payload)))
    pcap = tmp / "engine.pcap"
    write_pcap(pcap, packets)
    args = ["-r", str(pcap)]
    ports = {p for _, f in lab.wire_view() for p in (f.src[1], f.dst[1])} - {500, 4500}
    for port in sorted(ports):
        args += ["-d", f"udp.port=={port},isakmp"]
    seen = set()
    for e in lab.server_events:
        if isinstance(e, Phase1Established) and e.handle not in seen:
            seen.add(e.handle)
            args += ["-o", f"uat:ikev1_decryption_table:{ikev1_line_for(e)}"]
    verbose = tshark(*args, "-V")
    assert "Malformed" not in verbose
    assert "[Expert Info" not in verbose, re.findall(r"\[Expert Info.*", verbose)[:5]
    payloads = re.findall(r"Payload: ([^\n]+)", verbose)
    assert payloads and not [p for p in payloads if p.startswith("Unknown")]
    encrypted = sum(1 for _, f in lab.wire_view() if decode_header(f.data).flags & Flag.ENCRYPTION)
    # tshark shows a payload tree under "Encrypted Data" only when it could decrypt it
    decrypted = len(re.findall(r"Encrypted Data \(\d+ bytes\)\n\s+Payload:", verbose))
    return verbose, encrypted, decrypted


def _check(lab, tmp: Path, *, address: str = "40.1.1.1") -> str:
    verbose, encrypted, decrypted = _dissect(lab, tmp)
    assert encrypted > 0 and decrypted == encrypted, (encrypted, decrypted)
    assert f"INTERNAL IP4 ADDRESS: {address}" in verbose
    return verbose


def test_seed_aggressive_mode_draft_natt(tmp_path) -> None:
    lab = make_lab(
        phase1=seed_phase1(), phase2=seed_phase2(), natt_versions=(NattVersion.DRAFT_02N,)
    )
    add_client(
        lab,
        phase1=(
            Phase1Proposal(P1Encryption.TRIPLE_DES_CBC, None, P1Hash.MD5, 2, lifetime=2147483),
        ),
        phase2=seed_phase2(),
    )
    connect(lab)
    verbose = _check(lab, tmp_path)
    assert "Exchange type: Aggressive (4)" in verbose
    assert "NAT-D (draft-ietf-ipsec-nat-t-ike-01 to 03) (130)" in verbose
    assert "draft-ietf-ipsec-nat-t-ike-02\\n" in verbose
    assert "Encapsulation-Mode: UDP-Encapsulated-Tunnel (draft)" in verbose or "61443" in verbose
    assert "XAUTH-USER-NAME: vpnclient1" in verbose or "XAUTH_USER_NAME: vpnclient1" in verbose
    assert "Life-Duration: 86400" in verbose  # RESPONDER-LIFETIME after Mode-Config


def test_aes256_sha256_group14_with_pfs(tmp_path) -> None:
    p1 = (Phase1Proposal(P1Encryption.AES_CBC, 256, P1Hash.SHA2_256, 14),)
    p2 = (Phase2Proposal(EspTransform.AES_CBC, 256, EspAuth.HMAC_SHA2_256, pfs_group=5),)
    lab = make_lab(phase1=p1, phase2=p2)
    add_client(lab, phase1=p1, phase2=p2)
    connect(lab)
    verbose = _check(lab, tmp_path)
    assert "NAT-D (RFC 3947) (20)" in verbose
    assert "Group-Description: 1536 bit MODP group" in verbose or "(5)" in verbose


def test_main_mode_push_modecfg_cisco_udp(tmp_path) -> None:
    lab = make_lab(
        main_mode_group="ciscovpn", modecfg_push=True, natt_enabled=False, cisco_udp_port=10000
    )
    add_client(lab, exchange="main", modecfg="push", natt="cisco-udp")
    connect(lab)
    verbose = _check(lab, tmp_path)
    assert "Exchange type: Identity Protection (Main Mode) (2)" in verbose
    assert "ISAKMP_CFG_SET" in verbose and "ISAKMP_CFG_ACK" in verbose


def test_dpd_delete_and_rekeys(tmp_path) -> None:
    lab = make_lab(ike_lifetime=100, ipsec_lifetime=60, dpd_idle=15)
    ini = add_client(
        lab,
        phase1=(Phase1Proposal(lifetime=100),),
        phase2=(Phase2Proposal(lifetime=60),),
        dpd_idle=None,
        altiga_keepalive_interval=20.0,
    )
    connect(lab)
    lab.run(95)  # phase-2 rekey at 54 s, phase-1 rekey at 90 s, DPD and heartbeats between
    lab.collect("c1", ini.delete(lab.now))
    lab.run(2)
    verbose = _check(lab, tmp_path)
    for needle in ("R-U-THERE", "R-U-THERE-ACK", "Delete (12)"):
        assert needle in verbose, needle
    assert verbose.count("Exchange type: Aggressive (4)") == 6  # two phase-1 exchanges
