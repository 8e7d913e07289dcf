"""The agent reads /etc/labctl/vpn.json strictly: the defaults live in the topology model,
labctl renders every setting, and a key that is missing or of the wrong type is an error
naming it (the agent used to fill in its own defaults, which could drift from the model's)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labctl.agent.settings import (
    ClientSettings,
    ConcentratorSettings,
    SettingsError,
    load_settings,
    parse_settings,
)
from labctl.kinds import implementation_of
from labctl.render import vpn_agent_config
from labctl.topology import load_lab

ROOT = Path(__file__).resolve().parents[3]
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))
# Rendered for people and other tools, not read by the agent.
# certificate_ca: the host picks the CA that issues the certificate it pushes
UNREAD = {"lab", "vpn.groups.*.pool", "vpn.certificate_ca"}
# Mappings whose keys are names (interfaces, groups, users), not settings.
NAMED = {"interfaces", "vpn.groups", "vpn.users"}


def rendered(topology: str, node: str) -> dict[str, Any]:
    return vpn_agent_config(load_lab(ROOT / "topologies" / f"{topology}.yaml"), node)


def setting_paths(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key of the rendered settings, nested ones too (not the names of NAMED maps)."""
    for key, value in data.items():
        path = (*prefix, key)
        if ".".join(path) in NAMED:
            yield path
            for name, entry in value.items():
                if isinstance(entry, dict):
                    yield from setting_paths(entry, (*path, name))
        elif isinstance(value, dict):
            yield path
            yield from setting_paths(value, path)
        else:
            yield path


def pattern(path: tuple[str, ...]) -> str:
    """vpn.groups.ciscovpn.psk -> vpn.groups.*.psk"""
    parts = list(path)
    for index in range(len(parts) - 1):
        if ".".join(parts[:index]) in NAMED:
            parts[index] = "*"
    return ".".join(parts)


def without(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    copied = copy.deepcopy(data)
    target = copied
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return copied


@pytest.mark.parametrize(
    ("topology", "node"),
    [
        ("nat-t-two-clients", "vpn3000"),
        ("nat-t-two-clients", "client1"),
        ("ipsec-over-udp", "vpn3000"),
        ("ipsec-over-tcp", "client2"),
    ],
)
def test_every_rendered_setting_is_required_and_named_when_missing(
    topology: str, node: str
) -> None:
    data = rendered(topology, node)
    parse_settings(data)  # complete: reads
    checked = 0
    for path in setting_paths(data):
        if pattern(path) in UNREAD:
            parse_settings(without(data, path))
            continue
        with pytest.raises(SettingsError) as error:
            parse_settings(without(data, path))
        assert str(error.value) == f"missing setting {'.'.join(path)}"
        checked += 1
    assert checked >= 20


def test_the_agent_reads_the_values_the_topology_gives_or_defaults() -> None:
    lab = load_lab(ROOT / "topologies" / "keepalive-vs-pat-timeout.yaml")
    quiet = parse_settings(vpn_agent_config(lab, "client2"))
    assert isinstance(quiet, ClientSettings)
    assert quiet.nat_keepalive == 0  # the topology's `nat-keepalive: 0`, not a default
    model = lab.node("client2").vpn
    assert quiet.dpd.interval == model.dpd.interval
    assert quiet.peer_response_timeout == model.peer_response_timeout
    assert quiet.client_version == model.client_version
    assert quiet.tunneling_port == model.transparent_tunneling.port
    gateway = parse_settings(vpn_agent_config(lab, "vpn3000"))
    assert isinstance(gateway, ConcentratorSettings)
    assert gateway.version_string == lab.node("vpn3000").vpn.version_string
    assert gateway.nat_keepalive == lab.node("vpn3000").vpn.nat_keepalive


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("vpn", "nat_keepalive"), "20", "setting vpn.nat_keepalive: expected a number, got str"),
        (("vpn", "dpd", "retries"), 3.5, "setting vpn.dpd.retries: expected a whole number"),
        (("vpn", "auto_connect"), 1, "setting vpn.auto_connect: expected true or false, got int"),
        (
            ("vpn", "transparent_tunneling", "port"),
            True,
            "setting vpn.transparent_tunneling.port: expected a whole number, got bool",
        ),
        (("vpn", "dpd"), None, "setting vpn.dpd: expected a mapping, got null"),
        (
            ("vpn", "ike_proposals"),
            "3des-md5-modp1024",
            "setting vpn.ike_proposals: expected a list",
        ),
    ],
)
def test_a_setting_of_the_wrong_type_is_named(
    path: tuple[str, ...], value: Any, message: str
) -> None:
    data = rendered("nat-t-two-clients", "client1")
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SettingsError) as error:
        parse_settings(data)
    assert str(error.value).startswith(message)


def test_the_file_is_named_with_the_missing_setting(tmp_path: Path) -> None:
    data = without(rendered("nat-t-two-clients", "vpn3000"), ("vpn", "dpd", "interval"))
    path = tmp_path / "vpn.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError) as error:
        load_settings(path)
    assert str(error.value) == f"{path}: missing setting vpn.dpd.interval"
    assert "cisco123" not in str(error.value)


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_every_vpn_node_of_every_shipped_topology_reads(path: Path) -> None:
    lab = load_lab(path)
    for name, node in lab.nodes.items():
        # nodes running strongSwan or vpnc have no vpn.json of ours
        if node.kind in ("concentrator", "vpn-client") and implementation_of(node).name == "ours":
            parse_settings(vpn_agent_config(lab, name))
