"""THE transition table of the engine, h11-style: which step handles a received message,
as data.  Keyed by (role, the SA's phase-1 state, exchange type, kind of message); the
steps live in :mod:`labctl.ike.exchanges`, one module per exchange holding both roles.

A message with no entry is refused with the error this module names (a drop, never an
exception out of ``receive``).  The roles' routing (which SA a message belongs to, its
transport, retransmissions) runs before the table: :meth:`EngineBase.receive`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .codec import EncryptedMessage, Header, Message
from .constants import ExchangeType, NotifyType
from .errors import IkeProtocolError
from .events import Endpoint
from .exchanges import aggressive, informational, main_mode, quick_mode, transaction
from .sa import IkeSa
from .states import Phase1State, Role

if TYPE_CHECKING:
    from .engine import EngineBase
    from .events import Collector


class MessageKind(enum.Enum):
    PLAIN = "plain"  # not encrypted: phase-1 messages before the keys, unauthenticated notifies
    PHASE1 = "phase1"  # encrypted with message ID 0: the last phase-1 messages
    PHASE2 = "phase2"  # encrypted with its own message ID: everything after phase 1

    __hash__ = object.__hash__  # as Phase1State's: identity, in C (a table key per message)


@dataclass(slots=True)
class Inbound:
    """One received message as every step sees it (h11's "event")."""

    data: bytes  # the datagram / record as received (the reply cache's key)
    remote: Endpoint
    local: Endpoint
    now: float
    tcp: bool  # it came on an IPsec-over-TCP connection
    header: Header = None  # type: ignore[assignment]  # decoded first thing by receive()
    sa: IkeSa | None = None  # the SA it belongs to, once known (drop reports, timers)


# A step: (engine, output, SA or None for a first message, message, inbound) -> the new
# SA for a first message (None when refused), else None.
Step = Callable[[Any, "Collector", Any, Any, Inbound], "IkeSa | None"]

INI, RESP = Role.INITIATOR, Role.RESPONDER
S = Phase1State
X = ExchangeType
PLAIN, PHASE1, PHASE2 = MessageKind.PLAIN, MessageKind.PHASE1, MessageKind.PHASE2
ANY_STATE = "any state"  # an entry for every SA this engine holds (never for a new one)

TRANSITIONS: dict[tuple[Role, Phase1State | str | None, int, MessageKind], Step] = {
    # aggressive mode
    (INI, S.AM_SENT1, X.AGGRESSIVE, PLAIN): aggressive.initiator_msg2,
    (RESP, None, X.AGGRESSIVE, PLAIN): aggressive.responder_msg1,
    (RESP, S.AM_SENT2, X.AGGRESSIVE, PHASE1): aggressive.responder_msg3,
    # main mode
    (INI, S.MM_SENT1, X.MAIN, PLAIN): main_mode.initiator_msg2,
    (INI, S.MM_SENT3, X.MAIN, PLAIN): main_mode.initiator_msg4,
    (INI, S.MM_SENT5, X.MAIN, PHASE1): main_mode.initiator_msg6,
    (RESP, None, X.MAIN, PLAIN): main_mode.responder_msg1,
    (RESP, S.MM_SENT2, X.MAIN, PLAIN): main_mode.responder_msg3,
    (RESP, S.MM_SENT4, X.MAIN, PHASE1): main_mode.responder_msg5,
    # XAUTH and Mode-Config
    (INI, S.ESTABLISHED, X.TRANSACTION, PHASE2): transaction.initiator_receive,
    (RESP, S.ESTABLISHED, X.TRANSACTION, PHASE2): transaction.responder_receive,
    # quick mode
    (INI, S.ESTABLISHED, X.QUICK, PHASE2): quick_mode.receive,  # either end may start one
    (RESP, S.ESTABLISHED, X.QUICK, PHASE2): quick_mode.receive,
    # informational: DPD, delete, notify
    (INI, S.ESTABLISHED, X.INFORMATIONAL, PHASE2): informational.receive,
    (RESP, S.ESTABLISHED, X.INFORMATIONAL, PHASE2): informational.receive,
    # M-ID 0 after phase 1: vpnc's one-byte Delete M-ID (sa.IkeSa._late_informational)
    (INI, S.ESTABLISHED, X.INFORMATIONAL, PHASE1): informational.receive,
    (RESP, S.ESTABLISHED, X.INFORMATIONAL, PHASE1): informational.receive,
    (INI, S.MM_SENT5, X.INFORMATIONAL, PHASE2): informational.phase1_refused,
    (RESP, S.AM_SENT2, X.INFORMATIONAL, PHASE2): informational.phase1_refused,
    (INI, S.AM_SENT1, X.INFORMATIONAL, PLAIN): informational.gateway_refused,
    (INI, S.MM_SENT1, X.INFORMATIONAL, PLAIN): informational.gateway_refused,
    (INI, ANY_STATE, X.INFORMATIONAL, PLAIN): informational.report_plain,
    (RESP, ANY_STATE, X.INFORMATIONAL, PLAIN): informational.report_plain,
}

_WAITING_FOR_MESSAGE_2 = (S.AM_SENT1, S.MM_SENT1)


def kind_of(msg: Message | EncryptedMessage) -> tuple[MessageKind, int]:
    """What kind of message, and its exchange type."""
    if isinstance(msg, Message):
        return PLAIN, msg.exchange
    return (PHASE1 if msg.header.message_id == 0 else PHASE2), msg.header.exchange


def step_for(role: Role, sa: IkeSa | None, msg: Message | EncryptedMessage) -> Step:
    """The step for ``msg`` on ``sa`` (None: a first message), or the refusal."""
    kind, exchange = kind_of(msg)
    state = sa.state if sa is not None else None
    step = TRANSITIONS.get((role, state, exchange, kind))
    if step is None and sa is not None:
        step = TRANSITIONS.get((role, ANY_STATE, exchange, kind))
    if step is None:
        raise no_transition(state, exchange, kind)
    return step


def no_transition(state: Phase1State | None, exchange: int, kind: MessageKind) -> IkeProtocolError:
    """Why a message has no step, in the words (and notify) a peer would be told."""
    if state is None:
        return IkeProtocolError(
            f"exchange {exchange} cannot start a phase-1 SA",
            notify=NotifyType.INVALID_EXCHANGE_TYPE,
        )
    if state in _WAITING_FOR_MESSAGE_2:
        return IkeProtocolError(
            f"unexpected exchange {exchange} in {state}", notify=NotifyType.INVALID_EXCHANGE_TYPE
        )
    if kind is PLAIN:
        return IkeProtocolError("unexpected unencrypted message", notify=NotifyType.INVALID_FLAGS)
    if state is not S.ESTABLISHED:
        return IkeProtocolError(f"exchange {exchange} before phase 1 completed")
    if kind is PHASE1:
        return IkeProtocolError("phase-2 message with M-ID 0", notify=NotifyType.INVALID_MESSAGE_ID)
    return IkeProtocolError(
        f"unsupported exchange type {exchange}", notify=NotifyType.UNSUPPORTED_EXCHANGE_TYPE
    )


def dispatch(
    engine: EngineBase, out: Collector, sa: IkeSa | None, msg: Message | EncryptedMessage, rx
) -> IkeSa | None:
    return step_for(engine.role, sa, msg)(engine, out, sa, msg, rx)
