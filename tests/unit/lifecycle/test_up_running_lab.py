"""`up` on a running lab: re-push what changed, name structural differences, never
"nothing to do" while the nodes run an old secret (issue 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.lifecycle import LabUpError
from labctl.naming import state_root

from .fakes import FakeLab, seed_variant

NAME = "u-up"


def rebuilds(fake_lab: FakeLab) -> list[tuple[str, str]]:
    return [c for c in fake_lab.runtime.calls if c[0] in ("remove_lab", "create_node")]


@pytest.fixture
def running(fake_lab: FakeLab, tmp_path: Path):
    lab = seed_variant(tmp_path, NAME)
    fake_lab.up(lab)
    fake_lab.runtime.calls.clear()
    fake_lab.forget_commands()
    return lab


def pushed_nodes(fake_lab: FakeLab) -> list[str]:
    return sorted(
        node
        for node, session in fake_lab.sessions.items()
        if any(c.startswith(("vpn service reload", "nft -f")) for c in session.commands)
        or any("node.json" in c for c in session.commands)
    )


def test_a_changed_psk_re_pushes_the_concentrator_only(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    changed = seed_variant(tmp_path, NAME, ("psk: cisco123", "psk: n3w-s3cret"))
    lines = fake_lab.up(changed)
    assert not [line for line in lines if "nothing to do" in line], lines
    assert any("re-pushed vpn3000 (configuration changed)" in line for line in lines), lines
    assert pushed_nodes(fake_lab) == ["vpn3000"]
    assert b"n3w-s3cret" in fake_lab.file("vpn3000", "/etc/labctl/vpn.json").read_bytes()
    assert rebuilds(fake_lab) == []
    # Once applied, the same file is nothing to do.
    fake_lab.forget_commands()
    lines = fake_lab.up(changed)
    assert any("already up" in line and "nothing to do" in line for line in lines), lines
    assert pushed_nodes(fake_lab) == []


def test_a_changed_group_password_re_pushes_both_clients(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    changed = seed_variant(tmp_path, NAME, ("group-password: cisco123", "group-password: x"))
    lines = fake_lab.up(changed)
    assert any("re-pushed client1, client2" in line for line in lines), lines
    assert pushed_nodes(fake_lab) == ["client1", "client2"]


def test_the_state_directory_holds_digests_never_secrets(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    fake_lab.up(seed_variant(tmp_path, NAME, ("psk: cisco123", "psk: n3w-s3cret")))
    for path in state_root().parent.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            for secret in (b"n3w-s3cret", b"cisco123", b"vpnclient1pw", b"vpnclient2pw"):
                assert secret not in text, (path, secret)


def test_a_structural_change_is_named_and_nothing_is_torn_down(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    changed = seed_variant(tmp_path, NAME, ("public: 172.16.172.50/24", "public: 172.16.172.99/24"))
    with pytest.raises(LabUpError) as error:
        fake_lab.up(changed)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"lab {NAME} is running with a different topology: ")
    assert (
        "node vpn3000: interface public ipv4 172.16.172.50/24 -> ipv4 172.16.172.99/24" in message
    )
    assert f"labctl up {changed.source} --name {NAME} --recreate" in message
    assert rebuilds(fake_lab) == []
    assert pushed_nodes(fake_lab) == []
    assert len(fake_lab.runtime.nodes(NAME)) == 6


def test_added_nodes_and_links_are_listed(fake_lab: FakeLab, running, tmp_path: Path) -> None:
    changed = seed_variant(
        tmp_path,
        NAME,
        (
            "  links:\n",
            "    extra:\n      kind: host\n      interfaces: {eth1: 192.168.2.20/24}\n  links:\n",
        ),
        ("[vpn3000:private, server:eth1]", "[vpn3000:private, server:eth1, extra:eth1]"),
    )
    with pytest.raises(LabUpError) as error:
        fake_lab.up(changed)
    message = str(error.value)
    assert "node extra added" in message
    assert "link private [vpn3000:private server:eth1] removed" in message
    assert "link private [vpn3000:private server:eth1 extra:eth1] added" in message


def test_changing_only_checks_is_not_another_topology(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    changed = seed_variant(
        tmp_path,
        NAME,
        ("  - ping: {from: client1, to: 192.168.2.10}\n", ""),
        ("# `labctl test", "scenarios:\n  again:\n    steps:\n      - wait: 1\n# `labctl test"),
    )
    assert changed.spec.expect != running.spec.expect and changed.spec.scenarios
    lines = fake_lab.up(changed)
    assert any("nothing to do" in line for line in lines), lines
    assert rebuilds(fake_lab) == []


def test_recreate_rebuilds_a_lab_whose_structure_changed(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    changed = seed_variant(tmp_path, NAME, ("public: 172.16.172.50/24", "public: 172.16.172.99/24"))
    lines = fake_lab.up(changed, recreate=True)
    assert any("recreating it (node vpn3000: interface public" in line for line in lines), lines
    assert ("remove_lab", NAME) in fake_lab.runtime.calls
    assert ("create_node", f"{NAME}/vpn3000") in fake_lab.runtime.calls
    interfaces = fake_lab.file("vpn3000", "/etc/labctl/vpn.json").read_text()
    assert "172.16.172.99/24" in interfaces
