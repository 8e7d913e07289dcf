"""IPsec over TCP against idle and hostile connections (issue 8: 199 idle connections from
one host locked every client out). Real kernel TCP on loopback: 127.0.0.1 plays the
hostile host, 127.0.0.2 another client (the whole 127/8 is local on Linux)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from labctl.agent.loop import EventLoop
from labctl.agent.tcp_transport import StreamConnection, TcpServer
from labctl.esp import frame_ike
from tests.unit.agent.test_tcp_transport_local import pump

HOSTILE, OTHER = "127.0.0.1", "127.0.0.2"


@pytest.fixture
def loop() -> Iterator[EventLoop]:
    lp = EventLoop()
    yield lp
    lp.close()


class Server:
    """A TcpServer plus what it reported."""

    def __init__(self, loop: EventLoop, **limits) -> None:
        self.closed: list[tuple[StreamConnection, str]] = []
        self.server = TcpServer(
            loop,
            "127.0.0.1",
            0,
            on_ike=lambda message, conn: None,
            on_esp=lambda packet, conn: None,
            on_closed=lambda conn, reason: self.closed.append((conn, reason)),
            **limits,
        )
        self.port = self.server.address[1]

    def reasons(self) -> list[str]:
        return [reason for _, reason in self.closed]


@pytest.fixture
def make_server(loop: EventLoop) -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def make(**limits) -> Server:
        server = Server(loop, **limits)
        made.append(server)
        return server

    yield make
    for server in made:
        server.server.close()


@contextlib.contextmanager
def clients(
    loop: EventLoop, port: int, count: int, source: str = HOSTILE
) -> Iterator[list[socket.socket]]:
    socks = []
    try:
        for i in range(count):
            s = socket.socket()
            s.bind((source, 0))
            s.settimeout(2)
            s.connect(("127.0.0.1", port))
            socks.append(s)
            if i % 32 == 31:
                loop.run(0.01)  # let the server accept: the listen backlog is finite
        yield socks
    finally:
        for s in socks:
            s.close()


def hung_up(sock: socket.socket) -> bool:
    """The server closed this connection (EOF or reset), checked without blocking long."""
    sock.settimeout(0.5)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_one_host_cannot_lock_out_the_others(loop, make_server) -> None:
    """The issue's case with the concentrator's limits (200 in all, 64 per address)."""
    s = make_server(max_connections=200, max_pending_per_address=64)
    with clients(loop, s.port, 200) as hostile:
        pump(loop, lambda: s.server.accepted + s.server.refused["per_address"] >= 200)
        assert s.server.accepted == 64
        assert s.server.refused["per_address"] == 136
        assert sum(hung_up(h) for h in hostile[-5:]) == 5  # refused ones see the hang-up
        with clients(loop, s.port, 1, OTHER) as (other,):
            pump(loop, lambda: any(c.peer[0] == OTHER for c in s.server.connections.values()))
            other.sendall(frame_ike(b"\x01" * 40, seq=1, from_client=True))
            loop.run(0.1)
            assert not hung_up(other)
    assert s.server.stats()["refused_by_reason"]["per_address"] == 136


def test_full_server_evicts_the_oldest_idle_connection_without_a_session(loop, make_server) -> None:
    s = make_server(max_connections=3, max_pending_per_address=10)
    with clients(loop, s.port, 3) as hostile:
        pump(loop, lambda: len(s.server.connections) == 3)
        with clients(loop, s.port, 1, OTHER):
            pump(loop, lambda: s.closed)
            ((evicted, reason),) = s.closed
            assert reason.startswith("evicted")
            assert evicted.local[1] == s.port and evicted.peer[0] == HOSTILE
            assert hung_up(hostile[0])  # the first one, the longest idle
            assert {c.peer[0] for c in s.server.connections.values()} == {HOSTILE, OTHER}
    assert s.server.evicted == 1 and s.server.closed_reasons["evicted"] == 1


def test_connections_with_a_session_are_never_evicted(loop, make_server) -> None:
    s = make_server(max_connections=2, max_pending_per_address=10)
    with clients(loop, s.port, 2) as established:
        pump(loop, lambda: len(s.server.connections) == 2)
        for peer in list(s.server.connections):
            assert s.server.bind(peer, owner=f"session {peer[1]}")
        with clients(loop, s.port, 1, OTHER) as (late,):
            pump(loop, lambda: s.server.refused["full"] == 1)
            assert hung_up(late)
        assert not s.closed and not hung_up(established[0])


def test_idle_handshake_and_idle_session_are_closed(loop, make_server) -> None:
    s = make_server(handshake_idle=0.3, established_idle=0.6, first_record_timeout=5.0)
    with clients(loop, s.port, 2) as (half, done):
        for sock in (half, done):
            sock.sendall(frame_ike(b"\x01" * 40, seq=1, from_client=True))
        pump(loop, lambda: sum(c.ike_rx for c in s.server.connections.values()) == 2)
        session_peer = done.getsockname()
        assert s.server.bind(session_peer, owner="session")
        pump(loop, lambda: len(s.closed) == 1)
        assert s.reasons()[0].startswith("handshake idle: nothing received for")
        assert s.closed[0][0].peer == half.getsockname()
        pump(loop, lambda: len(s.closed) == 2)
        assert s.reasons()[1].startswith("idle: nothing received for")
    assert s.server.closed_reasons == {"handshake idle": 1, "idle": 1}


def test_a_trickle_of_records_cannot_hold_a_connection_forever(loop, make_server) -> None:
    s = make_server(handshake_idle=5.0, handshake_timeout=0.5)
    with clients(loop, s.port, 1) as (slow,):
        deadline = time.monotonic() + 3
        while not s.closed and time.monotonic() < deadline:
            slow.sendall(frame_ike(b"\x01" * 40, seq=1, from_client=True))
            loop.run(0.1)
        assert s.reasons() == ["handshake timeout: IKE not completed within 0.5 s"]


def test_a_connection_that_never_sends_ike_is_closed(loop, make_server) -> None:
    s = make_server(first_record_timeout=0.2)
    with clients(loop, s.port, 1) as (silent,):
        pump(loop, lambda: s.closed)
        assert s.reasons() == ["no IKE: none within 0.2 s of connecting"]
        assert hung_up(silent)
