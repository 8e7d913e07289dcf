"""Node kinds as modules: each kind is one module (or a package when it has templates or
several implementations) holding one `KindSpec` -- its topology model, image role, IP
forwarding, TUN device, push stage, rendering, validate checks, show tables and graph
shape (spec.py says what each is). `registry.py` maps kind names to specs.

    host.py, router.py           nothing rendered: the smallest kinds
    pat_firewall/                model.py, nftables.py (render + xlate tables), templates/
    concentrator/, vpn_client/   model.py, ours.py (our agent's vpn.json, tables)
    vpn_agent.py                 what our agent's implementations share
    vpn_settings.py              settings both VPN kinds share

Import rule (keeps `labctl validate` light and free of cycles): a kind module imports at
its top only this package's spec/collect/vpn_settings/other kind modules,
`labctl.topology.base`, pydantic and the standard library. Jinja2 (`kinds.templates`) and
the state parsers are imported inside the functions that render or collect.
"""

# The topology model builds its node union from the registry; loading the topology package
# first lets either be imported first.
from .. import topology as _topology  # noqa: F401
from .registry import (
    SPECS,
    UnknownKindError,
    client_kinds,
    implementation_of,
    kind_names,
    kinds_with_show,
    node_models,
    settings_fields,
    spec_of,
)
from .spec import (
    ClientCommands,
    GraphShape,
    Implementation,
    KindSpec,
    NodeConfig,
    NodeContext,
    PushStage,
    RenderedFile,
    ShowTable,
)

__all__ = [
    "SPECS",
    "ClientCommands",
    "GraphShape",
    "Implementation",
    "KindSpec",
    "NodeConfig",
    "NodeContext",
    "PushStage",
    "RenderedFile",
    "ShowTable",
    "UnknownKindError",
    "client_kinds",
    "implementation_of",
    "kind_names",
    "kinds_with_show",
    "node_models",
    "settings_fields",
    "spec_of",
]
