"""Longest-prefix match of IPv4 destinations to owners (tunnels), with a per-address cache."""

from __future__ import annotations

import ipaddress
from typing import Generic, TypeVar

Owner = TypeVar("Owner")

_CACHE_MAX = 4096  # distinct destinations remembered before the cache is reset


class PrefixTable(Generic[Owner]):
    """Maps IPv4 networks to owners; ``lookup`` takes the 4 raw destination bytes."""

    def __init__(self) -> None:
        self._by_len: dict[int, dict[int, Owner]] = {}
        self._order: list[tuple[int, int]] = []  # (prefixlen, netmask), longest first
        self._cache: dict[bytes, Owner | None] = {}

    def add(self, network: str | ipaddress.IPv4Network, owner: Owner) -> None:
        net = ipaddress.IPv4Network(network)
        table = self._by_len.setdefault(net.prefixlen, {})
        key = int(net.network_address)
        if key in table and table[key] is not owner:
            raise ValueError(f"route {net} already belongs to another tunnel")
        table[key] = owner
        self._reindex()

    def owner(self, network: str | ipaddress.IPv4Network) -> Owner | None:
        """The owner of exactly this network (no longest-prefix match)."""
        net = ipaddress.IPv4Network(network)
        return self._by_len.get(net.prefixlen, {}).get(int(net.network_address))

    def changed(self) -> None:
        """An owner's state that lookups depend on changed: forget cached answers."""
        self._cache.clear()

    def remove(self, network: str | ipaddress.IPv4Network) -> None:
        net = ipaddress.IPv4Network(network)
        table = self._by_len.get(net.prefixlen, {})
        table.pop(int(net.network_address), None)
        if not table:
            self._by_len.pop(net.prefixlen, None)
        self._reindex()

    def remove_owner(self, owner: Owner) -> None:
        for plen, table in list(self._by_len.items()):
            for key in [k for k, v in table.items() if v is owner]:
                del table[key]
            if not table:
                del self._by_len[plen]
        self._reindex()

    def _reindex(self) -> None:
        self._order = [
            (plen, (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF)
            for plen in sorted(self._by_len, reverse=True)
        ]
        self._cache.clear()

    def lookup(self, dst: bytes) -> Owner | None:
        cache = self._cache
        try:
            return cache[dst]
        except KeyError:
            pass
        addr = int.from_bytes(dst, "big")
        found = None
        for plen, mask in self._order:
            found = self._by_len[plen].get(addr & mask)
            if found is not None:
                break
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[dst] = found
        return found

    def routes(self) -> list[tuple[ipaddress.IPv4Network, Owner]]:
        return [
            (ipaddress.IPv4Network((key, plen)), owner)
            for plen, table in self._by_len.items()
            for key, owner in table.items()
        ]
