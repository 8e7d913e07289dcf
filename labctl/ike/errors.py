"""Exceptions raised by the IKE engine.

Only these types ever leave the codec when it is fed untrusted bytes; the engine's packet
entry points catch them, count them and turn them into events.  Messages never contain key
material, passwords or pre-shared keys.
"""

from __future__ import annotations


class IkeError(Exception):
    """Base class of every error the IKE engine raises on purpose."""


class IkeDecodeError(IkeError):
    """Bytes that are not a well-formed ISAKMP message (or part of one).

    ``offset`` is the byte offset, relative to the start of the buffer handed to the decoder
    (the ISAKMP header for a whole message), where the problem was found.
    """

    def __init__(self, offset: int, reason: str, *, notify: int = 16) -> None:
        self.offset = offset
        self.reason = reason
        # The RFC 2408 notify type that best describes the problem (16 = PAYLOAD-MALFORMED).
        self.notify = notify
        super().__init__(f"offset {offset}: {reason}")


class IkeProtocolError(IkeError):
    """A well-formed message that breaks the protocol (wrong state, bad hash, no proposal...).

    ``notify`` is the RFC 2408 notify message type a peer would be told, when one applies.
    """

    def __init__(self, reason: str, *, notify: int | None = None) -> None:
        self.reason = reason
        self.notify = notify
        super().__init__(reason)


class IkeConfigError(IkeError, ValueError):
    """An invalid engine configuration (policy, initiator settings)."""
