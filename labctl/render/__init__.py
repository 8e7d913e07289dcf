"""Rendering node configuration from the lab model (each kind renders its own files)."""

from .render import CONFIG_DIR, NodeConfig, RenderedFile, render_node, vpn_agent_config

__all__ = ["CONFIG_DIR", "NodeConfig", "RenderedFile", "render_node", "vpn_agent_config"]
