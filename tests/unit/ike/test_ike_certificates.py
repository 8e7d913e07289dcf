"""RSA signature authentication in main mode (auth method 3): both ends prove themselves
with a certificate of the lab CA and a signature of HASH_I / HASH_R; a client whose
certificate comes from another CA, or has expired, is refused with the reason, and a
client refuses a gateway certificate it cannot trust."""

from __future__ import annotations

import datetime as dt

import pytest

from labctl.ike import (
    ChildSaEstablished,
    ExchangeFailed,
    ModeConfigReceived,
    PacketDropped,
    Phase1Established,
    Phase1Proposal,
)
from labctl.ike.config import seed_phase2
from labctl.ike.constants import AuthMethod, P1Encryption, P1Hash
from labctl.ike.errors import IkeConfigError
from labctl.ike.pki import LabCa
from tests.unit.ike.builders import add_client, connect, make_lab

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
CERT_GROUP = {"auth": "certificate", "xauth": False}  # RSA_SIG: no XAUTH
RSA = (Phase1Proposal(P1Encryption.AES_CBC, 128, P1Hash.SHA1, 2, AuthMethod.RSA_SIG),)


@pytest.fixture(scope="module")
def pki():
    ca = LabCa.create("certs", NOW)
    return {
        "ca": ca,
        "gateway": ca.issue("vpn3000", NOW),
        "client": ca.issue("client1", NOW, unit="ciscovpn"),
        "stranger": LabCa.create("elsewhere", NOW).issue("client9", NOW, unit="ciscovpn"),
        "expired": ca.issue("client2", NOW, unit="ciscovpn", days=1,
                            not_before=NOW - dt.timedelta(days=10)),
    }  # fmt: skip


def _lab(pki, client_cert: str = "client", gateway_ca=None, exchange: str = "main"):
    lab = make_lab(
        phase1=RSA,
        phase2=seed_phase2(),
        certificate=pki["gateway"],
        ca=pki["ca"].certificate,
        clock=lambda: NOW,
        group=CERT_GROUP,
    )
    add_client(
        lab,
        exchange=exchange,
        phase1=RSA,
        phase2=seed_phase2(),
        user=None,
        certificate=pki[client_cert],
        ca=gateway_ca or pki["ca"].certificate,
        clock=lambda: NOW,
    )
    return lab


@pytest.mark.parametrize("exchange", ["main", "aggressive"])
def test_certificates_on_both_ends(pki, exchange) -> None:
    lab = _lab(pki, exchange=exchange)
    connect(lab)
    (server,) = lab.events_of("server", Phase1Established)
    (client,) = lab.events_of("c1", Phase1Established)
    assert server.algorithms.auth_method == client.algorithms.auth_method == "rsa_sig"
    assert server.group == "ciscovpn"  # from the certificate's OU
    assert "client1" in server.peer_id and "vpn3000" in client.peer_id
    assert lab.events_of("c1", ModeConfigReceived) and lab.events_of("c1", ChildSaEstablished)
    sa = next(iter(lab.responder.sas.values()))
    assert sa.peer_certificate == "CN=client1,OU=ciscovpn,O=labctl"


@pytest.mark.parametrize(
    ("which", "notify", "reason"),
    [
        ("stranger", "INVALID_CERT_AUTHORITY",
         "'CN=client9,OU=ciscovpn,O=labctl' is issued by 'CN=labctl elsewhere CA"),
        ("expired", "INVALID_CERTIFICATE",
         "'CN=client2,OU=ciscovpn,O=labctl' expired on 2026-11-23"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("exchange", ["main", "aggressive"])
def test_a_client_certificate_the_gateway_cannot_trust_is_refused(
    pki, which, notify, reason, exchange
) -> None:
    lab = _lab(pki, client_cert=which, exchange=exchange)
    connect(lab, duration=20)
    assert not lab.events_of("server", Phase1Established)
    assert not lab.responder.established()
    drops = [d.reason for d in lab.events_of("server", PacketDropped) if not d.stale]
    # one refusal (aggressive mode: the client's Mode-Config request after message 3 is
    # dropped too, "before phase 1 completed")
    assert drops[0].startswith("client certificate refused: ")
    assert sum(d.startswith("client certificate refused") for d in drops) == 1
    assert reason in drops[0]
    # the gateway said why, encrypted and hashed with the phase-1 keys: the client stops
    # at once (no retransmissions of message 5 / 3) and names the reason
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert failed.stage == "phase1"
    assert failed.reason.startswith(
        f"gateway refused our authentication: {notify} (client certificate refused: "
    )
    assert reason in failed.reason
    assert not lab.clients["c1"].engine.sas


@pytest.mark.parametrize("exchange", ["main", "aggressive"])
def test_the_client_refuses_a_gateway_certificate_of_another_ca(pki, exchange) -> None:
    other = LabCa.create("elsewhere", NOW).certificate
    lab = _lab(pki, gateway_ca=other, exchange=exchange)
    connect(lab, duration=10)
    assert not lab.events_of("c1", Phase1Established)
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert failed.reason.startswith("gateway certificate refused: certificate 'CN=vpn3000")
    assert "not by the lab CA 'CN=labctl elsewhere CA,O=labctl' (untrusted)" in failed.reason
    # ... and told the gateway why (encrypted notify): it drops the session at once
    (told,) = lab.events_of("server", ExchangeFailed)
    assert told.stage == "phase1"
    assert told.reason.startswith(
        "client refused our authentication: INVALID_CERT_AUTHORITY (gateway certificate "
        "refused: certificate 'CN=vpn3000,O=labctl' is issued by 'CN=labctl certs CA"
    )
    assert not lab.responder.sas


def test_signature_proposals_need_a_certificate() -> None:
    with pytest.raises(IkeConfigError, match="need a certificate and a CA"):
        make_lab(phase1=RSA)


def test_certificate_messages_cross_a_path_that_drops_big_datagrams_only_as_fragments(pki):
    """The issue's ike-fragmentation case in process: certificates make messages 5 and 6
    over a kilobyte; a path that drops every datagram over 576 bytes (a PAT dropping IP
    fragments) lets phase 1 through only when both ends fragment."""
    from labctl.ike.config import VendorIdentity
    from labctl.ike.events import IkeFragments

    def through_the_pat(fragments: bool):
        lab = make_lab(
            phase1=RSA,
            phase2=seed_phase2(),
            certificate=pki["gateway"],
            ca=pki["ca"].certificate,
            clock=lambda: NOW,
            group=CERT_GROUP,
        )
        add_client(
            lab,
            exchange="main",
            phase1=RSA,
            phase2=seed_phase2(),
            user=None,
            certificate=pki["client"],
            ca=pki["ca"].certificate,
            clock=lambda: NOW,
            vendor=VendorIdentity(fragmentation=fragments, vpn3000_version=None),
        )
        lost: list = []
        lab.drop = lambda f: len(f.data) > 576 and not lost.append(len(f.data))
        connect(lab, duration=120)
        return lab, lost

    lab, lost = through_the_pat(fragments=False)
    assert lost and min(lost) > 1000  # the certificate messages, again and again
    assert not lab.events_of("c1", Phase1Established)
    lab, lost = through_the_pat(fragments=True)
    assert not lost
    assert lab.events_of("c1", Phase1Established) and lab.events_of("c1", ChildSaEstablished)
    sent = {
        (e.exchange, e.sent) for who in ("c1", "server") for e in lab.events_of(who, IkeFragments)
    }
    assert sent == {("main mode", True), ("main mode", False)}
    assert len([e for e in lab.events_of("c1", IkeFragments) if e.sent]) == 1  # message 5
