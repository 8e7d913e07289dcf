"""Building SA payloads from our proposals and choosing from a peer's.

A responder takes the FIRST transform/proposal of the initiator (in the initiator's order)
that its policy accepts, and answers with exactly that transform, attributes echoed as sent
(RFC 2409 section 5: the responder must not change them; shorter lifetimes are announced with
RESPONDER-LIFETIME instead).  Transforms the engine cannot parse or does not implement
(vpnc's Encryption=0 junk, DES, NULL, unknown attributes) are skipped, not fatal; when none
is left, the refusal says why each offer was declined.

Attributes may come in any order (vpnc sends Key-Length before the encryption algorithm in
some builds; some gateways refuse that, we never do).  Life type and duration pair up in
either order as long as the pairing is unambiguous.  An attribute this engine does not know
declines its transform (it may change the transform's meaning: a PRF, a group description),
and the next offer is considered.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .codec import Attribute, Proposal, SaPayload, Transform
from .config import Phase1Proposal, Phase2Proposal
from .constants import (
    AuthMethod,
    EncapMode,
    EspAuth,
    EspTransform,
    LifeType,
    NotifyType,
    P1Attr,
    P1Encryption,
    P1Hash,
    P2Attr,
    ProtocolId,
    name_of,
)
from .crypto import MODP_PRIMES, esp_cipher, ike_cipher
from .errors import IkeConfigError, IkeProtocolError

KEY_IKE = 1  # phase-1 transform ID

# ---------------------------------------------------------------------------------------------
# Phase 1


def phase1_transform(number: int, p: Phase1Proposal) -> Transform:
    attrs = [Attribute(P1Attr.ENCRYPTION, int(p.encryption))]
    if p.key_bits is not None and p.encryption == P1Encryption.AES_CBC:
        attrs.append(Attribute(P1Attr.KEY_LENGTH, p.key_bits))
    attrs += [
        Attribute(P1Attr.HASH, int(p.hash)),
        Attribute(P1Attr.GROUP, p.group),
        Attribute(P1Attr.AUTH_METHOD, int(p.auth)),
        Attribute(P1Attr.LIFE_TYPE, LifeType.SECONDS),
        Attribute.number(P1Attr.LIFE_DURATION, p.lifetime),
    ]
    return Transform(number, KEY_IKE, tuple(attrs))


@lru_cache(maxsize=64)  # a client's configured proposals: the same SA payload every session
def phase1_sa(proposals: tuple[Phase1Proposal, ...]) -> SaPayload:
    """One ISAKMP proposal holding one transform per offer, numbered from 1."""
    transforms = tuple(phase1_transform(i + 1, p) for i, p in enumerate(proposals))
    return SaPayload((Proposal(1, ProtocolId.ISAKMP, b"", transforms),))


@dataclass(frozen=True)
class Phase1Offer:
    """A phase-1 transform as the peer wrote it, interpreted."""

    encryption: int
    key_bits: int | None
    hash: int
    group: int
    auth: int
    life_seconds: int | None
    life_kilobytes: int | None

    def describe(self) -> str:
        bits = f"-{self.key_bits}" if self.key_bits else ""
        return (
            f"{name_of(P1Encryption, self.encryption)}{bits}/{name_of(P1Hash, self.hash)}/"
            f"group {self.group}/{name_of(AuthMethod, self.auth)}"
        ).lower()

    def matches(self, p: Phase1Proposal) -> bool:
        key_bits = self.key_bits
        if self.encryption == P1Encryption.TRIPLE_DES_CBC:
            key_bits = None
        return (
            self.encryption == p.encryption
            and key_bits == (p.key_bits if p.encryption == P1Encryption.AES_CBC else None)
            and self.hash == p.hash
            and self.group == p.group
            and self.auth == p.auth
        )


def lifetime_pairs(
    attrs: tuple[Attribute, ...], type_attr: int, dur_attr: int
) -> list[tuple[int, int]]:
    """(life type, duration) pairs, each type next to its duration in either order
    (type-duration is the norm; duration-type is unambiguous too).  Two types or two
    durations in a row cannot be paired: BAD-PROPOSAL-SYNTAX.  Durations may be of any
    width.  A type without a duration means nothing and is ignored."""
    pairs: list[tuple[int, int]] = []
    life_type: int | None = None
    duration: int | None = None
    for a in attrs:
        if a.type == type_attr:
            if life_type is not None:
                raise IkeProtocolError(
                    "two life types without a duration between",
                    notify=NotifyType.BAD_PROPOSAL_SYNTAX,
                )
            life_type = a.as_int()
        elif a.type == dur_attr:
            if duration is not None:
                raise IkeProtocolError(
                    "two life durations without a type between",
                    notify=NotifyType.BAD_PROPOSAL_SYNTAX,
                )
            duration = a.as_int()
        else:
            continue
        if life_type is not None and duration is not None:
            pairs.append((life_type, duration))
            life_type = duration = None
    if duration is not None:
        raise IkeProtocolError(
            "life duration without a life type", notify=NotifyType.BAD_PROPOSAL_SYNTAX
        )
    return pairs


def _lifetimes(attrs: tuple[Attribute, ...], type_attr: int, dur_attr: int):
    """LIFE_TYPE/LIFE_DURATION pairs -> (seconds, kilobytes)."""
    seconds = kilobytes = None
    for life_type, value in lifetime_pairs(attrs, type_attr, dur_attr):
        if life_type == LifeType.SECONDS:
            seconds = value
        elif life_type == LifeType.KILOBYTES:
            kilobytes = value
        else:
            raise IkeProtocolError(
                f"unknown life type {life_type}", notify=NotifyType.ATTRIBUTES_NOT_SUPPORTED
            )
    return seconds, kilobytes


def _single_values(
    t: Transform, known: frozenset[P1Attr] | frozenset[P2Attr], what: str
) -> dict[int, int]:
    """Every attribute but the lifetimes as a number, in any order; an unknown attribute,
    or one repeated with another value, declines the transform."""
    values: dict[int, int] = {}
    for a in t.attributes:
        if a.type not in known:
            raise IkeProtocolError(
                f"{what} attribute {a.type} not supported",
                notify=NotifyType.ATTRIBUTES_NOT_SUPPORTED,
            )
        if a.type in _LIFETIME_ATTRS[what]:
            continue
        try:
            value = a.as_int()
        except ValueError as exc:
            raise IkeProtocolError(str(exc), notify=NotifyType.BAD_PROPOSAL_SYNTAX) from None
        if values.setdefault(a.type, value) != value:
            raise IkeProtocolError(
                f"{what} attribute {a.type} given twice", notify=NotifyType.BAD_PROPOSAL_SYNTAX
            )
    return values


_LIFETIME_ATTRS = {
    "phase-1": (P1Attr.LIFE_TYPE, P1Attr.LIFE_DURATION),
    "ESP": (P2Attr.LIFE_TYPE, P2Attr.LIFE_DURATION),
}
# The attribute sets transforms are read against, built once (reading enum members off their
# class is slow on Python 3.11, and these ran ~70 times per session).
_P1_KNOWN = frozenset(
    {
        P1Attr.ENCRYPTION,
        P1Attr.HASH,
        P1Attr.AUTH_METHOD,
        P1Attr.GROUP,
        P1Attr.LIFE_TYPE,
        P1Attr.LIFE_DURATION,
        P1Attr.KEY_LENGTH,
    }
)
_P1_NEEDED = (P1Attr.ENCRYPTION, P1Attr.HASH, P1Attr.AUTH_METHOD, P1Attr.GROUP)
_ESP_KNOWN = frozenset(
    {
        P2Attr.LIFE_TYPE,
        P2Attr.LIFE_DURATION,
        P2Attr.GROUP,
        P2Attr.ENCAPSULATION,
        P2Attr.AUTH_ALGORITHM,
        P2Attr.KEY_LENGTH,
    }
)
_AUTH_ALGORITHM, _P2_KEY_LENGTH = P2Attr.AUTH_ALGORITHM, P2Attr.KEY_LENGTH
_P2_GROUP, _P2_ENCAPSULATION, _TUNNEL = P2Attr.GROUP, P2Attr.ENCAPSULATION, EncapMode.TUNNEL
_ESP_AUTHS = (EspAuth.HMAC_MD5, EspAuth.HMAC_SHA1, EspAuth.HMAC_SHA2_256)


# The two transform readers are pure functions of the transform's value (a frozen, hashable
# record), and a client offers the same transforms every session: each distinct one is read
# once (~2.5 % of a session's bytecodes).  Refusals raise every time (lru_cache keeps no
# exceptions); a peer sending endless distinct transforms only churns the bounded table.
@lru_cache(maxsize=256)
def parse_phase1_transform(t: Transform) -> Phase1Offer:
    if t.transform_id != KEY_IKE:
        raise IkeProtocolError(
            f"phase-1 transform ID {t.transform_id} is not KEY_IKE",
            notify=NotifyType.INVALID_TRANSFORM_ID,
        )
    values = _single_values(t, _P1_KNOWN, "phase-1")
    for needed in _P1_NEEDED:
        if needed not in values:
            raise IkeProtocolError(
                f"phase-1 transform lacks attribute {needed}", notify=NotifyType.BAD_PROPOSAL_SYNTAX
            )
    try:
        seconds, kilobytes = _lifetimes(t.attributes, *_LIFETIME_ATTRS["phase-1"])
    except ValueError as exc:
        raise IkeProtocolError(str(exc), notify=NotifyType.BAD_PROPOSAL_SYNTAX) from None
    return Phase1Offer(
        values[P1Attr.ENCRYPTION],
        values.get(P1Attr.KEY_LENGTH),
        values[P1Attr.HASH],
        values[P1Attr.GROUP],
        values[P1Attr.AUTH_METHOD],
        seconds,
        kilobytes,
    )


@dataclass(frozen=True)
class Phase1Choice:
    proposal_number: int
    transform: Transform  # exactly as offered
    offer: Phase1Offer
    policy: Phase1Proposal


def choose_phase1(
    sa: SaPayload, policy: tuple[Phase1Proposal, ...], *, ke_group: int | None = None
) -> Phase1Choice:
    """First acceptable initiator transform (initiator's order)."""
    if not sa.proposals:
        raise IkeProtocolError(
            "SA payload without proposals", notify=NotifyType.BAD_PROPOSAL_SYNTAX
        )
    declined = _Declined()
    for prop in sa.proposals:
        if prop.protocol != ProtocolId.ISAKMP:
            declined.add(prop.number, None, f"protocol {prop.protocol}")
            continue
        for t in prop.transforms:
            try:
                offer = parse_phase1_transform(t)
            except IkeProtocolError as exc:
                declined.add(prop.number, t.number, exc.reason)  # junk: try the next one
                continue
            if ke_group is not None and offer.group != ke_group:
                declined.add(prop.number, t.number, f"group {offer.group} but KE of another")
                continue
            for p in policy:
                if offer.matches(p):
                    return Phase1Choice(prop.number, t, offer, p)
            declined.add(prop.number, t.number, f"{offer.describe()} not in policy")
    raise IkeProtocolError(
        f"no acceptable phase-1 transform ({declined})", notify=NotifyType.NO_PROPOSAL_CHOSEN
    )


def accept_phase1_reply(
    sa: SaPayload, offered: tuple[Phase1Proposal, ...]
) -> tuple[Phase1Offer, Phase1Proposal]:
    """Initiator: check the responder chose exactly one of our transforms."""
    if len(sa.proposals) != 1 or len(sa.proposals[0].transforms) != 1:
        raise IkeProtocolError(
            "responder SA must hold one proposal with one transform",
            notify=NotifyType.BAD_PROPOSAL_SYNTAX,
        )
    offer = parse_phase1_transform(sa.proposals[0].transforms[0])
    for p in offered:
        if offer.matches(p):
            return offer, p
    raise IkeProtocolError(
        "responder chose a transform we did not offer", notify=NotifyType.NO_PROPOSAL_CHOSEN
    )


# ---------------------------------------------------------------------------------------------
# Phase 2 (ESP)


def esp_transform(number: int, p: Phase2Proposal, encap: int, lifetime: int | None = None):
    attrs = [
        Attribute(P2Attr.LIFE_TYPE, LifeType.SECONDS),
        Attribute.number(P2Attr.LIFE_DURATION, lifetime or p.lifetime),
    ]
    if p.lifetime_kb is not None:
        attrs.append(Attribute(P2Attr.LIFE_TYPE, LifeType.KILOBYTES))
        attrs.append(Attribute.number(P2Attr.LIFE_DURATION, p.lifetime_kb))
    if p.pfs_group is not None:
        attrs.append(Attribute(P2Attr.GROUP, p.pfs_group))
    attrs.append(Attribute(P2Attr.ENCAPSULATION, encap))
    attrs.append(Attribute(P2Attr.AUTH_ALGORITHM, int(p.auth)))
    if p.key_bits is not None and p.transform == EspTransform.AES_CBC:
        attrs.append(Attribute(P2Attr.KEY_LENGTH, p.key_bits))
    return Transform(1, int(p.transform), tuple(attrs))


def phase2_sa(proposals: tuple[Phase2Proposal, ...], spi: bytes, encap: int) -> SaPayload:
    """One single-transform ESP proposal per offer, all with our inbound SPI (like vpnc)."""
    return SaPayload(
        tuple(
            Proposal(i + 1, ProtocolId.ESP, spi, (_offered_transform(p, encap),))
            for i, p in enumerate(proposals)
        )
    )


@lru_cache(maxsize=256)  # the configured offers: the same transforms every quick mode
def _offered_transform(p: Phase2Proposal, encap: int) -> Transform:
    return esp_transform(1, p, encap)


@dataclass(frozen=True)
class EspOffer:
    transform: int
    key_bits: int | None
    auth: int
    encapsulation: int
    pfs_group: int | None
    life_seconds: int | None
    life_kilobytes: int | None

    def matches(self, p: Phase2Proposal) -> bool:
        key_bits = None if self.transform == EspTransform.TRIPLE_DES else self.key_bits
        want_bits = p.key_bits if p.transform == EspTransform.AES_CBC else None
        return (
            self.transform == p.transform
            and key_bits == want_bits
            and self.auth == p.auth
            and self.pfs_group == p.pfs_group
        )


@lru_cache(maxsize=256)  # (see parse_phase1_transform)
def parse_esp_transform(t: Transform) -> EspOffer:
    values = _single_values(t, _ESP_KNOWN, "ESP")
    auth = values.get(_AUTH_ALGORITHM)
    if auth is None:
        raise IkeProtocolError(
            "ESP transform without authentication algorithm", notify=NotifyType.BAD_PROPOSAL_SYNTAX
        )
    try:
        esp_cipher(t.transform_id, values.get(_P2_KEY_LENGTH))
    except IkeConfigError as exc:
        raise IkeProtocolError(str(exc), notify=NotifyType.INVALID_TRANSFORM_ID) from None
    if auth not in _ESP_AUTHS:
        raise IkeProtocolError(
            f"ESP auth {auth} unsupported",
            notify=NotifyType.ATTRIBUTES_NOT_SUPPORTED,
        )
    group = values.get(_P2_GROUP)
    if group is not None and group not in MODP_PRIMES:
        raise IkeProtocolError(
            f"PFS group {group} unsupported", notify=NotifyType.ATTRIBUTES_NOT_SUPPORTED
        )
    try:
        seconds, kilobytes = _lifetimes(t.attributes, *_LIFETIME_ATTRS["ESP"])
    except ValueError as exc:
        raise IkeProtocolError(str(exc), notify=NotifyType.BAD_PROPOSAL_SYNTAX) from None
    return EspOffer(
        t.transform_id,
        values.get(_P2_KEY_LENGTH),
        auth,
        values.get(_P2_ENCAPSULATION, _TUNNEL),
        group,
        seconds,
        kilobytes,
    )


@dataclass(frozen=True)
class EspChoice:
    proposal: Proposal  # as offered (the initiator's SPI is proposal.spi)
    transform: Transform  # as offered
    offer: EspOffer
    policy: Phase2Proposal


def choose_esp(
    sa: SaPayload, policy: tuple[Phase2Proposal, ...], encap_ok: tuple[int, ...]
) -> EspChoice:
    if not sa.proposals:
        raise IkeProtocolError(
            "SA payload without proposals", notify=NotifyType.BAD_PROPOSAL_SYNTAX
        )
    numbers = [p.number for p in sa.proposals]
    declined = _Declined()
    for prop in sa.proposals:
        # Several proposals with one number form a bundle (ESP+AH, ESP+IPComp): unsupported.
        if numbers.count(prop.number) != 1 or prop.protocol != ProtocolId.ESP:
            declined.add(prop.number, None, f"protocol {prop.protocol} or a bundle")
            continue
        if len(prop.spi) != 4 or prop.spi == bytes(4):
            declined.add(prop.number, None, f"SPI of {len(prop.spi)} bytes")
            continue
        for t in prop.transforms:
            try:
                offer = parse_esp_transform(t)
            except IkeProtocolError as exc:
                declined.add(prop.number, t.number, exc.reason)
                continue
            if offer.encapsulation not in encap_ok:
                declined.add(prop.number, t.number, f"encapsulation {offer.encapsulation}")
                continue
            for p in policy:
                if offer.matches(p):
                    return EspChoice(prop, t, offer, p)
            declined.add(prop.number, t.number, "not in policy")
    raise IkeProtocolError(
        f"no acceptable ESP proposal ({declined})", notify=NotifyType.NO_PROPOSAL_CHOSEN
    )


class _Declined:
    """Why each offer was declined, for the refusal's text (the first few, then a count)."""

    SHOWN = 4

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def add(self, proposal: int, transform: int | None, reason: str) -> None:
        where = f"#{proposal}" if transform is None else f"#{proposal}.{transform}"
        self.reasons.append(f"{where}: {reason}")

    def __str__(self) -> str:
        shown = "; ".join(self.reasons[: self.SHOWN])
        more = len(self.reasons) - self.SHOWN
        return f"{shown}; {more} more" if more > 0 else shown or "nothing offered"


def accept_esp_reply(
    sa: SaPayload, offered: tuple[Phase2Proposal, ...], encap: int
) -> tuple[Proposal, EspOffer, Phase2Proposal]:
    if len(sa.proposals) != 1 or len(sa.proposals[0].transforms) != 1:
        raise IkeProtocolError(
            "responder SA must hold one proposal with one transform",
            notify=NotifyType.BAD_PROPOSAL_SYNTAX,
        )
    prop = sa.proposals[0]
    if prop.protocol != ProtocolId.ESP or len(prop.spi) != 4 or prop.spi == bytes(4):
        raise IkeProtocolError(
            "responder chose a non-ESP proposal or a bad SPI", notify=NotifyType.INVALID_SPI
        )
    offer = parse_esp_transform(prop.transforms[0])
    if offer.encapsulation != encap:
        raise IkeProtocolError(
            f"responder chose encapsulation {offer.encapsulation}, we offered {encap}",
            notify=NotifyType.NO_PROPOSAL_CHOSEN,
        )
    for p in offered:
        if offer.matches(p):
            return prop, offer, p
    raise IkeProtocolError(
        "responder chose an ESP transform we did not offer", notify=NotifyType.NO_PROPOSAL_CHOSEN
    )


def auth_method_name(auth: int) -> str:
    try:
        return AuthMethod(auth).name.lower()
    except ValueError:
        return str(auth)


def hash_is_supported(hash_id: int) -> bool:
    return hash_id in (P1Hash.MD5, P1Hash.SHA1, P1Hash.SHA2_256)


def cipher_for(offer: Phase1Offer):
    return ike_cipher(offer.encryption, offer.key_bits)
