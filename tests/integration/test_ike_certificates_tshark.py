"""Certificate main mode as an independent dissector sees it: tshark decrypts messages 5
and 6 with our exported keys and finds the DER-DN identity, an X.509 certificate it can
parse (subject and issuer of the lab CA) and a signature, with nothing malformed."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from labctl.ike import Phase1Established, Phase1Proposal
from labctl.ike.config import seed_phase2
from labctl.ike.constants import AuthMethod, P1Encryption, P1Hash
from labctl.ike.keyexport import ikev1_line_for
from labctl.ike.pki import LabCa
from tests.integration.ike_support.pcap import udp_packet, write_pcap
from tests.integration.ike_support.session import tshark
from tests.unit.ike.builders import add_client, connect, make_lab

pytestmark = pytest.mark.integration
NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def test_tshark_reads_our_certificate_exchange(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.fail("tshark not found: apt-get install tshark")
    ca = LabCa.create("certs", NOW)
    rsa = (Phase1Proposal(P1Encryption.AES_CBC, 128, P1Hash.SHA1, 2, AuthMethod.RSA_SIG),)
    common = {"phase1": rsa, "phase2": seed_phase2(), "ca": ca.certificate, "clock": lambda: NOW}
    # A group takes what its `auth` says (RSA_SIG without XAUTH here), as in the unit tests.
    group = {"auth": "certificate", "xauth": False}
    lab = make_lab(nat=False, certificate=ca.issue("vpn3000", NOW), group=group, **common)
    add_client(
        lab,
        exchange="main",
        user=None,
        certificate=ca.issue("client1", NOW, unit="ciscovpn"),
        **common,
    )
    connect(lab)
    packets = [(t, udp_packet(f.src, f.dst, f.data)) for t, f in lab.wire_view()]
    pcap = tmp_path / "certs.pcap"
    write_pcap(pcap, packets)
    (p1,) = lab.events_of("server", Phase1Established)
    keys = f"uat:ikev1_decryption_table:{ikev1_line_for(p1)}"
    verbose = tshark("-r", str(pcap), "-o", keys, "-V")
    assert "Malformed" not in verbose and "[Expert Info (Error" not in verbose
    assert verbose.count("Payload: Certificate (6)") == 2
    assert verbose.count("Payload: Signature (9)") == 2
    assert "ID type: DER_ASN1_DN (9)" in verbose
    assert "Certificate Encoding: X.509 Certificate - Signature (4)" in verbose
    issuer = "commonName=labctl certs CA"
    assert verbose.count(issuer) >= 2  # the issuer of both certificates, dissected
    assert "commonName=client1" in verbose and "commonName=vpn3000" in verbose
