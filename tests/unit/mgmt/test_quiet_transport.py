"""labctl's SSH transports poll for their own close once a second (issue 13: with a
session to each of 200 nodes held open through `up`'s push, paramiko's 0.1 s poll cost
labctl tens of CPU-seconds), and closing one is still immediate."""

from __future__ import annotations

import socket
import time

import paramiko
import pytest

from labctl.mgmt import ssh
from labctl.mgmt.ssh import NodeSession, QuietTransport


class CountingSocket:
    """A socket that counts the reads paramiko's thread makes (each a wake-up)."""

    def __init__(self, sock: socket.socket):
        self.sock, self.reads = sock, 0

    def recv(self, size: int) -> bytes:
        self.reads += 1
        return self.sock.recv(size)

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


@pytest.mark.parametrize(("factory", "most"), [(QuietTransport, 4), (paramiko.Transport, None)])
def test_an_idle_transport_wakes_once_a_second(factory, most) -> None:
    ours, peer = socket.socketpair()
    counting = CountingSocket(ours)
    transport = factory(counting)
    try:
        transport.start()  # sends its banner, then waits for the peer's: silence
        peer.recv(256)
        time.sleep(2.5)
        if most is not None:
            assert ours.gettimeout() == 1.0 and counting.reads <= most
        else:  # paramiko's own default, for contrast: the test can tell them apart
            assert counting.reads >= 15
        started = time.monotonic()
        transport.close()
        assert time.monotonic() - started < 0.5  # closing does not wait for a wake-up
    finally:
        peer.close()


def test_node_sessions_connect_with_the_quiet_transport(monkeypatch, tmp_path) -> None:
    seen: dict = {}

    def connect(self, hostname, **kwargs):
        seen.update(kwargs, hostname=hostname)

    known = tmp_path / "known"
    known.write_text("")
    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    monkeypatch.setattr(paramiko.Ed25519Key, "from_private_key_file", lambda path: "key")
    monkeypatch.setattr(ssh, "dial", lambda address, netns, timeout: "socket")
    NodeSession("n1", ssh.IPv4Address("172.30.0.2"), tmp_path / "key", known).connect()
    assert seen["transport_factory"] is QuietTransport and seen["sock"] == "socket"
