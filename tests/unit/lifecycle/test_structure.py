"""What counts as another topology (rebuild) and what as another configuration (push)."""

from __future__ import annotations

from pathlib import Path

from labctl.lifecycle import recorded_model, structure_differences
from labctl.lifecycle.record import config_digest
from labctl.render import render_node

from .fakes import seed_variant

NAME = "u-structure"


def differences(tmp_path: Path, *changes: tuple[str, str]) -> list[str]:
    before = seed_variant(tmp_path, NAME)
    after = seed_variant(tmp_path, NAME, *changes)
    return structure_differences(recorded_model(before), recorded_model(after))


def test_configuration_and_checks_are_not_structure(tmp_path: Path) -> None:
    assert differences(tmp_path, ("psk: cisco123", "psk: other")) == []
    assert differences(tmp_path, ("nat-t: true ", "nat-t: false ")) == []
    assert differences(tmp_path, ("count: 2\n", "count: 3\n")) == []
    assert differences(tmp_path, ("description: Multiple", "description: Several")) == []


def test_structure_is_named_precisely(tmp_path: Path) -> None:
    assert differences(tmp_path, ("kind: router", "kind: host")) == [
        "node router: kind router -> host"
    ]
    assert differences(tmp_path, ("routes: [default via 172.16.172.1]", "routes: []")) == [
        "node vpn3000: routes changed"
    ]
    assert differences(
        tmp_path,
        ("{eth1: 192.168.2.10/24}", "{eth1: 192.168.2.10/24}\n      env: {TOKEN: x}"),
    ) == ["node server: env changed (TOKEN)"]
    mgmt = ("description: Multiple", "mgmt: {ipv4-subnet: 172.30.9.0/24}\ndescription: Multiple")
    assert differences(tmp_path, mgmt) == ["mgmt (unset) -> ipv4-subnet 172.30.9.0/24"]


def test_a_config_digest_changes_with_a_secret_and_with_the_key(tmp_path: Path) -> None:
    lab = seed_variant(tmp_path, NAME)
    other = seed_variant(tmp_path, NAME, ("psk: cisco123", "psk: cisco124"))
    key = b"k" * 32
    same = config_digest(render_node(lab, "vpn3000"), key)
    assert same == config_digest(render_node(lab, "vpn3000"), key)
    assert same != config_digest(render_node(other, "vpn3000"), key)
    assert same != config_digest(render_node(lab, "vpn3000"), b"j" * 32)
    assert config_digest(render_node(lab, "pix"), key) == config_digest(
        render_node(other, "pix"), key
    )
