"""The JSON Schema of topology files, for editors (yaml-language-server and friends)."""

from __future__ import annotations

import json
from typing import Any

from .model import LabFile

SCHEMA_ID = "https://labctl.dev/schema/topology.json"


# Sections that also accept a one-line string form (see the model's before-validators).
_SHORT_FORMS = {
    "InterfaceConfig": {"type": "string", "description": "address/prefix, e.g. 10.10.10.2/24"},
    "Route": {
        "type": "string",
        "pattern": "^\\S+\\s+via\\s+\\S+$",
        "description": "'default via 10.10.10.1' or '10.0.0.0/8 via 10.10.10.1'",
    },
}
_SECRET_FORMS = [
    {"type": "string"},
    {
        "type": "object",
        "properties": {"env": {"type": "string"}},
        "required": ["env"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {"file": {"type": "string"}},
        "required": ["file"],
        "additionalProperties": False,
    },
]


def _widen(node: Any) -> None:
    """Let secrets be given as env/file references wherever the model accepts them."""
    if isinstance(node, dict):
        if node.get("format") == "password":
            description = node.get("description")
            node.clear()
            node["anyOf"] = _SECRET_FORMS
            if description:
                node["description"] = description
            return
        for value in node.values():
            _widen(value)
    elif isinstance(node, list):
        for value in node:
            _widen(value)


# A name with one range {FIRST..LAST} stands for one copy per number (topology/patterns.py).
PATTERN_NAME = r"^[a-z0-9_{}+.-]*\{[0-9]+\.\.[0-9]+\}[a-z0-9_{}+.-]*$"
_PATTERN_HELP = "a pattern: one copy per number of the range, e.g. client{1..200}"


def _allow_patterns(schema: dict[str, Any]) -> None:
    """Node names and link names may be patterns (expanded before validation)."""
    definitions = schema.get("$defs", {})
    nodes = definitions.get("Topology", {}).get("properties", {}).get("nodes", {})
    named = nodes.get("patternProperties", {})
    if len(named) == 1:
        node_schema = next(iter(named.values()))
        named[PATTERN_NAME] = {**node_schema, "description": _PATTERN_HELP}
    link_name = definitions.get("Link", {}).get("properties", {}).get("name", {})
    if "anyOf" in link_name:
        link_name["anyOf"].insert(
            0, {"type": "string", "pattern": PATTERN_NAME, "description": _PATTERN_HELP}
        )


def topology_schema() -> dict[str, Any]:
    schema = LabFile.model_json_schema(by_alias=True, mode="validation")
    for name, short in _SHORT_FORMS.items():
        if name in schema.get("$defs", {}):
            schema["$defs"][name] = {"anyOf": [short, schema["$defs"][name]]}
    _widen(schema)
    _allow_patterns(schema)
    # A node may inherit any field from defaults/kinds/groups, so only the file-level
    # sections keep their required lists; labctl validate checks completeness after merging.
    for name, definition in schema.get("$defs", {}).items():
        if name not in ("Topology", "Link"):
            definition.pop("required", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "labctl topology"
    return schema


def topology_schema_text() -> str:
    return json.dumps(topology_schema(), indent=2, sort_keys=True) + "\n"
