"""Settings inheritance: defaults < kinds.<kind> < groups.<group> < the node itself.

Mappings merge key by key; any other value (lists included) is replaced whole, as in
containerlab. Merged mappings keep the line of whichever layer supplied each key, so an
error in an inherited value points at the line where it was written.
"""

from __future__ import annotations

from typing import Any

from .errors import TopologyIssue
from .loader import LocatedDict


def deep_merge(base: Any, override: Any) -> Any:
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    merged = LocatedDict()
    merged.line = getattr(override, "line", 0) or getattr(base, "line", 0)
    merged.key_lines = {}
    for source in (base, override):
        for key, value in source.items():
            merged[key] = deep_merge(merged[key], value) if key in merged else value
            merged.key_lines[key] = getattr(source, "key_lines", {}).get(key, merged.line)
    return merged


def apply_inheritance(document: Any, file: Any) -> tuple[Any, list[TopologyIssue]]:
    """Return the document with every node's inherited settings merged in."""
    issues: list[TopologyIssue] = []
    topology = document.get("topology") if isinstance(document, dict) else None
    if not isinstance(topology, dict) or not isinstance(topology.get("nodes"), dict):
        return document, issues
    defaults = topology.get("defaults") or {}
    kinds = topology.get("kinds") or {}
    groups = topology.get("groups") or {}
    if not all(isinstance(x, dict) for x in (defaults, kinds, groups)):
        return document, issues  # the schema reports the wrong types

    nodes = topology["nodes"]
    for name, node in list(nodes.items()):
        if node is None:
            node = LocatedDict()
            node.line, node.key_lines = nodes.key_lines.get(name, 0), {}
        if not isinstance(node, dict):
            continue
        layers: list[Any] = [defaults]
        group_name = node.get("group", defaults.get("group"))
        group = None
        if group_name is not None:
            group = groups.get(group_name)
            if group is None:
                line = getattr(node, "key_lines", {}).get("group", getattr(node, "line", None))
                issues.append(
                    TopologyIssue(
                        file,
                        line,
                        f"topology.nodes.{name}.group",
                        f"no group {group_name!r} in topology.groups"
                        + (f" (have: {', '.join(sorted(groups))})" if groups else ""),
                    )
                )
        kind = node.get("kind", (group or {}).get("kind", defaults.get("kind")))
        if isinstance(kind, str) and isinstance(kinds.get(kind), dict):
            layers.append(kinds[kind])
        if isinstance(group, dict):
            layers.append(group)
        merged: Any = LocatedDict()
        merged.line, merged.key_lines = getattr(node, "line", 0), {}
        for layer in [*layers, node]:
            merged = deep_merge(merged, layer)
        nodes[name] = merged
    return document, issues
