"""Fixtures for lifecycle tests: a lab on a fake runtime (see fakes.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from labctl.naming import fabric_netns

from .fakes import FakeLab

# The modules, not the functions of the same name that labctl.lifecycle exports.
down_module = importlib.import_module("labctl.lifecycle.down")
push_module = importlib.import_module("labctl.lifecycle.push")
session_module = importlib.import_module("labctl.lifecycle.session")
up_module = importlib.import_module("labctl.lifecycle.up")


@pytest.fixture
def fake_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLab:
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    lab = FakeLab(tmp_path)
    monkeypatch.setattr(session_module, "NodeSession", lab.session_for)
    monkeypatch.setattr(up_module, "_resolve_images", lambda lab_, progress: dict(FAKE_IMAGES))
    monkeypatch.setattr(up_module, "list_named_netns", lambda: sorted(lab.netns))

    def create_fabric(lab_) -> None:
        lab.timeline.append(("create_fabric", lab_.name))
        lab.netns.add(fabric_netns(lab_.name))

    def remove_fabric(name: str) -> bool:
        lab.timeline.append(("remove_fabric", name))
        return _drop(lab.netns, name)

    def step(name: str):
        return lambda *args, **kwargs: lab.timeline.append((name, _subject(args)))

    monkeypatch.setattr(up_module, "create_fabric", create_fabric)
    monkeypatch.setattr(up_module, "connect_endpoints", step("connect_endpoints"))
    monkeypatch.setattr(up_module, "create_mgmt_bridge", step("create_mgmt_bridge"))
    monkeypatch.setattr(up_module, "attach_nodes", step("attach_nodes"))
    monkeypatch.setattr(up_module, "configure_node", step("configure_node"))
    monkeypatch.setattr(down_module, "remove_fabric", remove_fabric)
    monkeypatch.setattr(
        push_module, "write_sysctls", lambda path, values: lab.sysctls.append(values)
    )
    return lab


# Role -> tag, as `ensure_images` would return them.
FAKE_IMAGES = {"base": "labctl/base:fake", "node": "labctl/node:fake", "vpn": "labctl/vpn:fake"}


def _subject(args: tuple) -> str:
    """The node a wiring step is about (configure_node(lab, name, ...)), else the lab."""
    if len(args) > 1 and isinstance(args[1], str):
        return args[1]
    return getattr(args[0], "name", str(args[0])) if args else ""


def _drop(names: set[str], lab: str) -> bool:
    name = fabric_netns(lab)
    present = name in names
    names.discard(name)
    return present
