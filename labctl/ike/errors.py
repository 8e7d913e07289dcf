"""Exceptions raised by the IKE engine.

Only these types ever leave the codec when it is fed untrusted bytes; the engine's packet
entry points catch them, count them and turn them into events.  Messages never contain key
material, passwords or pre-shared keys.

Every error carries a ``category``: why the message was dropped, in words an operator can
count (``vpn stats``) and a flood can be summarised by (the agent's event log rate-limits per
peer and category):

* ``malformed``        -- the bytes are not a well-formed ISAKMP message (or a mandatory
  payload is missing);
* ``undecryptable``    -- an encrypted body that does not decrypt to a payload chain (wrong
  keys or IV, corruption);
* ``unauthenticated``  -- a HASH / authentication check failed;
* ``unexpected``       -- well formed, but not expected now (unknown SA, wrong state,
  replay, another transport);
* ``refused``          -- refused by policy (too many half-open SAs, a disabled transport).
"""

from __future__ import annotations

from enum import StrEnum

from .constants import NotifyType


class DropCategory(StrEnum):
    MALFORMED = "malformed"
    UNDECRYPTABLE = "undecryptable"
    UNAUTHENTICATED = "unauthenticated"
    UNEXPECTED = "unexpected"
    REFUSED = "refused"


DROP_CATEGORIES = tuple(c.value for c in DropCategory)

# RFC 2408 notify types that say which category an IkeProtocolError belongs to.
_HASH_OR_AUTH = (NotifyType.INVALID_HASH_INFORMATION, NotifyType.AUTHENTICATION_FAILED)


class IkeError(Exception):
    """Base class of every error the IKE engine raises on purpose."""

    category = DropCategory.UNEXPECTED


class IkeDecodeError(IkeError):
    """Bytes that are not a well-formed ISAKMP message (or part of one).

    ``offset`` is the byte offset, relative to the start of the buffer handed to the decoder
    (the ISAKMP header for a whole message), where the problem was found; ``payload`` the
    payload type being decoded there, when known.
    """

    def __init__(
        self,
        offset: int,
        reason: str,
        *,
        notify: int = NotifyType.PAYLOAD_MALFORMED,
        payload: int | None = None,
        category: DropCategory = DropCategory.MALFORMED,
    ) -> None:
        self.offset = offset
        self.reason = reason
        # The RFC 2408 notify type that best describes the problem.
        self.notify = notify
        self.payload = payload
        self.category = category
        super().__init__(f"offset {offset}: {reason}")


class IkeProtocolError(IkeError):
    """A well-formed message that breaks the protocol (wrong state, bad hash, no proposal...).

    ``notify`` is the RFC 2408 notify message type a peer would be told, when one applies;
    the category follows from it unless given (PAYLOAD-MALFORMED: a mandatory payload is
    missing or unusable -> malformed; a hash or authentication failure -> unauthenticated).
    """

    def __init__(
        self, reason: str, *, notify: int | None = None, category: DropCategory | None = None
    ) -> None:
        self.reason = reason
        self.notify = notify
        if category is None:
            if notify == NotifyType.PAYLOAD_MALFORMED:
                category = DropCategory.MALFORMED
            elif notify in _HASH_OR_AUTH:
                category = DropCategory.UNAUTHENTICATED
            else:
                category = DropCategory.UNEXPECTED
        self.category = category
        super().__init__(reason)


class IkeConfigError(IkeError, ValueError):
    """An invalid engine configuration (policy, initiator settings)."""
