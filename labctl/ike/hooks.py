"""Decisions only the agent can make, asked synchronously by the responder.

The engine calls these from inside ``receive``/``tick``; they must not block.  Simple
in-memory implementations (:class:`StaticUsers`, :class:`AddressPool`, :class:`SimpleHooks`)
are provided for tests, benchmarks and small labs; the agent may supply its own object with
the same three methods.
"""

from __future__ import annotations

import heapq
import hmac
import ipaddress
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from .events import Endpoint, SaHandle
from .modecfg import ModeConfig


@dataclass(frozen=True)
class XauthRequest:
    """A user's answer to the XAUTH prompt.  The password never appears in repr()."""

    handle: SaHandle
    group: str
    user: str
    password: bytes = field(repr=False)
    peer: Endpoint
    attempt: int


@dataclass(frozen=True)
class Refused:
    """assign_address's answer when a new session may not start for a reason other than
    an empty pool (a concurrent-session limit): the reason, logged and sent nowhere."""

    reason: str


@dataclass(frozen=True)
class SessionContext:
    """Who a Mode-Config request (or an address release) is about."""

    handle: SaHandle
    group: str
    user: str | None
    peer: Endpoint
    peer_app_version: str | None = None


class ResponderHooks(Protocol):
    def authenticate(self, request: XauthRequest) -> bool: ...

    def assign_address(self, ctx: SessionContext) -> ModeConfig | Refused | None:
        """Address (and any per-user settings) for this session, None when the pool is
        exhausted, Refused when the session may not start at all."""
        ...

    def release_address(self, ctx: SessionContext, config: ModeConfig) -> None: ...


class StaticUsers:
    """User name -> password table (lab use).  Comparison is constant-time."""

    def __init__(self, users: dict[str, str | bytes]) -> None:
        self._users = {u: p.encode() if isinstance(p, str) else p for u, p in users.items()}

    def __repr__(self) -> str:
        return f"StaticUsers({sorted(self._users)})"

    def check(self, user: str, password: bytes) -> bool:
        expected = self._users.get(user)
        return expected is not None and hmac.compare_digest(expected, password)


class AddressPool:
    """Hands out addresses from a range; one address per (group, user, peer IP) at a time."""

    def __init__(self, first: str, last: str, netmask: str = "255.255.255.255") -> None:
        self._first = int(IPv4Address(first))
        self._last = int(IPv4Address(last))
        if self._last < self._first:
            raise ValueError("address pool: last address before first")
        self.netmask = IPv4Address(netmask)
        self._by_handle: dict[SaHandle, IPv4Address] = {}
        self._in_use: set[int] = set()
        # Lowest free address first, without scanning the range per client (O(n) each, a
        # connect storm of n clients O(n^2)): addresses never handed out start at _fresh;
        # released ones below it wait in a heap (entries taken meanwhile are skipped).
        self._fresh = self._first
        self._released: list[int] = []

    def allocate(self, handle: SaHandle) -> IPv4Address | None:
        if handle in self._by_handle:
            return self._by_handle[handle]
        while self._released:
            value = heapq.heappop(self._released)
            if value not in self._in_use:
                return self._take(handle, value)
        if self._fresh > self._last:
            return None
        self._fresh += 1
        return self._take(handle, self._fresh - 1)

    def _take(self, handle: SaHandle, value: int) -> IPv4Address:
        self._in_use.add(value)
        addr = IPv4Address(value)
        self._by_handle[handle] = addr
        return addr

    def release(self, handle: SaHandle) -> None:
        addr = self._by_handle.pop(handle, None)
        if addr is not None:
            self._in_use.discard(int(addr))
            heapq.heappush(self._released, int(addr))

    @property
    def in_use(self) -> dict[SaHandle, IPv4Address]:
        return dict(self._by_handle)


class SimpleHooks:
    """StaticUsers + AddressPool + fixed extra settings: enough for the seed lab."""

    def __init__(
        self,
        users: dict[str, str | bytes],
        pool: AddressPool,
        extra: ModeConfig | None = None,
    ) -> None:
        self.users = StaticUsers(users)
        self.pool = pool
        self.extra = extra or ModeConfig()
        self.released: list[IPv4Address] = []

    def authenticate(self, request: XauthRequest) -> bool:
        return self.users.check(request.user, request.password)

    def assign_address(self, ctx: SessionContext) -> ModeConfig | None:
        addr = self.pool.allocate(ctx.handle)
        if addr is None:
            return None
        return self.extra.with_address(addr, self.pool.netmask)

    def release_address(self, ctx: SessionContext, config: ModeConfig) -> None:
        if config.address is not None:
            self.released.append(config.address)
        self.pool.release(ctx.handle)


def parse_network(text: str) -> IPv4Network:
    return ipaddress.IPv4Network(text, strict=False)
