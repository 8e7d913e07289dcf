"""Cisco IKE fragmentation (IKEv1, proprietary; also in strongSwan and racoon): a phase-1
message too big for one datagram -- typically one carrying certificates, whose IP fragments a
NAT device may drop -- travels as several small ISAKMP messages, each holding one fragment
payload (type 132) of the original message's bytes.

Wire format of one fragment (the facts: racoon's isakmp_frag.c, strongSwan's
fragment_payload.c, Wireshark's ISAKMP dissector):

    ISAKMP header    the SA's cookies, next payload 132, the original's exchange type,
                     flags 0, message ID 0, length of this datagram
    payload header   next payload 0, reserved 0, payload length (8 + data)
    fragment ID      2 bytes (the same for every fragment of one message)
    fragment number  1 byte, from 1
    flags            1 byte, 0x01 = last fragment
    data             the next bytes of the whole original message (header included)

Support is announced by the vendor ID MD5("FRAGMENTATION") followed by capability flags
(racoon's isakmp_frag.h: 0x80000000 for identity protection = main mode, and the same bit
for aggressive mode; 0x40000000 for base mode; Cisco sends c0000000, charon 80000000).  Only phase-1
messages are fragmented.  Reassembly is bounded: fragment count, total size, time, and
the number of messages being reassembled at once.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field

from .codec import Header
from .constants import HEADER_LEN, ISAKMP_VERSION, ExchangeType, NotifyType, PayloadType
from .errors import IkeDecodeError

FRAGMENT_PAYLOAD = PayloadType.CISCO_FRAGMENT  # 132
_FRAG_HDR = struct.Struct("!BBHHBB")  # next, reserved, length, fragment ID, number, flags
FRAG_HEADER_LEN = _FRAG_HDR.size  # 8
LAST_FRAGMENT = 0x01
CAP_MAIN_MODE = 0x80000000  # racoon's VENDORID_FRAG_IDENT
CAP_AGGRESSIVE = 0x80000000  # VENDORID_FRAG_AGG: the same bit
CAP_BASE_MODE = 0x40000000  # VENDORID_FRAG_BASE (base mode, which we do not speak)
PHASE1_EXCHANGES = (ExchangeType.MAIN, ExchangeType.AGGRESSIVE)

# Reassembly limits: a Cisco client's certificate chain is a few kB; nobody needs more.
MAX_FRAGMENTS = 16
MAX_MESSAGE = 64 * 1024
REASSEMBLY_TIMEOUT = 30.0
MAX_PENDING = 64  # messages being reassembled at once (oldest dropped first)
MIN_FRAGMENT_SIZE = HEADER_LEN + FRAG_HEADER_LEN + 64  # smaller would be silly


def _bad(offset: int, reason: str, **kwargs) -> IkeDecodeError:
    return IkeDecodeError(offset, f"IKE fragment: {reason}", payload=FRAGMENT_PAYLOAD, **kwargs)


@dataclass(frozen=True)
class Fragment:
    header: Header
    fragment_id: int
    number: int
    last: bool
    data: bytes


def decode_fragment(data: bytes, header: Header) -> Fragment:
    """One fragment datagram (its header already decoded) -> its fields, strictly."""
    body = data[HEADER_LEN:]
    if len(body) < FRAG_HEADER_LEN + 1:
        raise _bad(HEADER_LEN, f"fragment payload of {len(body)} bytes is too short")
    nxt, _reserved, length, fragment_id, number, flags = _FRAG_HDR.unpack_from(body, 0)
    if nxt != 0:
        raise _bad(HEADER_LEN, f"fragment payload followed by payload {nxt}")
    if length != len(body):
        raise _bad(
            HEADER_LEN + 2,
            f"fragment payload length {length} differs from the {len(body)} bytes left",
            notify=NotifyType.UNEQUAL_PAYLOAD_LENGTHS,
        )
    if number == 0:
        raise _bad(HEADER_LEN + 6, "fragment number 0 (they count from 1)")
    if header.exchange not in PHASE1_EXCHANGES:
        raise _bad(
            18, f"fragment of exchange {header.exchange}: only phase-1 messages are fragmented"
        )
    return Fragment(
        header, fragment_id, number, bool(flags & LAST_FRAGMENT), body[FRAG_HEADER_LEN:]
    )


def split(message: bytes, max_size: int, fragment_id: int) -> list[bytes]:
    """``message`` (a whole ISAKMP message) as fragment datagrams of at most ``max_size``
    bytes each; a message that fits is returned as it is."""
    if len(message) <= max_size:
        return [message]
    if max_size < MIN_FRAGMENT_SIZE:
        raise ValueError(f"fragment size {max_size} is below {MIN_FRAGMENT_SIZE}")
    chunk = max_size - HEADER_LEN - FRAG_HEADER_LEN
    pieces = [message[i : i + chunk] for i in range(0, len(message), chunk)]
    if len(pieces) > MAX_FRAGMENTS:
        raise ValueError(f"{len(message)} bytes need {len(pieces)} fragments (max {MAX_FRAGMENTS})")
    icookie, rcookie = message[:8], message[8:16]
    exchange = message[18]
    out = []
    for number, piece in enumerate(pieces, start=1):
        flags = LAST_FRAGMENT if number == len(pieces) else 0
        length = HEADER_LEN + FRAG_HEADER_LEN + len(piece)
        header = Header(
            icookie, rcookie, FRAGMENT_PAYLOAD, exchange, 0, 0, length, ISAKMP_VERSION
        ).encode()
        payload = _FRAG_HDR.pack(0, 0, FRAG_HEADER_LEN + len(piece), fragment_id, number, flags)
        out.append(header + payload + piece)
    return out


@dataclass
class _Pending:
    started: float
    pieces: dict[int, bytes] = field(default_factory=dict)
    last: int | None = None  # the number of the fragment flagged last
    size: int = 0


class ReassemblyError(IkeDecodeError):
    """A fragment that breaks the limits or contradicts the others: the whole message is
    dropped (its fragments so far are forgotten)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(offset, f"IKE fragment: {reason}", payload=FRAGMENT_PAYLOAD)


class Reassembler:
    """Collects fragments per (peer, cookies, fragment ID) until a message is whole."""

    def __init__(
        self,
        *,
        max_fragments: int = MAX_FRAGMENTS,
        max_message: int = MAX_MESSAGE,
        timeout: float = REASSEMBLY_TIMEOUT,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.max_fragments = max_fragments
        self.max_message = max_message
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: OrderedDict[tuple, _Pending] = OrderedDict()
        self.completed_count = 0  # fragments of the message add() completed last

    def __len__(self) -> int:
        return len(self._pending)

    def expire(self, now: float) -> list[tuple[tuple, int]]:
        """Forget messages whose fragments stopped coming: [(key, fragments held)]."""
        gone = []
        for key, p in list(self._pending.items()):
            if now - p.started >= self.timeout:
                del self._pending[key]
                gone.append((key, len(p.pieces)))
        return gone

    def add(self, frag: Fragment, remote: tuple[str, int], now: float) -> bytes | None:
        """Add one fragment; the whole message once every fragment is in, else None."""
        key = (remote, frag.header.icookie, frag.header.rcookie, frag.fragment_id)
        p = self._pending.get(key)
        if p is None:
            while len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
            p = self._pending[key] = _Pending(now)
        try:
            self._check(p, frag)
        except ReassemblyError:
            del self._pending[key]
            raise
        if frag.number in p.pieces:
            return None  # a retransmitted fragment: nothing new
        p.pieces[frag.number] = frag.data
        p.size += len(frag.data)
        if frag.last:
            p.last = frag.number
        if p.last is None or len(p.pieces) != p.last:
            return None
        del self._pending[key]
        self.completed_count = p.last
        return b"".join(p.pieces[n] for n in range(1, p.last + 1))

    def _check(self, p: _Pending, frag: Fragment) -> None:
        if frag.number > self.max_fragments:
            raise ReassemblyError(
                HEADER_LEN + 6, f"fragment number {frag.number} over the limit {self.max_fragments}"
            )
        if frag.last and p.last is not None and p.last != frag.number:
            raise ReassemblyError(
                HEADER_LEN + 7, f"two last fragments ({p.last} and {frag.number})"
            )
        last = frag.number if frag.last else p.last
        if last is not None and any(n > last for n in (*p.pieces, frag.number)):
            raise ReassemblyError(HEADER_LEN + 6, f"a fragment numbered after the last ({last})")
        old = p.pieces.get(frag.number)
        if old is not None and old != frag.data:
            raise ReassemblyError(HEADER_LEN + 8, f"fragment {frag.number} arrived twice, changed")
        if old is None and p.size + len(frag.data) > self.max_message:
            raise ReassemblyError(
                HEADER_LEN, f"fragments of over {self.max_message} bytes in all (limit)"
            )
