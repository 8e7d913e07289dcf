"""The node kinds labctl knows, in the order messages list them: kind name -> spec.

Adding a kind is a module (or a package) under labctl/kinds/ with a `SPEC`, and one line
in SPECS below; tests/unit/kinds/test_kind_specs.py checks that every spec is complete.
"""

from __future__ import annotations

from ..errors import LabctlError
from ..topology.base import NodeBase
from . import concentrator, host, pat_firewall, router, vpn_client, vpn_fleet, vpn_site
from .spec import Implementation, KindSpec

SPECS: tuple[KindSpec, ...] = (
    host.SPEC,
    router.SPEC,
    pat_firewall.SPEC,
    concentrator.SPEC,
    vpn_client.SPEC,
    vpn_site.SPEC,
    vpn_fleet.SPEC,
)

_BY_NAME = {spec.name: spec for spec in SPECS}


class UnknownKindError(LabctlError):
    """A kind name no spec has (a lab recorded by another labctl, say)."""


def kind_names() -> tuple[str, ...]:
    return tuple(_BY_NAME)


def node_models() -> tuple[type[NodeBase], ...]:
    """The node model of every kind: the topology's `nodes` take one of these."""
    return tuple(spec.model for spec in SPECS)


def spec_of(kind: str) -> KindSpec:
    try:
        return _BY_NAME[kind]
    except KeyError:
        raise UnknownKindError(
            f"unknown node kind {kind!r} (kinds: {', '.join(_BY_NAME)})"
        ) from None


def implementation_of(node: NodeBase) -> Implementation:
    """What the node runs: its kind's implementation it names, or the kind's default."""
    return spec_of(node.kind).implementation(node)


def kinds_with_show(table: str) -> tuple[str, ...]:
    """Kinds that have the show table in some implementation (what a check may read)."""
    return tuple(
        spec.name
        for spec in SPECS
        if any(show.name == table for i in spec.implementations for show in i.shows)
    )


def client_kinds() -> tuple[str, ...]:
    """Kinds a scenario can connect and disconnect."""
    return tuple(
        spec.name for spec in SPECS if any(i.client is not None for i in spec.implementations)
    )


def settings_fields() -> tuple[str, ...]:
    """Node fields of any kind that a push applies (configuration, not structure)."""
    return tuple(dict.fromkeys(field for spec in SPECS for field in spec.settings))
