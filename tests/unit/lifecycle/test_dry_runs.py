"""`up/down/push --dry-run` come from the plans the real commands execute: what they list
is what the commands then do, and making the plan changes nothing."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from labctl.lifecycle import LabHandle, plan_down, plan_push, plan_up
from labctl.naming import state_dir
from labctl.progress import Progress

from .fakes import FakeLab, seed_variant

down_module = importlib.import_module("labctl.lifecycle.down")

NAME = "u-dry"


def test_plan_of_a_new_lab_lists_what_up_then_creates(fake_lab: FakeLab, tmp_path: Path) -> None:
    lab = seed_variant(tmp_path, NAME)
    plan = plan_up(lab, fake_lab.runtime)
    assert plan.action == "build" and not plan.leftovers
    text = "\n".join(plan.describe())
    assert fake_lab.runtime.calls == [] and not state_dir(NAME).exists()  # nothing made
    for node in lab.nodes:
        assert f"create container labctl-{NAME}-{node} (" in text
    assert f"create netns labctl-{NAME} with bridge mgmt (172.30.0.0/24)" in text
    assert "create link public: bridge br2 [router:eth2, vpn3000:public]" in text
    assert text.index("push vpn3000") < text.index("push client1")  # clients last, as up
    fake_lab.up(lab)
    created = sorted(n for call, n in fake_lab.runtime.calls if call == "create_node")
    assert created == sorted(f"{NAME}/{node}" for node in lab.nodes)


def test_plan_of_a_running_lab(fake_lab: FakeLab, tmp_path: Path) -> None:
    fake_lab.up(seed_variant(tmp_path, NAME))
    same = plan_up(seed_variant(tmp_path, NAME), fake_lab.runtime)
    assert same.action == "nothing" and "nothing to do" in same.describe()[0]
    psk = plan_up(seed_variant(tmp_path, NAME, ("psk: cisco123", "psk: n3w")), fake_lab.runtime)
    assert psk.action == "push" and psk.changed == ["vpn3000"]
    assert (
        "  push vpn3000: /etc/labctl/node.json, /etc/labctl/fragmentation.nft, "
        "/etc/labctl/vpn.json" in psk.describe()
    )
    moved = seed_variant(tmp_path, NAME, ("10.10.10.3/24", "10.10.10.9/24"))
    assert plan_up(moved, fake_lab.runtime).action == "refuse"
    recreate = plan_up(moved, fake_lab.runtime, recreate=True)
    assert recreate.action == "rebuild" and "interface eth1" in recreate.reason


def test_plan_down_lists_what_down_removes(
    fake_lab: FakeLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(down_module, "list_named_netns", lambda: sorted(fake_lab.netns))
    lab = seed_variant(tmp_path, NAME)
    fake_lab.up(lab)
    planned = plan_down(NAME, fake_lab.runtime)
    assert f"netns labctl-{NAME} (its bridges and veths with it)" in planned
    assert f"state {state_dir(NAME)}" in planned
    removed = down_module.down(NAME, fake_lab.runtime, Progress(quiet=True))
    assert sorted(r for r in removed if r.startswith("container")) == sorted(
        p for p in planned if p.startswith("container")
    )
    assert plan_down(NAME, fake_lab.runtime) == []


def test_plan_push_compares_files_on_the_node(fake_lab: FakeLab, tmp_path: Path) -> None:
    fake_lab.up(seed_variant(tmp_path, NAME))
    changed = seed_variant(tmp_path, NAME, ("psk: cisco123", "psk: n3w-s3cret"))
    with LabHandle.open(changed, fake_lab.runtime) as handle:
        fake_lab.forget_commands()
        lines = plan_push(handle, "vpn3000")
        assert "change /etc/labctl/vpn.json" in lines
        assert any(line.startswith("run vpn service reload") for line in lines)
        assert not any("n3w-s3cret" in line for line in lines)
        assert not [c for c in fake_lab.commands("vpn3000") if "reload" in c or "mv " in c]
        assert "unchanged /etc/labctl/vpn.json" in plan_push(
            LabHandle.open(seed_variant(tmp_path, NAME), fake_lab.runtime), "vpn3000"
        )
