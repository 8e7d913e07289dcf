"""Pushing rendered configuration into a running node and reloading its service."""

from __future__ import annotations

from ..render import render_node
from ..wiring import pid_netns_path, write_sysctls
from .session import LabHandle


def push_node(handle: LabHandle, node: str) -> list[str]:
    """Install the node's rendered files and run its reload commands; return what ran."""
    config = render_node(handle.lab, node)
    session = handle.session(node)
    for rendered in config.files:
        session.put_file(rendered.path, rendered.content, rendered.mode)
    if config.host_sysctls:
        write_sysctls(pid_netns_path(handle.nodes[node].pid), config.host_sysctls)
    for command in config.reload_commands:
        session.run(command).check()
    return [f.path for f in config.files] + list(config.reload_commands)
