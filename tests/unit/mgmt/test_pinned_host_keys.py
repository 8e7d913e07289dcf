"""Each session gets its node's pinned host key from the lab's known_hosts, parsed once
per version of the file, not once per connection (issue 13: 200 entries parsed for each
of 200 connections was 12.5 ms of labctl CPU per node)."""

from __future__ import annotations

import os
from ipaddress import IPv4Address

import paramiko
import pytest

from labctl.mgmt import ssh
from labctl.mgmt.keys import KeyPair
from labctl.mgmt.ssh import NodeSession


@pytest.fixture
def lab(monkeypatch, tmp_path):
    """Three pinned nodes; connect() records the host keys each client was given."""
    keys = {f"172.30.0.{i}": KeyPair.generate(f"n{i}") for i in (2, 3, 4)}
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"{a} {k.public_openssh}\n" for a, k in keys.items()))
    given: dict[str, dict] = {}

    def connect(self, hostname, **kwargs):
        given[hostname] = {h: dict(e) for h, e in self.get_host_keys().items()}

    loads = []
    real_load = paramiko.HostKeys.load
    monkeypatch.setattr(
        paramiko.HostKeys, "load", lambda self, f: (loads.append(f), real_load(self, f))
    )
    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    monkeypatch.setattr(paramiko.Ed25519Key, "from_private_key_file", lambda path: "key")
    monkeypatch.setattr(ssh, "dial", lambda address, netns, timeout: "socket")
    return keys, known, given, loads


def _session(address: str, known) -> NodeSession:
    return NodeSession(address, IPv4Address(address), known.parent / "key", known)


def test_each_client_gets_its_own_pin_and_the_file_is_parsed_once(lab) -> None:
    keys, known, given, loads = lab
    for address in keys:
        _session(address, known).connect()
    assert len(loads) == 1
    for address, pair in keys.items():
        assert list(given[address]) == [address]  # its own entry, nothing else
        (key,) = given[address][address].values()
        assert key.get_base64() == pair.public_openssh.split()[1]


def test_a_rewritten_file_is_read_again(lab) -> None:
    _, known, given, loads = lab
    _session("172.30.0.2", known).connect()
    other = KeyPair.generate("n2-again")
    known.write_text(f"172.30.0.2 {other.public_openssh}\n")
    os.utime(known, ns=(1, 1))  # a different version even within the mtime's resolution
    _session("172.30.0.2", known).connect()
    assert len(loads) == 2
    (key,) = given["172.30.0.2"]["172.30.0.2"].values()
    assert key.get_base64() == other.public_openssh.split()[1]


def test_an_address_without_a_pin_gets_no_key(lab) -> None:
    _, known, given, _ = lab
    _session("172.30.0.9", known).connect()
    assert given["172.30.0.9"] == {}  # the RejectPolicy refuses whatever it presents


def test_a_missing_known_hosts_fails_as_before(lab, tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        _session("172.30.0.2", tmp_path / "nowhere").connect()
