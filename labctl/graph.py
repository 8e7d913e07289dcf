"""Pictures of a topology: Graphviz DOT (and SVG through `dot`) and Mermaid; each kind's
shape is in its spec (`labctl.kinds`)."""

from __future__ import annotations

import shutil
import subprocess

from .kinds.registry import spec_of
from .topology import Lab


def _endpoint_label(lab: Lab, node: str, interface: str) -> str:
    address = lab.address_of(node, interface)
    return f"{interface}\\n{address}" if address else interface


def to_dot(lab: Lab) -> str:
    lines = [
        f'graph "{lab.name}" {{',
        f'  graph [rankdir=LR, fontname="Helvetica", labelloc=t, label="{lab.name}"];',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for name, node in lab.nodes.items():
        lines.append(
            f'  "{name}" [shape={spec_of(node.kind).graph.dot}, label="{name}\\n({node.kind})"];'
        )
    subnets = lab.subnets()
    for segment in lab.segments:
        subnet = subnets.get(segment.name, "")
        if segment.is_lan:
            hub = f"lan:{segment.name}"
            lines.append(
                f'  "{hub}" [shape=point, width=0.15, xlabel="{segment.name}\\n{subnet}"];'
            )
            for endpoint in segment.endpoints:
                label = _endpoint_label(lab, endpoint.node, endpoint.interface)
                lines.append(f'  "{endpoint.node}" -- "{hub}" [taillabel="{label}"];')
        else:
            a, b = segment.endpoints
            lines.append(
                f'  "{a.node}" -- "{b.node}" [label="{segment.name}\\n{subnet}", '
                f'taillabel="{_endpoint_label(lab, a.node, a.interface)}", '
                f'headlabel="{_endpoint_label(lab, b.node, b.interface)}"];'
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(lab: Lab) -> str:
    lines = ["graph LR"]
    ids = {name: f"n{i}" for i, name in enumerate(lab.nodes)}
    for name, node in lab.nodes.items():
        left, right = spec_of(node.kind).graph.mermaid
        lines.append(f'  {ids[name]}{left}"{name}<br/>{node.kind}"{right}')
    subnets = lab.subnets()
    for segment in lab.segments:
        subnet = subnets.get(segment.name, "")
        if segment.is_lan:
            hub = f"s{segment.index}"
            lines.append(f'  {hub}(("{segment.name}<br/>{subnet}"))')
            for e in segment.endpoints:
                address = lab.address_of(e.node, e.interface)
                lines.append(f'  {ids[e.node]} ---|"{e.interface} {address or ""}"| {hub}')
        else:
            a, b = segment.endpoints
            lines.append(f'  {ids[a.node]} ---|"{segment.name} {subnet}"| {ids[b.node]}')
    return "\n".join(lines) + "\n"


def to_svg(lab: Lab) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "SVG needs Graphviz's 'dot' (apt-get install graphviz); or use --format dot / mermaid"
        )
    result = subprocess.run(
        [dot, "-Tsvg"], input=to_dot(lab), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"dot failed: {result.stderr.strip()}")
    return result.stdout
