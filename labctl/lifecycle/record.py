"""What `up` records about a lab, and how a running lab is compared with a topology.

The record keeps the validated lab model with secrets masked (pydantic dumps a SecretStr
as '**********') and without `expect`/`scenarios` (a scenario `set` may hold a secret in
clear). Commands on a running lab (exec, show, status) open it from this record, so they
work while the topology file is broken or an {env:} secret is unset.

A running lab differs from a topology in one of two ways:
- structure (nodes, kinds, images, interfaces, routes, links, management subnet, container
  settings): only a rebuild applies it;
- configuration (what render_node makes: VPN settings, PAT rules, secrets): a push applies
  it. Per-node configuration digests (keyed, never the values) tell which nodes changed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from ..errors import LabctlError
from ..kinds.registry import settings_fields
from ..render import NodeConfig
from ..topology import Lab
from ..topology.model import LabFile

# Node fields a push applies (rendered into files: each kind's settings); `group` is only
# where inherited settings came from, already merged into the node.
CONFIG_FIELDS = (*settings_fields(), "group")
# Fields of the file that are neither structure nor configuration.
NOT_RECORDED = {"expect", "scenarios"}
MAX_LISTED = 8


class RecordError(LabctlError):
    """The lab's record cannot be read back into a lab model."""


def recorded_model(lab: Lab) -> dict[str, Any]:
    """The lab model as the record keeps it: JSON, secrets masked, no checks."""
    return lab.spec.model_dump(mode="json", by_alias=True, exclude=NOT_RECORDED)


def lab_from_model(model: dict[str, Any], source: Any = None) -> Lab:
    """A Lab rebuilt from a recorded model; its secrets are masked (never push it)."""
    try:
        spec = LabFile.model_validate(model, context={})
    except ValueError as exc:
        raise RecordError(f"the recorded lab model does not load: {exc}") from None
    return Lab(spec=spec, source=source)


def structure(model: dict[str, Any]) -> dict[str, Any]:
    """The part of a recorded model that only rebuilding the lab can change."""
    topology = model.get("topology", {})
    return {
        "mgmt": model.get("mgmt"),
        "nodes": {
            name: {k: v for k, v in node.items() if k not in CONFIG_FIELDS}
            for name, node in topology.get("nodes", {}).items()
        },
        "links": [_link_text(link) for link in topology.get("links", [])],
    }


def structure_differences(old_model: dict[str, Any], new_model: dict[str, Any]) -> list[str]:
    """What differs in structure, one short phrase each (no values of env or secrets)."""
    old, new = structure(old_model), structure(new_model)
    found: list[str] = []
    for name in sorted(set(new["nodes"]) - set(old["nodes"])):
        found.append(f"node {name} added")
    for name in sorted(set(old["nodes"]) - set(new["nodes"])):
        found.append(f"node {name} removed")
    for name in sorted(set(old["nodes"]) & set(new["nodes"])):
        found += _node_differences(name, old["nodes"][name], new["nodes"][name])
    for link in (link for link in old["links"] if link not in new["links"]):
        found.append(f"link {link} removed")
    for link in (link for link in new["links"] if link not in old["links"]):
        found.append(f"link {link} added")
    if old["mgmt"] != new["mgmt"]:
        found.append(f"mgmt {_compact(old['mgmt'])} -> {_compact(new['mgmt'])}")
    return found


def summarize(differences: list[str]) -> str:
    shown = differences[:MAX_LISTED]
    rest = len(differences) - len(shown)
    return "; ".join(shown) + (f"; and {rest} more" if rest > 0 else "")


def _node_differences(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    found = []
    for field in sorted(set(old) | set(new)):
        before, after = old.get(field), new.get(field)
        if before == after:
            continue
        if field == "interfaces":
            found += _interface_differences(name, before or {}, after or {})
        elif field in ("kind", "image"):
            found.append(f"node {name}: {field} {before} -> {after}")
        elif isinstance(before, dict) and isinstance(after, dict):
            keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            found.append(f"node {name}: {field} changed ({', '.join(keys)})")
        else:
            found.append(f"node {name}: {field} changed")
    return found


def _interface_differences(node: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    found = []
    for interface in sorted(set(old) | set(new)):
        before, after = old.get(interface), new.get(interface)
        if before == after:
            continue
        if before is None:
            found.append(f"node {node}: interface {interface} added ({_compact(after)})")
        elif after is None:
            found.append(f"node {node}: interface {interface} removed")
        else:
            found.append(
                f"node {node}: interface {interface} {_compact(before)} -> {_compact(after)}"
            )
    return found


def _compact(value: Any) -> str:
    """An interface or mgmt section as 'ipv4 10.0.0.1/24 mtu 1400' (unset fields left out)."""
    if not isinstance(value, dict):
        return str(value)
    parts = [f"{k} {v}" for k, v in value.items() if v is not None]
    return " ".join(parts) or "(unset)"


def _link_text(link: dict[str, Any]) -> str:
    text = f"{link.get('name') or '(unnamed)'} [{' '.join(link.get('endpoints', []))}]"
    return text + (f" mtu {link['mtu']}" if link.get("mtu") else "")


def config_digest(config: NodeConfig, key: bytes) -> str:
    """A keyed digest of what a push installs on a node. Keyed (HMAC with a per-lab random
    key kept beside the record) so a digest cannot be used to guess a weak secret offline."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    outline = {
        "files": [[f.path, f.mode, len(f.content)] for f in config.files],
        "reload": list(config.reload_commands),
        "sysctls": config.host_sysctls,
    }
    mac.update(json.dumps(outline, sort_keys=True).encode())
    for rendered in config.files:
        mac.update(rendered.content)
    return mac.hexdigest()[:32]
