"""Security-association state shared by both roles: the phase-1 SA with its keys and IV
bookkeeping, the ESP child SAs, pending retransmissions and the reply cache.

IV rules (RFC 2409 appendix B, as vpnc and strongSwan implement them):

* the first encrypted phase-1 message uses hash(g^xi | g^xr); later phase-1 messages chain on
  the previous message's last ciphertext block; the last block of the final phase-1 message
  is kept as ``p1_last``;
* a quick-mode / transaction exchange starts at hash(p1_last | M-ID) and chains within the
  M-ID;
* every informational message uses hash(p1_last | M-ID) afresh and never changes anything.

Decryption never changes state: it returns the IV the exchange would move to and the caller
commits it (:meth:`IkeSa.commit_iv`) only after the message authenticated.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from .codec import (
    GENERIC_HEADER,
    HEADER_STRUCT,
    EncryptedMessage,
    HashPayload,
    Message,
    Payload,
    decode_plaintext_body,
    encode_chain,
)
from .config import GroupPolicy, LanToLanPolicy, Phase1Proposal, Phase2Proposal
from .constants import HEADER_LEN, ISAKMP_VERSION, ExchangeType, Flag, NotifyType, PayloadType
from .crypto import (
    CbcCipher,
    CipherSpec,
    DhKeyPair,
    hash_len,
    random_bytes,
    same_digest,
)
from .encapsulation import Encapsulation
from .errors import DropCategory, IkeDecodeError, IkeProtocolError
from .events import Endpoint, SaHandle
from .keys import Phase1Keys, exchange_iv
from .modecfg import ModeConfig
from .proposals import Phase1Offer
from .states import ModeCfgState, Phase1State, Role, TransactionKind, XauthState
from .vendor import NO_VENDOR_INFO, NattVersion, PeerVendorInfo

REPLY_CACHE_SIZE = 6
_HDR_PACK = HEADER_STRUCT.pack
# Enum members read on every message, as plain module constants: on Python 3.11 reading a
# member off its class goes through EnumType.__getattr__'s slow path (~0.2 us each, ~450
# reads per session).
_INFORMATIONAL = int(ExchangeType.INFORMATIONAL)
_ENCRYPTION = int(Flag.ENCRYPTION)
_HASH = int(PayloadType.HASH)
_ESTABLISHED = Phase1State.ESTABLISHED
_SUPPORTED_EXCHANGES = frozenset(
    int(x)
    for x in (
        ExchangeType.AGGRESSIVE,
        ExchangeType.MAIN,
        ExchangeType.INFORMATIONAL,
        ExchangeType.TRANSACTION,
        ExchangeType.QUICK,
    )
)
_GEN_PACK = GENERIC_HEADER.pack
DONE_MSGID_MEMORY = 512
_NEVER = float("inf")


def random_message_id() -> int:
    """A fresh message ID for a phase-2 exchange (never 0: that is phase 1's)."""
    while True:
        mid = int.from_bytes(random_bytes(4), "big")
        if mid:
            return mid


def random_cookie() -> bytes:
    """A fresh cookie (never all zeros: that means "not known yet")."""
    while True:
        c = random_bytes(8)
        if c != bytes(8):
            return c


@dataclass
class Retransmit:
    """A request waiting for its answer; resent to the SA's current peer endpoint."""

    key: str  # "am1", "qm-1a2b3c4d", "modecfg-1a2b3c4d", ...: the request and its M-ID
    data: bytes
    next_at: float
    interval: float
    left: int
    stage: str
    started: float

    def waiting_for(self, role: Role) -> str:
        """What it waits for, in words ("Mode-Config reply", "main mode message 4")."""
        prefix = self.key.rsplit("-", 1)[0] if "-" in self.key else self.key
        if prefix == TransactionKind.MODECFG:  # a client's REQUEST, or a gateway's SET
            if role is Role.INITIATOR:
                return "Mode-Config reply"
            return "Mode-Config acknowledgement"
        return _WAITING_FOR.get(prefix, self.key)


# What an unanswered request waits for, by the key of its retransmission (prefix).
_WAITING_FOR = {
    "am1": "aggressive mode message 2",
    "am3": "XAUTH request (after aggressive mode message 3)",
    "mm1": "main mode message 2",
    "mm3": "main mode message 4",
    "mm5": "main mode message 6",
    "qm": "quick mode reply",
    TransactionKind.XAUTH: "XAUTH reply",
    TransactionKind.XAUTH_OK: "XAUTH acknowledgement",
    TransactionKind.XAUTH_FAIL: "XAUTH acknowledgement",
}


@dataclass
class ChildSa:
    """An ESP SA pair negotiated by one quick mode."""

    inbound_spi: int
    outbound_spi: int
    message_id: int
    encryption: str
    integrity: str
    encapsulation: Encapsulation
    local_ts: IPv4Network
    remote_ts: IPv4Network
    lifetime: int
    lifetime_kb: int | None
    established: float
    expires_at: float
    rekey_at: float | None
    pfs_group: int | None
    proposal: Phase2Proposal | None = field(repr=False, default=None)  # for rekeys
    delete_at: float | None = None  # set when replaced: old SA lingers a grace period
    rekeying: bool = False
    enc_key_in: bytes = field(default=b"", repr=False)
    auth_key_in: bytes = field(default=b"", repr=False)
    enc_key_out: bytes = field(default=b"", repr=False)
    auth_key_out: bytes = field(default=b"", repr=False)


@dataclass
class QuickState:
    """A quick mode in flight (either role)."""

    message_id: int
    ni_b: bytes = field(repr=False)
    nr_b: bytes = field(default=b"", repr=False)
    dh: DhKeyPair | None = field(default=None, repr=False)
    my_spi: bytes = b""
    local_ts: IPv4Network | None = None
    remote_ts: IPv4Network | None = None
    started: float = 0.0
    # responder: the child waiting for HASH(3); initiator: what it offered
    pending_child: ChildSa | None = None
    encap: int = 1
    rekey_of: int | None = None
    offered: tuple[Phase2Proposal, ...] = ()
    deadline: float | None = None  # give up waiting for the peer at this time


@dataclass(eq=False, repr=False, slots=True)
class IkeSa:
    """One phase-1 SA and everything hanging off it.  Compared by identity; no repr of its
    keys (repr shows who and where only)."""

    role: Role
    icookie: bytes
    rcookie: bytes
    mode: str  # "aggressive" | "main"
    local: Endpoint  # where we answer from / to: the latest authenticated endpoints
    remote: Endpoint
    created: float
    first_local: Endpoint = field(init=False)  # where the first message went / came from
    first_remote: Endpoint = field(init=False)
    last_rx: float = field(init=False)
    state: Phase1State | None = None
    # negotiation material
    sai_b: bytes = b""
    hash_id: int = 0
    cipher: CipherSpec | None = None
    offer: Phase1Offer | None = None  # the transform as negotiated
    chosen: Phase1Proposal | None = None  # our proposal it matched
    dh: DhKeyPair | None = None
    gxi: bytes = b""
    gxr: bytes = b""
    ni_b: bytes = b""
    nr_b: bytes = b""
    idi_b: bytes = b""
    idr_b: bytes = b""
    peer_id: str = ""
    keys: Phase1Keys | None = None
    cbc: tuple[Phase1Keys, CbcCipher] | None = field(default=None, repr=False)  # keys' CBC
    p1_iv: bytes = b""
    p1_last: bytes = b""
    ivs: dict[int, bytes] = field(default_factory=dict)
    # NAT traversal
    natt: NattVersion | None = None
    natd_draft: bool = False
    local_behind_nat: bool = False
    remote_behind_nat: bool = False
    floated: bool = False
    peer_vendor: PeerVendorInfo = NO_VENDOR_INFO  # immutable: one shared "nothing announced"
    fragment_id: int = 0  # of the last message we sent as Cisco IKE fragments
    peer_certificate: str | None = None  # subject of the certificate the peer proved
    peer_cert_requests: list[str] = field(default_factory=list)  # CAs its CRs named
    cisco_udp_port: int | None = None
    tcp: bool = False  # IPsec over TCP: this SA and its children ride one TCP connection
    # who and what
    group_name: str | None = None
    group: GroupPolicy | None = None  # responder: the tunnel group it authenticated with
    lan_to_lan: LanToLanPolicy | None = None  # responder: the LAN-to-LAN entry of the peer
    user: str | None = None
    xauth: XauthState = XauthState.NONE
    xauth_attempts: int = 0
    xauth_ok: bool = False
    modecfg_state: ModeCfgState = ModeCfgState.NONE
    mode_config: ModeConfig | None = None
    peer_app_version: str | None = None
    initial_contact: bool = False
    replaces: SaHandle | None = None
    replaced_by: SaHandle | None = None
    lifetime_notified: bool = False
    # lifetimes
    lifetime: int = 0
    established_at: float | None = None
    expires_at: float | None = None
    rekey_at: float | None = None
    rekey_started: bool = False
    # children and exchanges
    children: dict[int, ChildSa] = field(default_factory=dict)
    quick: dict[int, QuickState] = field(default_factory=dict)
    transactions: dict[int, TransactionKind] = field(default_factory=dict)  # by M-ID
    retransmits: dict[str, Retransmit] = field(default_factory=dict)
    reply_cache: OrderedDict[bytes, tuple[bytes, ...]] = field(default_factory=OrderedDict)
    done_msgids: OrderedDict[int, None] = field(default_factory=OrderedDict)
    deadline_for_msg: float | None = None  # half-open / exchange timeout
    # dead peer detection / keepalives
    dpd_seq: int = 0
    dpd_pending: int | None = None
    dpd_sent_at: float = 0.0
    dpd_tries: int = 0
    next_heartbeat: float | None = None
    dpd_idle: float | None = None
    dpd_retry: float = 5.0
    last_error: str | None = None
    scheduled: float | None = field(default=None, repr=False)  # the engine's timer heap
    cached_handle: SaHandle | None = field(default=None, repr=False)  # see handle

    def __post_init__(self) -> None:
        self.first_local = self.local
        self.first_remote = self.remote
        self.last_rx = self.created

    def __repr__(self) -> str:
        return (
            f"IkeSa({self.role}, {self.handle}, {self.mode}, {self.state}, "
            f"{self.remote[0]}:{self.remote[1]})"
        )

    # -- identity ------------------------------------------------------------------------------

    @property
    def handle(self) -> SaHandle:
        # made once per pair of cookies (asked for ~13 times per session; the initiator
        # learns the responder's cookie from message 2, hence the check)
        h = self.cached_handle
        if h is None or h.rcookie is not self.rcookie or h.icookie is not self.icookie:
            h = self.cached_handle = SaHandle(self.icookie, self.rcookie)
        return h

    @property
    def key(self) -> tuple[bytes, bytes]:
        return (self.icookie, self.rcookie)

    @property
    def isakmp_spi(self) -> bytes:
        """This SA's SPI in notifies and deletes: both cookies."""
        return self.icookie + self.rcookie

    @property
    def negotiated(self) -> Phase1Offer:
        """The phase-1 transform once chosen; asked for earlier, the message is out of order."""
        if self.offer is None:
            raise IkeProtocolError("phase-1 transform not negotiated yet")
        return self.offer

    @property
    def keyed(self) -> Phase1Keys:
        """The phase-1 keys once derived; asked for earlier, the message is out of order."""
        if self.keys is None:
            raise IkeProtocolError("phase-1 keys not derived yet")
        return self.keys

    @property
    def established(self) -> bool:
        return self.state is _ESTABLISHED

    # -- bookkeeping ---------------------------------------------------------------------------

    def remember_reply(self, request: bytes, replies: tuple[bytes, ...]) -> None:
        self.reply_cache[request] = replies
        self.reply_cache.move_to_end(request)
        while len(self.reply_cache) > REPLY_CACHE_SIZE:
            self.reply_cache.popitem(last=False)

    def mark_done(self, message_id: int) -> None:
        self.done_msgids[message_id] = None
        while len(self.done_msgids) > DONE_MSGID_MEMORY:
            self.done_msgids.popitem(last=False)

    def next_deadline(self) -> float | None:
        # the earliest of the SA's timers, without building a list (once per message); a
        # timer at infinity never fires, so it reads as none
        best = _NEVER
        for r in self.retransmits.values():
            best = r.next_at if r.next_at < best else best
        for t in (self.deadline_for_msg, self.expires_at, self.next_heartbeat):
            if t is not None and t < best:
                best = t
        if self.rekey_at is not None and not self.rekey_started and self.rekey_at < best:
            best = self.rekey_at
        if self.state is _ESTABLISHED and self.dpd_idle is not None:
            if self.dpd_pending is not None:
                best = min(best, self.dpd_sent_at + self.dpd_retry)
            else:
                best = min(best, self.last_rx + self.dpd_idle)
        for q in self.quick.values():
            if q.deadline is not None and q.deadline < best:
                best = q.deadline
        for c in self.children.values():
            best = c.expires_at if c.expires_at < best else best
            if c.delete_at is not None and c.delete_at < best:
                best = c.delete_at
            if c.rekey_at is not None and not c.rekeying and c.rekey_at < best:
                best = c.rekey_at
        return None if best == _NEVER else best

    # -- encryption ----------------------------------------------------------------------------

    def _iv_for(self, exchange: int, message_id: int) -> bytes:
        assert self.keys is not None and self.cipher is not None
        if message_id == 0 and not self._late_informational(exchange):
            return self.p1_iv
        if exchange == _INFORMATIONAL:
            # before phase 1 completes (a refusal of message 5): the running phase-1 IV
            base = self.p1_last or self.p1_iv
            return exchange_iv(self.hash_id, base, message_id, self.cipher.block_size)
        iv = self.ivs.get(message_id)
        if iv is None:
            iv = exchange_iv(self.hash_id, self.p1_last, message_id, self.cipher.block_size)
        return iv

    def encrypt(
        self, exchange: int, message_id: int, payloads: tuple[Payload, ...] | list[Payload]
    ) -> bytes:
        """Build, pad (RFC 2409 section 5.3: zeros, last byte = number of zero bytes,
        always at least one byte) and encrypt a message; advance the IV chain."""
        first = payloads[0].payload_type if payloads else 0
        return self._encrypt_chain(exchange, message_id, first, encode_chain(payloads))

    def _encrypt_chain(self, exchange: int, message_id: int, first: int, chain: bytes) -> bytes:
        assert self.keys is not None and self.cipher is not None
        bs = self.cipher.block_size
        pad = bs - (len(chain) % bs)
        chain += bytes(pad - 1) + bytes((pad - 1,))
        iv = self._iv_for(exchange, message_id)
        ciphertext = self._cbc().encrypt(iv, chain)
        header = _HDR_PACK(
            self.icookie,
            self.rcookie,
            first,
            ISAKMP_VERSION,
            exchange,
            _ENCRYPTION,
            message_id,
            HEADER_LEN + len(ciphertext),
        )
        self._advance(exchange, message_id, ciphertext[-bs:])
        return header + ciphertext

    def _cbc(self) -> CbcCipher:
        """The CBC contexts of the current keys (made once per key)."""
        assert self.keys is not None and self.cipher is not None
        if self.cbc is None or self.cbc[0] is not self.keys:
            self.cbc = (self.keys, CbcCipher(self.cipher, self.keys.enc_key))
        return self.cbc[1]

    def _late_informational(self, exchange: int) -> bool:
        """An informational on an established SA is phase 2 even with M-ID 0: Debian's vpnc
        draws its Delete's M-ID as ONE random byte (a uint8_t), so 1 in 256 is 0, and derives
        its IV as for any other M-ID, hash(p1_last | 0)."""
        return exchange == _INFORMATIONAL and self.state is _ESTABLISHED

    def _advance(self, exchange: int, message_id: int, last_block: bytes) -> None:
        if message_id == 0 and not self._late_informational(exchange):
            self.p1_iv = last_block
        elif exchange != _INFORMATIONAL:
            self.ivs[message_id] = last_block

    def decrypt(self, msg: EncryptedMessage) -> tuple[Message, bytes]:
        """Decrypt and parse; returns the message and the IV to commit once it checks out."""
        if self.keys is None or self.cipher is None:
            raise IkeProtocolError("encrypted message before keys exist")
        header = msg.header
        if header.exchange not in _SUPPORTED_EXCHANGES:
            raise IkeProtocolError(
                f"unsupported exchange type {header.exchange}",
                notify=NotifyType.UNSUPPORTED_EXCHANGE_TYPE,
            )
        bs = self.cipher.block_size
        if len(msg.ciphertext) == 0 or len(msg.ciphertext) % bs:
            raise IkeDecodeError(
                HEADER_LEN,
                f"encrypted body of {len(msg.ciphertext)} bytes is not a multiple of {bs}",
            )
        iv = self._iv_for(header.exchange, header.message_id)
        plaintext = self._cbc().decrypt(iv, msg.ciphertext)
        try:
            message = decode_plaintext_body(header, plaintext)
        except IkeDecodeError as exc:
            if exc.offset >= HEADER_LEN + 4:
                raise  # the chain started well: a malformed message from a keyed peer
            # The very first payload header is garbage: wrong keys or IV (CBC garbles the
            # first block then), or a corrupted body.
            raise IkeDecodeError(
                exc.offset,
                f"garbage after decryption ({exc.reason})",
                notify=exc.notify,
                payload=exc.payload,
                category=DropCategory.UNDECRYPTABLE,
            ) from None
        return message, msg.ciphertext[-bs:]

    def commit_iv(self, message: Message, last_block: bytes) -> None:
        self._advance(message.exchange, message.message_id, last_block)

    # -- phase-2 hashes ------------------------------------------------------------------------

    def protected(
        self,
        exchange: int,
        message_id: int,
        payloads: list[Payload],
        *,
        prefix: bytes = b"",
    ) -> bytes:
        """Encrypt ``HASH | payloads`` with HASH = prf(SKEYID_a, M-ID | prefix | payloads).
        ``prefix`` is Ni_b for quick-mode HASH(2)."""
        assert self.keys is not None
        chain = encode_chain(payloads)  # once: hashed, then sent after the HASH payload
        digest = self.keys.prf_a(message_id.to_bytes(4, "big"), prefix, chain)
        first = payloads[0].payload_type if payloads else 0
        hash_payload = _GEN_PACK(first, 0, len(digest) + 4) + digest
        return self._encrypt_chain(exchange, message_id, _HASH, hash_payload + chain)

    def check_hash(self, message: Message, *, prefix: bytes = b"", allow_empty: bool = False):
        """Verify HASH(1)/HASH(2)-style protection of a decrypted phase-2 message."""
        assert self.keys is not None
        if not message.payloads or not isinstance(message.payloads[0], HashPayload):
            raise IkeProtocolError(
                "phase-2 message does not start with HASH",
                notify=NotifyType.INVALID_HASH_INFORMATION,
            )
        received = message.payloads[0].data
        if len(received) != hash_len(self.hash_id):
            raise IkeProtocolError(
                f"HASH of {len(received)} bytes", notify=NotifyType.INVALID_HASH_INFORMATION
            )
        mid = message.message_id.to_bytes(4, "big")
        if len(message.payloads) == 1:
            rest = b""
        else:
            rest = message.raw[message.spans[1][0] : message.spans[-1][1]]
        expected = self.keys.prf_a(mid, prefix, rest)
        if same_digest(expected, received):
            return
        if allow_empty and len(message.payloads) == 1:
            # vpnc's keepalive form: prf(SKEYID_a, 0x00 | M-ID)
            alt = self.keys.prf_a(b"\x00", mid)
            if same_digest(alt, received):
                return
        raise IkeProtocolError("phase-2 HASH mismatch", notify=NotifyType.INVALID_HASH_INFORMATION)
