"""A push is one transaction: a config the node cannot use never replaces the running one
(issue 8: a push the agent could not apply left the concentrator stopped with the bad file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.kinds.pat_firewall.nftables import NFT_PATH
from labctl.kinds.vpn_agent import VPN_CONFIG_PATH
from labctl.lifecycle import LabHandle, LabState, PushError, push_node

from .fakes import FakeLab, seed_variant

NEW_PSK = ("psk: cisco123", "psk: n3w-s3cret")
BIND_ERROR = (
    "vpn: /etc/labctl/vpn.json.labctl-new: IKE: cannot bind UDP 172.16.172.99:500: "
    "172.16.172.99 is not an address of this node\n"
)


def leftovers(fake_lab: FakeLab, node: str) -> list[str]:
    folder = fake_lab.file(node, "/etc/labctl")
    return sorted(
        p.name for p in folder.iterdir() if p.name.endswith((".labctl-new", ".labctl-prev"))
    )


def recorded_digest(lab_name: str, node: str) -> str:
    record = LabState.of(lab_name).read_record()
    assert record is not None
    return record["config_digests"][node]


@pytest.fixture
def running(fake_lab: FakeLab, tmp_path: Path):
    lab = seed_variant(tmp_path, "u-push")
    fake_lab.up(lab)
    fake_lab.forget_commands()
    return lab


def test_a_config_the_agent_rejects_never_replaces_the_running_one(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    live = fake_lab.file("vpn3000", VPN_CONFIG_PATH)
    before, digest = live.read_bytes(), recorded_digest("u-push", "vpn3000")
    fake_lab.answers["vpn3000"]["vpn service check"] = lambda c: (1, "", BIND_ERROR)
    changed = seed_variant(tmp_path, "u-push", NEW_PSK)
    with LabHandle.open(changed, fake_lab.runtime) as handle, pytest.raises(PushError) as error:
        push_node(handle, "vpn3000")
    message = str(error.value)
    assert message.startswith("push vpn3000: /etc/labctl/vpn.json rejected by 'vpn service check")
    assert "IKE: cannot bind UDP 172.16.172.99:500: 172.16.172.99 is not an address" in message
    assert "the node keeps its running configuration" in message
    assert ".labctl-new" not in message and "n3w-s3cret" not in message
    assert live.read_bytes() == before
    assert leftovers(fake_lab, "vpn3000") == []
    assert not [c for c in fake_lab.commands("vpn3000") if c.startswith("vpn service reload")]
    assert recorded_digest("u-push", "vpn3000") == digest


def test_a_failed_reload_restores_the_previous_files_and_reloads_them(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    live = fake_lab.file("vpn3000", VPN_CONFIG_PATH)
    before, digest = live.read_bytes(), recorded_digest("u-push", "vpn3000")
    reloads: list[bytes] = []

    def reload(command: str) -> tuple[int, str, str]:
        reloads.append(live.read_bytes())  # what the agent would load at this moment
        if len(reloads) == 1:
            return (1, "", "vpn: the agent exited with 1:\nOSError: cannot open TUN\n")
        return (0, "reloaded\n", "")

    fake_lab.answers["vpn3000"]["vpn service reload"] = reload
    changed = seed_variant(tmp_path, "u-push", NEW_PSK)
    with LabHandle.open(changed, fake_lab.runtime) as handle, pytest.raises(PushError) as error:
        push_node(handle, "vpn3000")
    message = str(error.value)
    assert "'vpn service reload' exited 1: OSError: cannot open TUN" in message
    assert message.endswith("restored the previous configuration and reloaded it")
    assert len(reloads) == 2
    assert b"n3w-s3cret" in reloads[0], "the first reload saw the new file"
    assert reloads[1] == before, "the second reload saw the previous file"
    assert live.read_bytes() == before
    assert leftovers(fake_lab, "vpn3000") == []
    assert recorded_digest("u-push", "vpn3000") == digest


def test_a_file_that_did_not_exist_is_removed_again_on_rollback(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    description = fake_lab.file("vpn3000", "/etc/labctl/node.json")
    description.unlink()
    fake_lab.answers["vpn3000"]["vpn service reload"] = lambda c: (1, "", "vpn: boom\n")
    with LabHandle.open(running, fake_lab.runtime) as handle, pytest.raises(PushError):
        push_node(handle, "vpn3000")
    assert not description.exists()
    assert leftovers(fake_lab, "vpn3000") == []


def test_nft_rejects_a_ruleset_with_its_own_error_line(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    live = fake_lab.file("pix", NFT_PATH)
    before = live.read_bytes()
    nft_error = (
        "/etc/labctl/nftables.nft.labctl-new:12:3-9: Error: syntax error, unexpected junk\n"
        "\t\tjunk\n\t\t^^^^\n"
    )
    fake_lab.answers["pix"]["nft -c"] = lambda c: (1, "", nft_error)
    sysctls_before = len(fake_lab.sysctls)
    with LabHandle.open(running, fake_lab.runtime) as handle, pytest.raises(PushError) as error:
        push_node(handle, "pix")
    assert (
        "/etc/labctl/nftables.nft rejected by 'nft -c -f FILE': "
        "/etc/labctl/nftables.nft:12:3-9: Error: syntax error, unexpected junk"
    ) in str(error.value)
    assert live.read_bytes() == before
    assert not [c for c in fake_lab.commands("pix") if c.startswith("nft -f")]
    assert len(fake_lab.sysctls) == sysctls_before, "no host sysctl changed"
    assert leftovers(fake_lab, "pix") == []


def test_a_good_push_replaces_the_files_and_records_the_new_digest(
    fake_lab: FakeLab, running, tmp_path: Path
) -> None:
    digest = recorded_digest("u-push", "vpn3000")
    changed = seed_variant(tmp_path, "u-push", NEW_PSK)
    with LabHandle.open(changed, fake_lab.runtime) as handle:
        push_node(handle, "vpn3000")
    live = fake_lab.file("vpn3000", VPN_CONFIG_PATH)
    assert b"n3w-s3cret" in live.read_bytes()
    assert live.stat().st_mode & 0o777 == 0o600
    assert leftovers(fake_lab, "vpn3000") == []
    commands = fake_lab.commands("vpn3000")
    check = next(i for i, c in enumerate(commands) if c.startswith("vpn service check"))
    reload = next(i for i, c in enumerate(commands) if c.startswith("vpn service reload"))
    assert check < reload
    assert recorded_digest("u-push", "vpn3000") != digest


def test_a_lab_opened_from_its_record_cannot_push(fake_lab: FakeLab, running) -> None:
    handle = LabHandle.open(running, fake_lab.runtime, secrets=False)
    with handle, pytest.raises(RuntimeError, match="needs the topology file"):
        push_node(handle, "vpn3000")
    assert fake_lab.commands("vpn3000") == []


def test_building_a_lab_skips_the_checks_there_is_nothing_to_keep(
    fake_lab: FakeLab, tmp_path: Path
) -> None:
    fake_lab.up(seed_variant(tmp_path, "u-first"))
    commands = [c for node in fake_lab.sessions for c in fake_lab.commands(node)]
    assert [c for c in commands if c.startswith("vpn service reload")]
    assert not [c for c in commands if c.startswith(("vpn service check", "nft -c"))]
