"""`labctl test --matrix`: a topology's cases for every gateway x client implementation.

Each combination sets `implementation:` on every concentrator (the gateway) and every
vpn-client of the topology, then validates the result like any topology file. A
combination whose file does not validate -- a setting that implementation cannot express,
say IPsec over TCP on strongSwan -- is "not applicable", with the validate errors as the
reason: reported and counted apart, never run, never failed. Case names carry the
combination (`expect [gw=strongswan client=vpnc]`), so JUnit tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from ..kinds.registry import spec_of
from ..topology import Lab, TopologyError, load_lab_text
from ..topology.files import MAX_TOPOLOGY_BYTES, decode_text, read_limited

GATEWAY_KIND = "concentrator"
CLIENT_KIND = "vpn-client"


@dataclass(frozen=True)
class Variant:
    """One combination of a topology: its lab, or why it is not applicable."""

    label: str  # "gw=ours client=vpnc"
    lab: Lab | None
    not_applicable: str | None = None


def implementations(kind: str) -> tuple[str, ...]:
    return tuple(i.name for i in spec_of(kind).implementations)


def _nodes(data: Any) -> dict[str, Any]:
    """The file's nodes, or none when it is not shaped like a topology (the lab loader,
    which every variant goes through, then says what is wrong)."""
    topology = data.get("topology") if isinstance(data, dict) else None
    nodes = topology.get("nodes") if isinstance(topology, dict) else None
    return nodes if isinstance(nodes, dict) else {}


def _kinds_present(data: Any) -> set[str]:
    return {str(node.get("kind")) for node in _nodes(data).values() if isinstance(node, dict)}


def _with_implementations(data: dict[str, Any], chosen: dict[str, str]) -> dict[str, Any]:
    copy = yaml.safe_load(yaml.safe_dump(data))  # a deep copy of plain YAML data
    for node in copy["topology"]["nodes"].values():
        if isinstance(node, dict) and node.get("kind") in chosen:
            node["implementation"] = chosen[node["kind"]]
    return copy


def variants(path: Path) -> list[Variant]:
    """Every gateway x client combination of the file (only the kinds it has)."""
    text = decode_text(read_limited(path, MAX_TOPOLOGY_BYTES))
    data = yaml.safe_load(text)
    present = _kinds_present(data)
    axes = [(kind, short) for kind, short in ((GATEWAY_KIND, "gw"), (CLIENT_KIND, "client"))
            if kind in present]  # fmt: skip
    if not axes:
        return [Variant("", load_lab_text(text, path))]
    found = []
    for combination in product(*(implementations(kind) for kind, _ in axes)):
        chosen = {kind: name for (kind, _), name in zip(axes, combination, strict=True)}
        label = " ".join(f"{short}={chosen[kind]}" for kind, short in axes)
        variant_text = yaml.safe_dump(_with_implementations(data, chosen), sort_keys=False)
        try:
            found.append(Variant(label, load_lab_text(variant_text, path)))
        except TopologyError as exc:
            reasons = "; ".join(f"{issue.field}: {issue.message}" for issue in exc.issues)
            found.append(Variant(label, None, reasons or str(exc)))
    return found
