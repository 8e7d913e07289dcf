"""Read what vpnc prints with ``--debug 3`` / ``--debug 99``.

vpnc's hex_dump() prints ``   name: xxxxxxxx xxxx`` for up to 16 bytes, otherwise ``   name:``
followed by lines of 4-byte hex groups.  Its phase-2 parser prints ``expected_hash`` and
``h->u.hash.data`` for every encrypted message it receives (vpnc computes the check but never
enforces it), preceded by the header dump with ``exchange_type``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAMED = re.compile(r"^ {3}([A-Za-z_>\-.\s]+?):(?: (.*))?$")
_HEX_LINE = re.compile(r"^ {3}([0-9a-f]{2,8}(?: [0-9a-f]{2,8})*)\s*$")


def dumps(text: str) -> list[tuple[str, bytes]]:
    """Every (name, bytes) hex dump, in order of appearance."""
    return [(name, value) for name, value, _ in _dumps(text)]


def _dumps(text: str) -> list[tuple[str, bytes, int]]:
    """(name, bytes, line number) of every hex dump."""
    out: list[tuple[str, bytes, int]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i
        m = _NAMED.match(lines[i])
        if m:
            name, rest = m.group(1).strip(), (m.group(2) or "").strip()
            chunks = []
            if rest and re.fullmatch(r"[0-9a-f]{2,8}(?: [0-9a-f]{2,8})*", rest):
                chunks.append(rest)
            elif not rest:
                j = i + 1
                while j < len(lines) and _HEX_LINE.match(lines[j]):
                    chunks.append(lines[j].strip())
                    j += 1
                i = j - 1
            digits = "".join(chunks).replace(" ", "")
            if digits and len(digits) % 2 == 0:
                out.append((name, bytes.fromhex(digits), start))
        i += 1
    return out


def first(text: str, name: str) -> bytes:
    for n, value in dumps(text):
        if n == name:
            return value
    raise KeyError(f"vpnc log has no '{name}' dump")


@dataclass(frozen=True)
class HashCheck:
    exchange_type: int
    expected: bytes
    received: bytes

    @property
    def ok(self) -> bool:
        return self.expected == self.received


_EXCHANGE = re.compile(r"^ {3}exchange_type: ([0-9a-f]{2})")


def hash_checks(text: str) -> list[HashCheck]:
    """vpnc's phase-2 hash computations for every encrypted message it parsed, each tagged
    with the exchange type printed last before it."""
    lines = text.splitlines()
    exchange_at = {
        i: int(m.group(1), 16) for i, line in enumerate(lines) if (m := _EXCHANGE.match(line))
    }
    checks = []
    pending: tuple[bytes, int] | None = None
    for name, value, line in _dumps(text):
        if name == "expected_hash":
            pending = (value, line)
        elif name == "h->u.hash.data" and pending is not None:
            before = [i for i in exchange_at if i < pending[1]]
            exchange = exchange_at[max(before)] if before else -1
            checks.append(HashCheck(exchange, pending[0], value))
            pending = None
    return checks
