"""The concentrator's address pool: each address to one session at a time."""

from __future__ import annotations

from ipaddress import IPv4Address


class PoolExhausted(Exception):
    pass


class AddressPool:
    def __init__(self, first: IPv4Address, last: IPv4Address):
        if int(last) < int(first):
            raise ValueError(f"pool {first}-{last} ends before it starts")
        self.first, self.last = first, last
        self._owners: dict[IPv4Address, str] = {}

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __contains__(self, address: IPv4Address) -> bool:
        return int(self.first) <= int(address) <= int(self.last)

    def allocate(self, owner: str, preferred: IPv4Address | None = None) -> IPv4Address:
        """The lowest free address, as a VPN 3000 hands them out; ``preferred`` wins when
        it is free (a reconnecting user keeps the address it had)."""
        if preferred is not None and preferred in self and preferred not in self._owners:
            self._owners[preferred] = owner
            return preferred
        for value in range(int(self.first), int(self.last) + 1):
            candidate = IPv4Address(value)
            if candidate not in self._owners:
                self._owners[candidate] = owner
                return candidate
        raise PoolExhausted(f"address pool {self.first}-{self.last} is exhausted")

    def release(self, address: IPv4Address) -> str | None:
        return self._owners.pop(address, None)

    def owner(self, address: IPv4Address) -> str | None:
        return self._owners.get(address)

    def in_use(self) -> dict[IPv4Address, str]:
        return dict(self._owners)
