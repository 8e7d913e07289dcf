"""Daemons that run inside VPN nodes: event loop, TUN, ESP data plane (IKE agent on top)."""

from . import dataclass_cache

# In a vpn image: the dataclass methods its build compiled, before any module defines a
# class (most of an agent's import otherwise). Elsewhere there is no such file: no change.
dataclass_cache.use()
