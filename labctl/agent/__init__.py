"""Daemons that run inside VPN nodes: event loop, TUN, ESP data plane (IKE agent on top)."""
