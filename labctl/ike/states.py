"""The engine's states and roles as named types (never bare strings).

They are ``StrEnum``s: a value still compares equal to, prints and serialises (JSON, logs) as
the word it replaced ("done", "initiator"), so status tables, events and the agent's reports
read as before, while the code names every state it tests for.
"""

from __future__ import annotations

import enum
from enum import StrEnum


class Role(StrEnum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class Phase1State(enum.Enum):
    """Where a phase-1 exchange stands: the last message this side sent (h11-style: the
    transition table in :mod:`labctl.ike.transitions` is keyed by it)."""

    # initiator
    AM_SENT1 = "am-sent-1"
    MM_SENT1 = "mm-sent-1"
    MM_SENT3 = "mm-sent-3"
    MM_SENT5 = "mm-sent-5"
    # responder
    AM_SENT2 = "am-sent-2"
    MM_SENT2 = "mm-sent-2"
    MM_SENT4 = "mm-sent-4"
    # both
    ESTABLISHED = "established"
    DELETED = "deleted"

    # Members are compared by identity, so identity can hash them: Enum's own __hash__ is
    # Python code (hash of the name), and the transition table hashes a state per message.
    __hash__ = object.__hash__


class XauthState(StrEnum):
    """XAUTH of one phase-1 SA (draft-ietf-ipsec-isakmp-xauth-06)."""

    NONE = "none"  # not an XAUTH SA
    PENDING = "pending"  # phase 1 done, no XAUTH request yet (initiator) / request sent
    REQUESTED = "requested"  # initiator: answered a request (it may come again)
    SET_SENT = "set-sent"  # responder: told the client OK / FAIL, waiting for its ACK
    DONE = "done"
    FAILED = "failed"


# XAUTH still under way: a session removed now "abandoned" it.
XAUTH_UNDER_WAY = frozenset({XauthState.PENDING, XauthState.REQUESTED, XauthState.SET_SENT})


class ModeCfgState(StrEnum):
    """Mode-Config of one phase-1 SA."""

    NONE = "none"  # not started (or not used)
    PENDING = "pending"  # request sent / waiting for the gateway's SET
    DONE = "done"


class TransactionKind(StrEnum):
    """What a transaction exchange we started waits for; also its retransmission key's
    prefix ("xauth-ok-1a2b3c4d")."""

    XAUTH = "xauth"  # our XAUTH request: the user's REPLY
    XAUTH_OK = "xauth-ok"  # our SET status OK: the client's ACK
    XAUTH_FAIL = "xauth-fail"  # our SET status FAIL: the client's ACK
    MODECFG = "modecfg"  # a client's REQUEST (the REPLY) or a gateway's SET (the ACK)

    @property
    def stage(self) -> str:
        """The exchange stage it belongs to ("xauth", "modecfg")."""
        return "modecfg" if self is TransactionKind.MODECFG else "xauth"
