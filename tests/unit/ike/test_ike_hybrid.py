"""XAUTH with RSA signatures (65005, the Cisco client's certificate mode) and hybrid
authentication (64221: the gateway signs, the client has no certificate and is known by
XAUTH only), both exchanges; certificate requests on the wire; refusals that name why."""

from __future__ import annotations

import datetime as dt

import pytest

from labctl.ike import (
    ChildSaEstablished,
    ExchangeFailed,
    PacketDropped,
    Phase1Established,
    Phase1Proposal,
)
from labctl.ike.codec import Message, decode_message
from labctl.ike.config import GroupPolicy, seed_phase2
from labctl.ike.constants import AuthMethod, P1Encryption, P1Hash
from labctl.ike.errors import IkeConfigError
from labctl.ike.events import XauthResult
from labctl.ike.payloads import CertRequestPayload
from labctl.ike.pki import LabCa, parse_dn
from tests.unit.ike.builders import add_client, connect, make_lab


def _p1(auth: AuthMethod) -> tuple[Phase1Proposal, ...]:
    return (Phase1Proposal(P1Encryption.AES_CBC, 128, P1Hash.SHA1, 2, auth),)


NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
XAUTH_RSA = _p1(AuthMethod.XAUTH_INIT_RSA)
HYBRID = _p1(AuthMethod.HYBRID_INIT_RSA)
CA_DN = "CN=labctl certs CA,O=labctl"


@pytest.fixture(scope="module")
def pki():
    ca = LabCa.create("certs", NOW)
    return {
        "ca": ca,
        "gateway": ca.issue("vpn3000", NOW),
        "client": ca.issue("client1", NOW, unit="ciscovpn"),
        "other": LabCa.create("elsewhere", NOW),
    }


def _lab(pki, auth: str, proposals, exchange: str, *, client_ca=None, **client):
    lab = make_lab(
        phase1=proposals,
        phase2=seed_phase2(),
        certificate=pki["gateway"],
        ca=pki["ca"].certificate,
        clock=lambda: NOW,
        group={"auth": auth},
    )
    add_client(
        lab,
        exchange=exchange,
        phase1=client.pop("phase1", proposals),
        phase2=seed_phase2(),
        ca=client_ca or pki["ca"].certificate,
        clock=lambda: NOW,
        **client,
    )
    return lab


def _requests_on_the_wire(lab) -> dict[str, list[str]]:
    """Who sent a CR in a clear-text message, and the CA it named."""
    seen: dict[str, list[str]] = {}
    for _, flight in lab.wire_view():
        msg = decode_message(flight.data)
        if not isinstance(msg, Message):  # encrypted
            continue
        for cr in msg.find(CertRequestPayload):
            seen.setdefault(flight.sender, []).append(parse_dn(cr.data))
    return seen


@pytest.mark.parametrize("exchange", ["main", "aggressive"])
def test_xauth_with_rsa_signatures(pki, exchange) -> None:
    lab = _lab(pki, "certificate", XAUTH_RSA, exchange, certificate=pki["client"])
    connect(lab)
    (server,) = lab.events_of("server", Phase1Established)
    assert server.algorithms.auth_method == "xauth_init_rsa"
    assert server.group == "ciscovpn" and "client1" in server.peer_id
    (xauth,) = lab.events_of("server", XauthResult)
    assert xauth.success and xauth.user == "vpnclient1"
    assert lab.events_of("c1", ChildSaEstablished)
    # each end asked for the other's certificate, naming the lab CA
    assert _requests_on_the_wire(lab) == {"c1": [CA_DN], "server": [CA_DN]}
    (sa,) = lab.responder.sas.values()
    assert sa.peer_cert_requests == [CA_DN]


@pytest.mark.parametrize("exchange", ["main", "aggressive"])
def test_hybrid_the_gateway_signs_the_client_uses_xauth(pki, exchange) -> None:
    # the group password is not part of hybrid's SKEYID (prf(Ni | Nr, g^xy)): a wrong
    # one changes nothing -- proof that both ends key the signature way
    lab = _lab(pki, "hybrid", HYBRID, exchange, certificate=None, psk=b"not-the-group-password")
    connect(lab)
    (server,) = lab.events_of("server", Phase1Established)
    (client,) = lab.events_of("c1", Phase1Established)
    assert server.algorithms.auth_method == client.algorithms.auth_method == "hybrid_init_rsa"
    assert "vpn3000" in client.peer_id and server.group == "ciscovpn"
    (xauth,) = lab.events_of("server", XauthResult)
    assert xauth.success
    assert lab.events_of("c1", ChildSaEstablished)
    (sa,) = lab.responder.sas.values()
    assert sa.peer_certificate is None  # the client showed none
    (ini_sa,) = [s for s in lab.clients["c1"].engine.sas.values() if s.established]
    assert ini_sa.peer_certificate == "CN=vpn3000,O=labctl"
    # only the client asks for a certificate: the gateway wants none from it
    assert _requests_on_the_wire(lab) == {"c1": [CA_DN]}


def test_hybrid_with_a_wrong_xauth_password_fails_xauth(pki) -> None:
    lab = _lab(pki, "hybrid", HYBRID, "aggressive", certificate=None, password=b"wrong")
    connect(lab, duration=20)
    assert lab.events_of("server", XauthResult)
    assert not any(x.success for x in lab.events_of("server", XauthResult))
    assert not lab.events_of("c1", ChildSaEstablished)


@pytest.mark.parametrize("exchange", ["main", "aggressive"])
def test_a_hybrid_client_refuses_a_gateway_certificate_of_another_ca(pki, exchange) -> None:
    lab = _lab(
        pki, "hybrid", HYBRID, exchange, certificate=None, client_ca=pki["other"].certificate
    )
    connect(lab, duration=10)
    assert not lab.events_of("c1", Phase1Established)
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert failed.stage == "phase1"
    assert failed.reason.startswith("gateway certificate refused: certificate 'CN=vpn3000")
    assert "(untrusted)" in failed.reason
    (told,) = lab.events_of("server", ExchangeFailed)  # the client said why
    assert told.reason.startswith("client refused our authentication: INVALID_CERT_AUTHORITY")
    assert not lab.responder.sas


def test_a_certificate_client_without_xauth_is_refused_by_a_group_with_users(pki) -> None:
    rsa = _p1(AuthMethod.RSA_SIG)
    lab = _lab(pki, "certificate", XAUTH_RSA + rsa, "main", certificate=pki["client"], user=None,
               phase1=rsa)  # fmt: skip
    connect(lab, duration=10)
    drops = [d.reason for d in lab.events_of("server", PacketDropped) if not d.stale]
    assert drops and drops[0] == (
        "client certificate refused: group 'ciscovpn' takes certificate authentication "
        "(xauth_init_rsa), not rsa_sig"
    )


def test_a_psk_client_gets_no_proposal_from_a_certificate_group(pki) -> None:
    lab = _lab(pki, "certificate", XAUTH_RSA, "aggressive", phase1=_p1(AuthMethod.XAUTH_INIT_PSK))
    connect(lab, duration=10)
    assert not lab.events_of("server", Phase1Established)
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert failed.reason == "gateway refused: NO_PROPOSAL_CHOSEN"
    (refused,) = lab.events_of("server", ExchangeFailed)
    assert "xauth_init_psk not in policy" in refused.reason


def test_bad_combinations_are_configuration_errors(pki) -> None:
    with pytest.raises(IkeConfigError, match="hybrid auth needs XAUTH users"):
        GroupPolicy("g", b"", xauth=False, auth="hybrid")
    with pytest.raises(IkeConfigError, match="unknown auth 'rsa'"):
        GroupPolicy("g", b"x", auth="rsa")
    with pytest.raises(IkeConfigError, match="certificate auth needs RSA proposals"):
        make_lab(group={"auth": "certificate"})
    with pytest.raises(IkeConfigError, match="need a certificate and a CA"):
        add_client(make_lab(), phase1=XAUTH_RSA)  # a signing client without a certificate
    GroupPolicy("g", b"", auth="certificate")  # no group password needed
