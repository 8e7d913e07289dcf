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
    monkeypatch.setattr(up_module, "_image_for", lambda kind, image, images: "fake-image")
    monkeypatch.setattr(up_module, "_resolve_images", lambda lab_, progress: {})
    monkeypatch.setattr(up_module, "list_named_netns", lambda: sorted(lab.netns))
    monkeypatch.setattr(
        up_module, "create_fabric", lambda lab_: lab.netns.add(fabric_netns(lab_.name))
    )
    monkeypatch.setattr(up_module, "connect_endpoints", lambda *args: [])
    monkeypatch.setattr(up_module, "create_mgmt_bridge", lambda *args: None)
    monkeypatch.setattr(up_module, "attach_nodes", lambda *args: None)
    monkeypatch.setattr(up_module, "configure_node", lambda *args, **kwargs: None)
    monkeypatch.setattr(down_module, "remove_fabric", lambda name: _drop(lab.netns, name))
    monkeypatch.setattr(
        push_module, "write_sysctls", lambda path, values: lab.sysctls.append(values)
    )
    return lab


def _drop(names: set[str], lab: str) -> bool:
    name = fabric_netns(lab)
    present = name in names
    names.discard(name)
    return present
