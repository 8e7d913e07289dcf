"""GSO only batches system calls: the agent makes its interfaces cut runs into datagrams
before the wire, and keeps GSO off where it could not."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from labctl.agent import udp_offload


@pytest.fixture
def interfaces(tmp_path: Path) -> Path:
    for name in ("lo", "eth0", "eth1"):
        (tmp_path / name).mkdir()
    return tmp_path


@pytest.fixture(autouse=True)
def offload_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(udp_offload, "ENABLED", True)
    monkeypatch.setattr(udp_offload, "SEGMENTED_AT_INTERFACES", False)


def test_every_interface_but_loopback_segments_and_gso_is_used(
    interfaces: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **_: calls.append(cmd))
    assert udp_offload.segment_before_the_wire(interfaces)
    assert calls == [
        ["ethtool", "-K", "eth0", "tx-udp-segmentation", "off"],
        ["ethtool", "-K", "eth1", "tx-udp-segmentation", "off"],
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert udp_offload.GsoSender(sock).usable


def test_without_ethtool_gso_stays_off(interfaces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(cmd: list[str], **_: object) -> None:
        raise FileNotFoundError("ethtool")

    monkeypatch.setattr(subprocess, "run", missing)
    assert not udp_offload.segment_before_the_wire(interfaces)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert not udp_offload.GsoSender(sock).usable
