"""Rendering node configuration from the lab model (Jinja2 templates per kind)."""

from .render import CONFIG_DIR, NodeConfig, RenderedFile, render_node, vpn_agent_config

__all__ = ["CONFIG_DIR", "NodeConfig", "RenderedFile", "render_node", "vpn_agent_config"]
