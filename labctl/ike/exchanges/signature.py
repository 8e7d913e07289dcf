"""RSA signature authentication (RFC 2409 5.1), both roles, main and aggressive mode:
the signing end's identity is its certificate's subject (ID_DER_ASN1_DN), it sends its
certificate (CERT, X.509 signature) and SIG = HASH_I / HASH_R signed as IKEv1 does
(:mod:`labctl.ike.pki`); SKEYID = prf(Ni_b | Nr_b, g^xy).  The peer's certificate must be
the lab CA's, valid now and for the identity it claims, or phase 1 fails with that reason.
The concentrator takes a certificate peer's tunnel group from the certificate's OU (what
the Cisco VPN Client does), else ``ResponderPolicy.certificate_group``.

Methods (constants.INITIATOR_SIGNS / RESPONDER_SIGNS / XAUTH_AFTER): 3 both sign; 65005
(XAUTHInitRSA) both sign, then XAUTH; 64221 (HybridInitRSA, draft-ietf-ipsra-isakmp-
hybrid-auth) only the gateway signs, the client sends a plain HASH_I with the same
signature-mode SKEYID and is authenticated by XAUTH.  The end that will check a
certificate asks for it with a CR naming the lab CA (main mode 3 / 4, aggressive 1 / 2).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ..codec import CertPayload, IdPayload, Message, SigPayload
from ..config import GroupPolicy
from ..constants import INITIATOR_SIGNS, RESPONDER_SIGNS, AuthMethod, IdType, NotifyType
from ..errors import IkeProtocolError
from ..payloads import CertRequestPayload
from ..sa import IkeSa
from ..states import Role

if TYPE_CHECKING:
    from ..engine import EngineBase
    from ..pki import Issued

# labctl.ike.pki (cryptography's x509 and RSA) is imported where a certificate is used: a
# pre-shared-key agent never loads cryptography (~80 ms of CPU per agent process).

CERT_X509_SIGNATURE = 4  # CERT payload encoding (RFC 2408 3.9)


def uses_signature(sa: IkeSa) -> bool:
    """Both ends sign (3, 65005)."""
    return sa.negotiated.auth in INITIATOR_SIGNS


def gateway_signs(sa: IkeSa) -> bool:
    """The responder signs (3, 65005, hybrid 64221)."""
    return sa.negotiated.auth in RESPONDER_SIGNS


def is_hybrid(auth: int) -> bool:
    return auth == AuthMethod.HYBRID_INIT_RSA


def request(engine: EngineBase) -> list:
    """A CR for a certificate of the CA we trust (its subject, DER), as racoon and strongSwan
    send it; the peer may send a certificate without one, so a CR is a courtesy."""
    ca = _pki(engine, need_certificate=False)[1]
    return [CertRequestPayload(CERT_X509_SIGNATURE, ca.subject.public_bytes())]


def note_requests(sa: IkeSa, msg: Message) -> None:
    """The CAs the peer asked for (an empty CR: any); kept for status, never refused."""
    for cr in msg.find(CertRequestPayload):
        if cr.encoding != CERT_X509_SIGNATURE:
            sa.peer_cert_requests.append(f"encoding {cr.encoding}")
            continue
        if not cr.data:
            sa.peer_cert_requests.append("any CA")
            continue
        # only for a named CA: a PSK exchange without CRs never loads the certificate
        # library (cryptography: ~25 ms of a node agent's CPU, once per client)
        from .. import pki

        try:
            sa.peer_cert_requests.append(pki.parse_dn(cr.data))
        except (ValueError, IndexError):
            sa.peer_cert_requests.append(cr.data.hex())


def _pki(engine: EngineBase, need_certificate: bool = True):
    """(our certificate, the CA we trust, the wall clock) of either role."""
    settings = engine.config if engine.role is Role.INITIATOR else engine.policy  # type: ignore[attr-defined]
    if (need_certificate and settings.certificate is None) or settings.ca is None:
        raise IkeProtocolError("signature authentication without a certificate and CA")
    clock = settings.clock or (lambda: dt.datetime.now(dt.UTC))
    return settings.certificate, settings.ca, clock


def identity(engine: EngineBase) -> IdPayload:
    """Our ID: our certificate's subject as a DER name."""
    own: Issued = _pki(engine)[0]
    return IdPayload(IdType.DER_ASN1_DN, own.certificate.subject.public_bytes(), 0, 0)


def proof(engine: EngineBase, digest: bytes) -> list:
    """CERT and SIG for HASH_I / HASH_R ``digest``."""
    from .. import pki

    own: Issued = _pki(engine)[0]
    return [
        CertPayload(CERT_X509_SIGNATURE, own.certificate_der()),
        SigPayload(pki.sign_hash(own.key, digest)),
    ]


def check(engine: EngineBase, sa: IkeSa, msg: Message, ident: IdPayload, digest: bytes):
    """The peer's certificate and signature of ``digest``; its certificate on success."""
    from .. import pki

    _own, ca, clock = _pki(engine, need_certificate=False)
    certs = [c for c in msg.find(CertPayload) if c.encoding == CERT_X509_SIGNATURE]
    sig = msg.first(SigPayload)
    if not certs or sig is None:
        raise IkeProtocolError(
            "signature authentication without CERT or SIG payload",
            notify=NotifyType.PAYLOAD_MALFORMED,
        )
    claimed = ident.data if ident.id_type == IdType.DER_ASN1_DN else None
    cert, key = pki.verified_certificate(certs[0].data, ca, clock(), claimed_dn=claimed)
    if not pki.verify_hash(key, digest, sig.data):
        raise IkeProtocolError(
            f"signature does not verify with certificate '{cert.subject.rfc4514_string()}'",
            notify=NotifyType.INVALID_SIGNATURE,
        )
    sa.peer_certificate = cert.subject.rfc4514_string()
    return cert


def describe(ident: IdPayload) -> str:
    """A DN identity as text ("DER_ASN1_DN:CN=client1,OU=ciscovpn,O=labctl")."""
    if ident.id_type != IdType.DER_ASN1_DN:
        return ident.describe()
    from .. import pki  # only for a DN: a PSK peer's ID never loads cryptography

    try:
        return f"DER_ASN1_DN:{pki.parse_dn(ident.data)}"
    except (ValueError, IndexError):
        return ident.describe()


def group_for(engine: EngineBase, cert) -> GroupPolicy:
    """The tunnel group of a certificate peer: its OU, else the policy's certificate group."""
    from cryptography.x509.oid import NameOID

    policy = engine.policy  # type: ignore[attr-defined]
    units = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    for unit in units:
        if unit in policy.groups:
            return policy.groups[unit]
    if policy.certificate_group is not None:
        return policy.groups[policy.certificate_group]
    raise IkeProtocolError(
        f"no tunnel group for certificate '{cert.subject.rfc4514_string()}' (OU {units or 'none'})",
        notify=NotifyType.AUTHENTICATION_FAILED,
    )


def admit_client(
    engine: EngineBase, sa: IkeSa, msg: Message, ident: IdPayload, digest: bytes
) -> None:
    """The responder's check of a certificate client (main mode 5, aggressive mode 3): its
    certificate and signature, then its tunnel group; a refusal is the SA's last error."""
    try:
        group = group_for(engine, check(engine, sa, msg, ident, digest))
        check_group_auth(group, sa.negotiated.auth)
    except IkeProtocolError as exc:
        sa.last_error = f"client certificate refused: {exc.reason}"
        raise IkeProtocolError(sa.last_error, notify=exc.notify) from None
    sa.group, sa.group_name = group, group.name


def check_group_auth(group: GroupPolicy, auth: int) -> None:
    """The negotiated method must be the one the group's ``auth`` calls for."""
    if auth != group.accepted_auth:
        from ..proposals import auth_method_name

        raise IkeProtocolError(
            f"group '{group.name}' takes {group.auth} authentication "
            f"({auth_method_name(group.accepted_auth)}), not {auth_method_name(auth)}",
            notify=NotifyType.AUTHENTICATION_FAILED,
        )
