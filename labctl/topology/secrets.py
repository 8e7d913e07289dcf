"""Keeping secret values out of everything labctl prints or writes on the host.

Secret fields are masked wherever labctl describes them itself. As a last line of defence,
every secret value the process has seen is remembered here, and texts that may carry
arbitrary exception messages (JUnit, progress lines, crash reports) pass through
`redact()` before they leave the process.
"""

from __future__ import annotations

MASK = "********"
# Shorter values are not redacted in free text: replacing every "ab" would garble messages
# without protecting anything (a 3-character PSK is guessed, not leaked).
MIN_REDACTED_LENGTH = 4

_known: set[str] = set()


def remember_secret(value: str) -> str:
    """Note a secret value so redact() can find it later; returns the value."""
    if len(value) >= MIN_REDACTED_LENGTH and value.strip("*"):  # a dumped mask is no secret
        _known.add(value)
        # A secret often shows up quoted by repr() (escapes included).
        _known.add(repr(value)[1:-1])
    return value


def redact(text: str) -> str:
    """`text` with every remembered secret value replaced by the mask."""
    for value in sorted(_known, key=len, reverse=True):  # longest first: no partial leftovers
        if value in text:
            text = text.replace(value, MASK)
    return text


def forget_secrets() -> None:
    """Forget every remembered value (one process running many labs, e.g. a test session)."""
    _known.clear()
