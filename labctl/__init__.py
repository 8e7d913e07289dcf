"""labctl: reproducible VPN/NAT network labs in containers."""

__version__ = "0.1.0"
