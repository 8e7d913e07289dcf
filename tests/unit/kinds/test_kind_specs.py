"""Every registered node kind has a complete spec (labctl/kinds/spec.py), and the kinds
are what the rest of labctl reads: the model's node union, the shows, the graph, `up`."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from labctl.images.recipes import ROLES
from labctl.kinds import (
    SPECS,
    Implementation,
    KindSpec,
    ShowTable,
    UnknownKindError,
    kind_names,
    spec_of,
)
from labctl.kinds.host import HostNode
from labctl.kinds.spec import GraphShape, PushStage
from labctl.state.shows import COMMON_SHOWS
from labctl.topology import KINDS, NodeBase, load_lab

ROOT = Path(__file__).resolve().parents[3]

GRAPHVIZ_SHAPES = {
    "box", "polygon", "ellipse", "oval", "circle", "point", "egg", "triangle", "plaintext",
    "plain", "diamond", "trapezium", "parallelogram", "house", "pentagon", "hexagon",
    "septagon", "octagon", "doublecircle", "doubleoctagon", "tripleoctagon", "invtriangle",
    "invtrapezium", "invhouse", "Mdiamond", "Msquare", "Mcircle", "rect", "rectangle",
    "square", "star", "cylinder", "note", "tab", "folder", "box3d", "component",
}  # fmt: skip
MERMAID_SHAPES = {
    ("[", "]"), ("(", ")"), ("([", "])"), ("[[", "]]"), ("[(", ")]"), ("((", "))"),
    ("(((", ")))"), (">", "]"), ("{", "}"), ("{{", "}}"), ("[/", "/]"), ("[\\", "\\]"),
    ("[/", "\\]"), ("[\\", "/]"),
}  # fmt: skip
COMMON = {show.name for show in COMMON_SHOWS}


def _literal_values(model: type[NodeBase], field: str) -> tuple[object, ...]:
    info = model.model_fields.get(field)
    if info is None or typing.get_origin(info.annotation) is not typing.Literal:
        return ()
    return typing.get_args(info.annotation)


def spec_problems(spec: KindSpec) -> list[str]:
    """What is missing or inconsistent in a kind's spec, one phrase each."""
    problems = []
    if not (isinstance(spec.model, type) and issubclass(spec.model, NodeBase)):
        return [f"{spec.name}: model {spec.model!r} is not a NodeBase"]
    if _literal_values(spec.model, "kind") != (spec.name,):
        problems.append(f"{spec.name}: model's kind must be Literal[{spec.name!r}]")
    if not spec.summary.strip() or "\n" in spec.summary:
        problems.append(f"{spec.name}: summary must be one line")
    if not isinstance(spec.push_stage, PushStage):
        problems.append(f"{spec.name}: push_stage must be a PushStage")
    if spec.graph.dot not in GRAPHVIZ_SHAPES:
        problems.append(f"{spec.name}: {spec.graph.dot!r} is not a Graphviz shape")
    if spec.graph.mermaid not in MERMAID_SHAPES:
        problems.append(f"{spec.name}: {spec.graph.mermaid!r} is not a Mermaid shape")
    own = set(spec.model.model_fields) - set(NodeBase.model_fields) - {"implementation"}
    for field in sorted(own - set(spec.settings)):
        problems.append(f"{spec.name}: field {field!r} is neither structure nor in settings")
    for field in sorted(set(spec.settings) - set(spec.model.model_fields)):
        problems.append(f"{spec.name}: settings name {field!r}, which the model lacks")
    names = [i.name for i in spec.implementations]
    if not names:
        problems.append(f"{spec.name}: no implementation")
    if len(set(names)) != len(names):
        problems.append(f"{spec.name}: implementation names repeat: {names}")
    if len(names) > 1:
        if _literal_values(spec.model, "implementation") != tuple(names):
            problems.append(
                f"{spec.name}: several implementations need a model field "
                f"implementation: Literal{names!r}"
            )
        elif spec.model.model_fields["implementation"].default != names[0]:
            problems.append(f"{spec.name}: the default implementation must be {names[0]!r}")
    for implementation in spec.implementations:
        where = f"{spec.name} ({implementation.name})"
        if implementation.image_role not in ROLES or implementation.image_role == "base":
            problems.append(
                f"{where}: image role {implementation.image_role!r} is not a node image"
            )
        if spec.settings and implementation.render is None:
            problems.append(f"{where}: renders nothing of its settings {spec.settings}")
        shows = [show.name for show in implementation.shows]
        if len(set(shows)) != len(shows):
            problems.append(f"{where}: show tables repeat: {shows}")
        for show in implementation.shows:
            if show.name in COMMON:
                problems.append(f"{where}: show {show.name!r} hides the common table")
            if not show.help or not callable(show.collect):
                problems.append(f"{where}: show {show.name!r} needs help and a collector")
    return problems


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_registered_kind_has_a_complete_spec(spec: KindSpec) -> None:
    assert spec_problems(spec) == []


def test_the_completeness_check_finds_what_a_spec_lacks() -> None:
    host = spec_of("host")
    broken = dataclasses.replace(
        host,
        name="switch",
        summary="",
        graph=GraphShape("blob", ("<", ">")),
        implementations=(
            Implementation("a", image_role="base", render=None),
            Implementation(
                "b",
                image_role="vpn",
                render=None,
                shows=(ShowTable("arp", "", print), ShowTable("x", "x", print)) * 2,
            ),
        ),
        settings=("pat",),
    )
    problems = "\n".join(spec_problems(broken))
    for expected in (
        "switch: model's kind must be Literal['switch']",
        "switch: summary must be one line",
        "'blob' is not a Graphviz shape",
        "('<', '>') is not a Mermaid shape",
        "settings name 'pat', which the model lacks",
        "several implementations need a model field implementation: Literal['a', 'b']",
        "switch (a): image role 'base' is not a node image",
        "switch (a): renders nothing of its settings ('pat',)",
        "switch (b): show tables repeat",
        "switch (b): show 'arp' hides the common table",
        "switch (b): show 'arp' needs help and a collector",
    ):
        assert expected in problems, (expected, problems)

    class SwitchNode(HostNode):
        ports: int = 8

    unregistered = dataclasses.replace(host, model=SwitchNode)
    assert spec_problems(unregistered) == [
        "host: field 'ports' is neither structure nor in settings"
    ]


def test_the_registry_is_the_models_list_of_kinds() -> None:
    assert KINDS == kind_names() == tuple(spec.name for spec in SPECS)
    assert KINDS == (
        "host",
        "router",
        "pat-firewall",
        "concentrator",
        "vpn-client",
        "vpn-site",
        "vpn-fleet",
    )
    with pytest.raises(UnknownKindError, match="unknown node kind 'switch' \\(kinds: host, "):
        spec_of("switch")


def test_every_kind_runs_in_a_shipped_topology() -> None:
    """So the golden files (tests/unit/render) cover every kind's rendering."""
    used = {
        node.kind
        for path in (ROOT / "topologies").glob("*.yaml")
        for node in load_lab(path).nodes.values()
    }
    assert used == set(KINDS)


def test_validate_loads_no_docker_ssh_netlink_or_templates() -> None:
    code = (
        "import sys\n"
        "from labctl.topology import load_lab\n"
        f"load_lab({str(ROOT / 'topologies' / 'nat-t-two-clients.yaml')!r})\n"
        "heavy = ('jinja2', 'docker', 'paramiko', 'pyroute2', 'labctl.kinds.templates',\n"
        "         'labctl.render', 'labctl.lifecycle', 'labctl.images')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "first", ["labctl.kinds", "labctl.kinds.concentrator", "labctl.topology.base"]
)
def test_kinds_and_topology_import_in_any_order(first: str) -> None:
    code = f"import {first}\nimport labctl.topology\nprint(labctl.topology.KINDS[-1])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert (result.returncode, result.stdout.strip()) == (0, "vpn-fleet"), result.stderr
