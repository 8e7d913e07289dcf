"""IPv4 conversions on the per-message paths, cached.

``ipaddress`` parses text octet by octet (~5 % of a session in bench_ike: NAT-D hashes,
quick-mode traffic selectors, ID payloads), yet a lab sees few distinct addresses: each
conversion is done once per value.  The objects are immutable values, so sharing one is
safe; errors are not cached (they are raised again for the next caller).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network

from .constants import IdType

_SIZE = 4096  # a fleet of 1000 clients, each a few addresses


def canonical_ipv4(text: object) -> bytes | None:
    """``text`` in network byte order if it is an IPv4 address in canonical dotted-quad form
    (four decimal octets 0..255, no leading zeros, nothing else), else None: then the caller
    asks ``ipaddress`` (its rules, its errors).  A few C calls instead of ipaddress's
    octet-by-octet parse: each client brings new addresses, so caches do not hit."""
    try:
        packed = bytes(map(int, text.split(".")))  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return None
    # the round trip refuses what int() forgives: signs, blanks, "_", leading zeros, non-ASCII
    if len(packed) == 4 and ".".join(map(str, packed)) == text:
        return packed
    return None


@lru_cache(maxsize=_SIZE)
def host_network(address: str | IPv4Address) -> IPv4Network:
    """``address``/32 (``IPv4Network(address)``)."""
    packed = canonical_ipv4(address)
    if packed is not None:
        return IPv4Network((int.from_bytes(packed, "big"), 32))
    return IPv4Network(address)


@lru_cache(maxsize=_SIZE)
def packed_ip(ip: str) -> bytes:
    """The address in network byte order (IPv4 or IPv6 text)."""
    return canonical_ipv4(ip) or ipaddress.ip_address(ip).packed


@lru_cache(maxsize=_SIZE)
def id_network(id_type: int, data: bytes) -> IPv4Network | None:
    """IPv4 address / subnet / range identity data as a network (ranges must be a CIDR;
    a non-contiguous netmask is none), else None."""
    try:
        # (integer, prefix) tuples: parsing "a.b.c.d/m.m.m.m" text was ~1/10 of a session
        if id_type == IdType.IPV4_ADDR and len(data) == 4:
            return IPv4Network((int.from_bytes(data, "big"), 32))
        if id_type == IdType.IPV4_ADDR_SUBNET and len(data) == 8:
            hosts = ~int.from_bytes(data[4:], "big") & 0xFFFFFFFF
            if hosts & (hosts + 1):
                raise ValueError("netmask is not contiguous")
            prefix = 32 - hosts.bit_length()
            addr = int.from_bytes(data[:4], "big")
            return IPv4Network((addr, prefix), strict=False)
        if id_type == IdType.IPV4_ADDR_RANGE and len(data) == 8:
            first = IPv4Address(data[:4])
            last = IPv4Address(data[4:])
            nets = list(ipaddress.summarize_address_range(first, last))
            return nets[0] if len(nets) == 1 else None
    except ValueError:
        return None
    return None
