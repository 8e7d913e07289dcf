"""The transaction exchange (ISAKMP exchange 6, draft-dukes-ike-mode-cfg): HASH plus one
attribute payload; REQUEST / REPLY or SET / ACK, matched by message ID.  It carries XAUTH
(:mod:`.xauth`) and Mode-Config (:mod:`.mode_config`); this module checks a message and
routes it to the step that expects it -- by what we wait for on that message ID, and by
the message's attribute payload type.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from ..attributes import Attribute
from ..codec import AttributePayload, EncryptedMessage, Message
from ..constants import CfgAttr, CfgType, ExchangeType, NotifyType
from ..crypto import random_bytes
from ..errors import IkeProtocolError
from ..events import Collector
from ..sa import IkeSa, random_message_id
from ..states import TransactionKind
from . import mode_config, xauth

if TYPE_CHECKING:
    from ..engine import EngineBase
    from ..initiator import Initiator
    from ..responder import Responder
    from ..transitions import Inbound

EXCHANGE = ExchangeType.TRANSACTION


@cache  # built on first use: xauth and mode_config import this module too
def _responder_answers() -> dict[tuple[TransactionKind, int], Callable]:
    """Responder: (what we wait for, the answer's type) -> the step that takes it."""
    return {
        (TransactionKind.XAUTH, CfgType.REPLY): xauth.responder_reply,
        (TransactionKind.XAUTH_OK, CfgType.ACK): xauth.responder_ok_acked,
        (TransactionKind.XAUTH_FAIL, CfgType.ACK): xauth.responder_fail_acked,
        (TransactionKind.MODECFG, CfgType.ACK): mode_config.responder_set_acked,
    }


def start(
    engine: EngineBase,
    out: Collector,
    sa: IkeSa,
    cfg_type: int,
    attrs: list[Attribute] | tuple[Attribute, ...],
    kind: TransactionKind,
    now: float,
    identifier: int | None = None,
) -> bytes:
    """Send a REQUEST / SET (resent until answered); returns the message."""
    mid = random_message_id()
    if identifier is None:
        identifier = int.from_bytes(random_bytes(2), "big") or 1
    payload = AttributePayload(cfg_type, identifier, tuple(attrs))
    data = sa.protected(EXCHANGE, mid, [payload])
    sa.transactions[mid] = kind
    engine._request(out, sa, f"{kind}-{mid:08x}", data, kind.stage, now)
    return data


def answer(engine: EngineBase, out: Collector, sa: IkeSa, rx: Inbound, reply: AttributePayload):
    """Answer the peer's REQUEST / SET (the same answer again if it is repeated)."""
    mid = rx.header.message_id
    data = sa.protected(EXCHANGE, mid, [reply])
    sa.mark_done(mid)
    engine._send(out, sa, data)
    sa.remember_reply(rx.data, (data,))


def settled(engine: EngineBase, sa: IkeSa, mid: int, kind: TransactionKind) -> None:
    """One of ours got its answer: stop resending it, never accept that M-ID again."""
    engine._answered(sa, f"{kind}-{mid:08x}")
    del sa.transactions[mid]
    sa.mark_done(mid)


def _open(sa: IkeSa, enc: EncryptedMessage) -> tuple[Message, bytes, AttributePayload]:
    """Decrypt and check a transaction message: HASH(1), not a replay, HASH + one ATTR."""
    msg, last = sa.decrypt(enc)
    sa.check_hash(msg)
    if msg.message_id in sa.done_msgids:
        raise IkeProtocolError(f"replayed transaction M-ID {msg.message_id:08x}")
    attr = msg.first(AttributePayload)
    if attr is None or len(msg.payloads) != 2:
        raise IkeProtocolError(
            "transaction message must be HASH + one ATTR", notify=NotifyType.PAYLOAD_MALFORMED
        )
    return msg, last, attr


def initiator_receive(ini: Initiator, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx):
    msg, last, attr = _open(sa, enc)
    mid = msg.message_id
    pending = sa.transactions.get(mid)
    cfg_type = attr.cfg_type
    if pending is not None and cfg_type != CfgType.REPLY:
        raise IkeProtocolError(
            f"expected REPLY, got cfg type {cfg_type}", notify=NotifyType.PAYLOAD_MALFORMED
        )
    if pending is None and cfg_type not in (CfgType.REQUEST, CfgType.SET):
        raise IkeProtocolError(
            f"unexpected cfg type {cfg_type}", notify=NotifyType.PAYLOAD_MALFORMED
        )
    sa.commit_iv(msg, last)
    sa.last_rx = rx.now
    ini._answered(sa, "am3")  # any transaction means aggressive-mode message 3 arrived
    if pending is not None:  # our Mode-Config REQUEST's REPLY
        settled(ini, sa, mid, pending)
        mode_config.initiator_reply(ini, out, sa, attr, rx)
    elif cfg_type == CfgType.REQUEST:
        xauth.initiator_request(ini, out, sa, attr, rx)
    elif attr.attr(CfgAttr.XAUTH_STATUS) is not None:
        xauth.initiator_status(ini, out, sa, attr, rx)
    else:
        mode_config.initiator_set(ini, out, sa, attr, rx)


def responder_receive(resp: Responder, out: Collector, sa: IkeSa, enc: EncryptedMessage, rx):
    msg, last, attr = _open(sa, enc)
    mid = msg.message_id
    pending = sa.transactions.get(mid)
    if pending is None and attr.cfg_type != CfgType.REQUEST:
        raise IkeProtocolError(
            f"unexpected transaction type {attr.cfg_type}", notify=NotifyType.PAYLOAD_MALFORMED
        )
    sa.commit_iv(msg, last)
    sa.last_rx = rx.now
    resp._authenticated(out, sa, rx)
    if pending is None:
        mode_config.responder_request(resp, out, sa, attr, rx)
        return
    step = _responder_answers().get((pending, attr.cfg_type))
    if step is None:
        raise IkeProtocolError(
            f"transaction {pending}: unexpected cfg type {attr.cfg_type}",
            notify=NotifyType.PAYLOAD_MALFORMED,
        )
    settled(resp, sa, mid, pending)
    step(resp, out, sa, attr, rx)
