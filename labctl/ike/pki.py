"""Certificates for IKEv1 signature authentication (the groundwork of issue 12's
`auth: certificate | hybrid`): a per-lab CA and the node certificates it issues, the
checks a peer's certificate must pass (signed by the lab CA, valid now, naming the
identity the peer claims), and IKEv1's RSA signature of HASH_I / HASH_R.

IKEv1 signs the bare hash: PKCS#1 v1.5 type-1 padding around HASH_I itself, no
DigestInfo (RFC 2409 5.1 leaves the encoding to the signature algorithm; racoon's
RSA_private_encrypt and strongSwan's "EMSA_PKCS1_NULL" both do this, and so do Cisco
clients).  The cryptography package has no such scheme, so the RSA operation is done
here with the key's numbers; verification is cross-checked against cryptography's
``recover_data_from_signature`` in the tests.

No I/O: keys and certificates come in and go out as objects, DER or PEM bytes.  Private
keys are never part of a repr or an error message.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from .constants import NotifyType
from .errors import IkeProtocolError

RSA_BITS = 2048


# -- the bare-hash RSA signature IKEv1 uses ------------------------------------------------


def _byte_len(n: int) -> int:
    return (n.bit_length() + 7) // 8


def sign_hash(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    """EMSA-PKCS1-v1_5 type 1 around ``digest`` (no DigestInfo), then RSA with ``key``."""
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    k = _byte_len(n)
    if len(digest) > k - 11:
        raise ValueError(f"a {len(digest)}-byte hash does not fit a {k * 8}-bit key")
    block = b"\x00\x01" + b"\xff" * (k - 3 - len(digest)) + b"\x00" + digest
    m = int.from_bytes(block, "big")
    # CRT: two half-size exponentiations
    s1 = pow(m, numbers.dmp1, numbers.p)
    s2 = pow(m, numbers.dmq1, numbers.q)
    h = (numbers.iqmp * (s1 - s2)) % numbers.p
    s = s2 + h * numbers.q
    return s.to_bytes(k, "big")


def verify_hash(key: rsa.RSAPublicKey, digest: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``digest`` signed as :func:`sign_hash` does."""
    numbers = key.public_numbers()
    k = _byte_len(numbers.n)
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= numbers.n:
        return False
    block = pow(s, numbers.e, numbers.n).to_bytes(k, "big")
    expected = b"\x00\x01" + b"\xff" * (k - 3 - len(digest)) + b"\x00" + digest
    return len(digest) <= k - 11 and block == expected


# -- a lab's CA ----------------------------------------------------------------------------


def _name(common_name: str, unit: str | None = None, org: str = "labctl") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if unit:  # Cisco clients take the group from the certificate's OU
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def node_subject(common_name: str, unit: str | None = None) -> x509.Name:
    """The subject :meth:`LabCa.issue` gives a node (O=labctl, OU=unit, CN=name)."""
    return _name(common_name, unit)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


@dataclass(frozen=True)
class Issued:
    """A key and its certificate (the key stays out of repr)."""

    key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    def key_pem(self) -> bytes:
        """The private key, PKCS#8 PEM, unencrypted: for a 0600 file inside a node only."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


class LabCa:
    """A lab's certificate authority: one self-signed RSA CA that issues node certificates."""

    def __init__(self, issued: Issued) -> None:
        self.issued = issued

    @property
    def certificate(self) -> x509.Certificate:
        return self.issued.certificate

    @staticmethod
    def create(lab: str, now: dt.datetime, days: int = 3650) -> LabCa:
        key = _new_key()
        name = _name(f"labctl {lab} CA")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return LabCa(Issued(key, cert))

    def issue(
        self,
        common_name: str,
        now: dt.datetime,
        *,
        unit: str | None = None,
        days: int = 825,
        not_before: dt.datetime | None = None,
    ) -> Issued:
        """A node certificate: CN = the node, OU = its VPN group (what a Cisco client sends)."""
        key = _new_key()
        start = not_before or now - dt.timedelta(minutes=5)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, unit))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.issued.key, hashes.SHA256())
        )
        return Issued(key, cert)


# -- checking a peer's certificate ---------------------------------------------------------


def _validity(cert: x509.Certificate) -> tuple[dt.datetime, dt.datetime]:
    """(not before, not after) as aware UTC datetimes, on cryptography 38 and later."""
    if hasattr(cert, "not_valid_before_utc"):
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before, after = cert.not_valid_before, cert.not_valid_after
    return before.replace(tzinfo=dt.UTC), after.replace(tzinfo=dt.UTC)


def _refuse(reason: str, notify: int = NotifyType.INVALID_CERTIFICATE) -> IkeProtocolError:
    return IkeProtocolError(reason, notify=notify)


def check_peer_certificate(
    der: bytes,
    ca: x509.Certificate,
    now: dt.datetime,
    *,
    claimed_dn: bytes | None = None,
) -> rsa.RSAPublicKey:
    """The peer's RSA key, once its certificate is shown to be the lab CA's, valid at
    ``now`` and (with ``claimed_dn``, an ID_DER_ASN1_DN payload's data) for the identity
    the peer claims.  Each refusal names the certificate and what was wrong."""
    return verified_certificate(der, ca, now, claimed_dn=claimed_dn)[1]


def verified_certificate(
    der: bytes,
    ca: x509.Certificate,
    now: dt.datetime,
    *,
    claimed_dn: bytes | None = None,
) -> tuple[x509.Certificate, rsa.RSAPublicKey]:
    """:func:`check_peer_certificate`, with the certificate it parsed (parsed once)."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise _refuse(
            "certificate payload is not a DER X.509 certificate", NotifyType.INVALID_CERT_ENCODING
        ) from None
    subject = cert.subject.rfc4514_string()
    authority = ca.subject.rfc4514_string()
    ca_key = ca.public_key()
    if cert.issuer != ca.subject or not isinstance(ca_key, rsa.RSAPublicKey):
        raise _refuse(
            f"certificate '{subject}' is issued by '{cert.issuer.rfc4514_string()}', "
            f"not by the lab CA '{authority}' (untrusted)",
            NotifyType.INVALID_CERT_AUTHORITY,
        )
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        raise _refuse(f"certificate '{subject}' has no signature hash algorithm")
    try:
        ca_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise _refuse(
            f"certificate '{subject}' names the lab CA '{authority}' but is not signed by it "
            "(untrusted)",
            NotifyType.INVALID_CERT_AUTHORITY,
        ) from None
    before, after = _validity(cert)
    when = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
    if when < before:
        raise _refuse(f"certificate '{subject}' is not valid before {before:%Y-%m-%d %H:%M} UTC")
    if when > after:
        raise _refuse(f"certificate '{subject}' expired on {after:%Y-%m-%d %H:%M} UTC")
    if claimed_dn is not None and claimed_dn != cert.subject.public_bytes():
        try:
            shown = parse_dn(claimed_dn)
        except (ValueError, IndexError):
            shown = claimed_dn.hex()
        raise _refuse(
            f"peer claims identity '{shown}' but its certificate is for '{subject}'",
            NotifyType.INVALID_ID_INFORMATION,
        )
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _refuse(f"certificate '{subject}' does not hold an RSA key")
    return cert, key


def parse_dn(der: bytes) -> str:
    """A minimal DER walk of an X.501 Name (an ID_DER_ASN1_DN payload) for error messages:
    'CN=...,OU=...,O=...' (cryptography has no public DER Name parser)."""
    names = {b"\x55\x04\x03": "CN", b"\x55\x04\x0b": "OU", b"\x55\x04\x0a": "O"}

    def tlv(buf: bytes, i: int) -> tuple[int, int, int]:
        tag = buf[i]
        length = buf[i + 1]
        i += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(buf[i : i + count], "big")
            i += count
        if i + length > len(buf):
            raise ValueError("truncated DER")
        return tag, i, i + length

    tag, start, end = tlv(der, 0)
    if tag != 0x30:
        raise ValueError("not a DER Name")
    parts = []
    i = start
    while i < end:
        _, s_start, s_end = tlv(der, i)  # SET
        _, a_start, _a_end = tlv(der, s_start)  # SEQUENCE
        _, o_start, o_end = tlv(der, a_start)  # OID
        _, v_start, v_end = tlv(der, o_end)  # value
        label = names.get(der[o_start:o_end], der[o_start:o_end].hex())
        parts.append(f"{label}={der[v_start:v_end].decode('utf-8', 'replace')}")
        i = s_end
    return ",".join(reversed(parts))
