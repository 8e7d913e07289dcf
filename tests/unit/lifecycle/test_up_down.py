"""`up` and `down` on the fake runtime: the order of the stages, what each node is
created with, and what is left after a failure part-way (nothing, unless asked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.lifecycle import PushError, down
from labctl.lifecycle.labstate import LabState
from labctl.naming import fabric_netns
from labctl.progress import Progress

from .conftest import FAKE_IMAGES
from .fakes import FakeLab, seed_variant

NAME = "u-order"
NETWORK = ("pix", "router", "vpn3000", "server")
CLIENTS = ("client1", "client2")


class NodeStartFailed(RuntimeError):
    pass


def nothing_left(fake_lab: FakeLab) -> bool:
    return (
        fake_lab.runtime.nodes(NAME) == []
        and fabric_netns(NAME) not in fake_lab.netns
        and not LabState.of(NAME).directory.exists()
    )


def test_up_creates_wires_connects_then_configures(fake_lab: FakeLab, tmp_path: Path) -> None:
    fake_lab.up(seed_variant(tmp_path, NAME))
    steps = [step for step, _ in fake_lab.timeline]
    # The fabric namespace first: it is what `down` finds a half-built lab by.
    assert steps[0] == "create_fabric"
    assert fake_lab.last("create_node") < fake_lab.first("connect_endpoints")
    assert fake_lab.first("connect_endpoints") < fake_lab.first("configure_node")
    assert fake_lab.last("configure_node") < fake_lab.first("ssh")
    assert fake_lab.last("ssh") < fake_lab.first("run")
    # Every node's rendered files go in with its keys before it starts; the first push
    # only reloads (no SFTP copy, no staging).
    assert "put_file" not in steps
    injected = {what for step, what in fake_lab.timeline if step == "inject"}
    assert {f"{n}:/etc/labctl/node.json" for n in (*NETWORK, *CLIENTS)} <= injected
    assert "pix:/etc/labctl/nftables.nft" in injected
    assert {f"{c}:/etc/labctl/vpn.json" for c in CLIENTS} <= injected
    configured = [what for step, what in fake_lab.timeline if step == "configure_node"]
    assert sorted(configured) == sorted((*NETWORK, *CLIENTS))


def test_the_network_runs_its_configuration_before_any_client_gets_one(
    fake_lab: FakeLab, tmp_path: Path
) -> None:
    fake_lab.up(seed_variant(tmp_path, NAME))
    first_client = min(fake_lab.first("run", f"{c}: vpn service reload") for c in CLIENTS)
    assert fake_lab.last("run", "pix: nft -f /etc/labctl/nftables.nft") < first_client
    assert fake_lab.last("run", "vpn3000: vpn service reload") < first_client
    for client in CLIENTS:  # the only command of a client's first push
        assert fake_lab.commands(client) == ["vpn service reload"]


def test_each_node_is_created_with_what_its_kind_needs(fake_lab: FakeLab, tmp_path: Path) -> None:
    fake_lab.up(seed_variant(tmp_path, NAME))
    specs = fake_lab.runtime.specs
    forwarding = {n for n, s in specs.items() if s.sysctls.get("net.ipv4.ip_forward") == "1"}
    assert forwarding == {"pix", "router", "vpn3000"}
    tun = {n for n, s in specs.items() if s.needs_tun}
    assert tun == {"vpn3000", "client1", "client2", "server"}
    images = {n: s.image for n, s in specs.items()}
    assert images == {
        "client1": FAKE_IMAGES["vpn"],
        "client2": FAKE_IMAGES["vpn"],
        "vpn3000": FAKE_IMAGES["vpn"],
        "pix": FAKE_IMAGES["node"],
        "router": FAKE_IMAGES["node"],
        "server": FAKE_IMAGES["node"],
    }
    assert {s.kind for s in specs.values()} == {
        "vpn-client",
        "pat-firewall",
        "router",
        "concentrator",
        "host",
    }
    for spec in specs.values():
        assert spec.sysctls["net.ipv6.conf.all.disable_ipv6"] == "1"


def test_a_node_image_named_in_the_topology_is_used_as_is(
    fake_lab: FakeLab, tmp_path: Path
) -> None:
    lab = seed_variant(
        tmp_path, NAME, ("kind: host\n", "kind: host\n      image: example/server:1\n")
    )
    fake_lab.up(lab)
    assert fake_lab.runtime.specs["server"].image == "example/server:1"
    assert fake_lab.runtime.specs["router"].image == FAKE_IMAGES["node"]


def test_a_node_that_fails_to_start_leaves_nothing_behind(
    fake_lab: FakeLab, tmp_path: Path
) -> None:
    fake_lab.runtime.fail_create["vpn3000"] = NodeStartFailed("no such image")
    with pytest.raises(NodeStartFailed):
        fake_lab.up(seed_variant(tmp_path, NAME))
    assert nothing_left(fake_lab)
    assert fake_lab.timeline[-2:] == [("remove_lab", NAME), ("remove_fabric", NAME)]
    assert "put_file" not in [step for step, _ in fake_lab.timeline]


def test_keep_on_failure_leaves_the_lab_for_inspection(fake_lab: FakeLab, tmp_path: Path) -> None:
    fake_lab.runtime.fail_create["vpn3000"] = NodeStartFailed("no such image")
    with pytest.raises(NodeStartFailed):
        fake_lab.up(seed_variant(tmp_path, NAME), keep_on_failure=True)
    assert fabric_netns(NAME) in fake_lab.netns
    assert LabState.of(NAME).directory.exists()
    assert ("remove_lab", NAME) not in fake_lab.timeline
    # ... with no node's secrets left in the state folder (the seeds nodes never unpacked)
    seeds = list((LabState.of(NAME).directory / "seed").iterdir())
    assert seeds and all(seed.stat().st_size == 0 for seed in seeds)
    # ... and `down` removes it all.
    down(NAME, fake_lab.runtime, Progress(quiet=True))
    assert nothing_left(fake_lab)


def test_a_failed_network_push_pushes_no_client_and_removes_the_lab(
    fake_lab: FakeLab, tmp_path: Path
) -> None:
    fake_lab.answers["pix"] = {"nft -f": lambda _c: (1, "", "Error: syntax error, line 3\n")}
    with pytest.raises(PushError) as error:
        fake_lab.up(seed_variant(tmp_path, NAME))
    message = str(error.value)
    assert message.startswith("push pix: 'nft -f /etc/labctl/nftables.nft' exited 1: ")
    assert "Error: syntax error, line 3" in message
    assert message.endswith("(not pushed: client1, client2)")
    assert not [what for step, what in fake_lab.timeline if step == "put_file" and "client" in what]
    assert nothing_left(fake_lab)


def test_up_after_an_interrupted_run_removes_its_leftovers_first(
    fake_lab: FakeLab, tmp_path: Path
) -> None:
    # A labctl killed after making the fabric and the state dir, before any container.
    fake_lab.netns.add(fabric_netns(NAME))
    LabState.of(NAME).create()
    lines = fake_lab.up(seed_variant(tmp_path, NAME))
    assert f"lab {NAME}: removing leftovers of an interrupted run" in lines[0]
    assert fake_lab.first("remove_fabric") < fake_lab.first("create_fabric")
    assert len(fake_lab.runtime.nodes(NAME)) == 6


def test_up_rebuilds_a_lab_whose_up_never_finished(fake_lab: FakeLab, tmp_path: Path) -> None:
    lab = seed_variant(tmp_path, NAME)
    fake_lab.up(lab)
    LabState.of(NAME).record_file.unlink()  # as if `up` died before writing its record
    fake_lab.forget_commands()
    lines = fake_lab.up(lab)
    assert any("is incomplete" in line and "rebuilding it" in line for line in lines), lines
    assert fake_lab.first("remove_lab") < fake_lab.first("create_node")
    assert LabState.of(NAME).read_record() is not None
    assert len(fake_lab.runtime.nodes(NAME)) == 6


def test_down_removes_containers_namespace_and_state_once(
    fake_lab: FakeLab, tmp_path: Path
) -> None:
    fake_lab.up(seed_variant(tmp_path, NAME))
    removed = down(NAME, fake_lab.runtime, Progress(quiet=True))
    assert len([r for r in removed if r.startswith("container ")]) == 6
    assert f"netns labctl-{NAME}" in removed
    assert nothing_left(fake_lab)
    assert down(NAME, fake_lab.runtime, Progress(quiet=True)) == []
