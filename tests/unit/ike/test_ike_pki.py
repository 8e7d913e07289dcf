"""The certificate groundwork: a lab CA and node certificates, the refusals a peer's
certificate can get (another CA, forged, expired, not yet valid, wrong identity), and
IKEv1's bare-hash RSA signature, cross-checked with cryptography's own RSA."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from labctl.ike.constants import NotifyType, P1Hash
from labctl.ike.crypto import prf
from labctl.ike.errors import IkeProtocolError
from labctl.ike.keys import skeyid_signature
from labctl.ike.pki import LabCa, check_peer_certificate, sign_hash, verify_hash

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> LabCa:
    return LabCa.create("certs", NOW)


@pytest.fixture(scope="module")
def client(ca):
    return ca.issue("client1", NOW, unit="ciscovpn")


def test_a_lab_ca_issues_node_certificates(ca, client) -> None:
    assert ca.certificate.subject.rfc4514_string() == "CN=labctl certs CA,O=labctl"
    assert client.subject == "CN=client1,OU=ciscovpn,O=labctl"
    key = check_peer_certificate(client.certificate_der(), ca.certificate, NOW)
    assert key.public_numbers() == client.key.public_key().public_numbers()
    assert "PRIVATE" not in repr(client) and b"BEGIN PRIVATE KEY" in client.key_pem()
    assert client.certificate_pem().startswith(b"-----BEGIN CERTIFICATE-----")


def test_a_certificate_of_another_ca_is_refused_by_name(ca) -> None:
    other = LabCa.create("elsewhere", NOW).issue("client9", NOW)
    with pytest.raises(IkeProtocolError) as refused:
        check_peer_certificate(other.certificate_der(), ca.certificate, NOW)
    assert "'CN=client9,O=labctl' is issued by 'CN=labctl elsewhere CA,O=labctl'" in str(
        refused.value
    )
    assert "untrusted" in str(refused.value)
    assert refused.value.notify == NotifyType.INVALID_CERT_AUTHORITY


def test_a_forged_certificate_naming_the_lab_ca_is_refused(ca) -> None:
    impostor = LabCa.create("certs", NOW)  # same subject, other key
    forged = impostor.issue("client1", NOW)
    with pytest.raises(IkeProtocolError, match="not signed by it"):
        check_peer_certificate(forged.certificate_der(), ca.certificate, NOW)


def test_expired_and_not_yet_valid_certificates_are_refused(ca) -> None:
    old = ca.issue("client2", NOW, days=1, not_before=NOW - dt.timedelta(days=10))
    with pytest.raises(IkeProtocolError, match="'CN=client2,O=labctl' expired on 2026-11-23"):
        check_peer_certificate(old.certificate_der(), ca.certificate, NOW)
    future = ca.issue("client3", NOW, not_before=NOW + dt.timedelta(days=1))
    with pytest.raises(IkeProtocolError, match="not valid before 2026-12-03"):
        check_peer_certificate(future.certificate_der(), ca.certificate, NOW)


def test_a_peer_claiming_another_identity_is_refused(ca, client) -> None:
    other = ca.issue("client4", NOW, unit="ciscovpn")
    claimed = other.certificate.subject.public_bytes()
    with pytest.raises(IkeProtocolError) as refused:
        check_peer_certificate(client.certificate_der(), ca.certificate, NOW, claimed_dn=claimed)
    assert str(refused.value) == (
        "peer claims identity 'CN=client4,OU=ciscovpn,O=labctl' but its certificate is for "
        "'CN=client1,OU=ciscovpn,O=labctl'"
    )
    ok = client.certificate.subject.public_bytes()
    check_peer_certificate(client.certificate_der(), ca.certificate, NOW, claimed_dn=ok)


def test_garbage_is_not_a_certificate(ca) -> None:
    with pytest.raises(IkeProtocolError, match=r"not a DER X\.509") as refused:
        check_peer_certificate(b"\x30\x03junk", ca.certificate, NOW)
    assert refused.value.notify == NotifyType.INVALID_CERT_ENCODING


def test_the_bare_hash_signature_matches_cryptographys_rsa(client) -> None:
    digest = bytes(range(20))  # a SHA-1 sized HASH_I
    signature = sign_hash(client.key, digest)
    public = client.key.public_key()
    assert len(signature) == 256 and verify_hash(public, digest, signature)
    # cryptography's own RSA recovers exactly the hash (PKCS#1 v1.5, no DigestInfo)
    assert public.recover_data_from_signature(signature, padding.PKCS1v15(), None) == digest
    assert not verify_hash(public, digest[:-1] + b"\x00", signature)
    assert not verify_hash(public, digest, signature[:-1] + bytes([signature[-1] ^ 1]))
    assert not verify_hash(public, digest, signature[:-1])
    # deterministic (type-1 padding): the key read back from its PEM signs the same bytes
    pem = client.key_pem()
    again = serialization.load_pem_private_key(pem, None)
    assert sign_hash(again, digest) == signature


def test_skeyid_for_signatures_is_prf_of_the_nonces_over_the_dh_secret() -> None:
    ni, nr, gxy = b"\x01" * 16, b"\x02" * 16, b"\x03" * 128
    assert skeyid_signature(P1Hash.SHA1, ni, nr, gxy) == prf(P1Hash.SHA1, ni + nr, gxy)
    assert skeyid_signature(P1Hash.SHA1, ni, nr, gxy) != skeyid_signature(P1Hash.SHA1, nr, ni, gxy)
