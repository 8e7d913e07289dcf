"""IPsec over TCP in one process, no root: a TcpServer and a TcpConnector on 127.0.0.1,
two data planes with fake TUNs, real kernel TCP in between (segmentation, coalescing,
partial writes and resets are the kernel's, not simulated)."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from labctl.agent.dataplane import Dataplane, Encap, UnknownSpi
from labctl.agent.loop import EventLoop
from labctl.agent.tcp_transport import StreamConnection, TcpConnector, TcpServer
from labctl.esp import ESP_TRAILER, frame_esp, frame_ike
from tests.unit.agent.test_dataplane_local import CLIENT_IP, LAN_HOST, FakeTun, suite_sas
from tests.unit.esp.esp_helpers import icmp_echo


def pump(loop: EventLoop, until: Callable[[], object], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within the timeout")
        loop.run(0.01)


class DeepTun(FakeTun):
    """A fake TUN whose queue holds megabytes (an AF_UNIX datagram pair holds only
    net.unix.max_dgram_qlen = 10 packets, far fewer than one TCP read delivers)."""

    def __init__(self, name: str) -> None:
        self._ours, self.kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (self._ours, self.kernel):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._ours.setblocking(False)
        self.kernel.settimeout(0)
        self.fd = self._ours.fileno()
        self.name = name
        self.mtu = 1400


@dataclass
class Side:
    tun: FakeTun
    dp: Dataplane
    ike: list[tuple[bytes, StreamConnection]] = field(default_factory=list)
    closed: list[tuple[StreamConnection, str]] = field(default_factory=list)
    events: list = field(default_factory=list)


@pytest.fixture
def loop() -> Iterator[EventLoop]:
    lp = EventLoop()
    yield lp
    lp.close()


@pytest.fixture
def sides(loop: EventLoop) -> Iterator[tuple[Side, Side, TcpServer]]:
    made = []

    def side(name: str) -> Side:
        tun = DeepTun(name)
        s = Side(tun, None)  # type: ignore[arg-type]
        s.dp = Dataplane(loop, tun, on_event=s.events.append)
        made.append(s)
        return s

    client, gateway = side("a"), side("b")
    server = TcpServer(
        loop,
        "127.0.0.1",
        0,
        on_ike=lambda m, c: gateway.ike.append((m, c)),
        on_esp=gateway.dp.receive_stream_esp,
        on_closed=lambda c, r: gateway.closed.append((c, r)),
        first_record_timeout=5.0,
    )
    yield client, gateway, server
    server.close()
    for s in made:
        s.dp.close()
        s.tun.close()


def connect(loop: EventLoop, client: Side, server: TcpServer, **kw) -> StreamConnection:
    done: list = []
    TcpConnector(
        loop,
        server.address,
        on_connected=done.append,
        on_failed=lambda reason: done.append(reason),
        on_ike=lambda m, c: client.ike.append((m, c)),
        on_esp=client.dp.receive_stream_esp,
        on_closed=lambda c, r: client.closed.append((c, r)),
        **kw,
    )
    pump(loop, lambda: done)
    assert isinstance(done[0], StreamConnection), done
    return done[0]


def tunnels(client: Side, gateway: Side, conn: StreamConnection, server: TcpServer) -> None:
    a_out, a_in, b_out, b_in = suite_sas(0xA0000001, 0xB0000001, "tcp")
    client.dp.add_tunnel(
        "to-b",
        encap=Encap.TCP,
        remote_networks=["192.168.2.0/24"],
        outbound=a_out,
        inbound=[a_in],
        stream=conn,
        send_keepalives=True,  # ignored on TCP
    )
    pump(loop_of(client), lambda: server.connection(conn.local))
    gateway.dp.add_tunnel(
        "client1",
        encap=Encap.TCP,
        remote_networks=[f"{CLIENT_IP}/32"],
        outbound=b_out,
        inbound=[b_in],
        stream=server.connection(conn.local),
    )


def loop_of(side: Side) -> EventLoop:
    return side.dp._loop


def test_ike_then_esp_both_ways_over_one_connection(loop, sides) -> None:
    client, gateway, server = sides
    conn = connect(loop, client, server)
    assert conn.peer == server.address and conn.bytes_tx == 0
    for n in range(3):
        assert conn.send_ike(b"ike-%d" % n + bytes(40))
    pump(loop, lambda: len(gateway.ike) == 3)
    assert [m for m, _ in gateway.ike] == [b"ike-%d" % n + bytes(40) for n in range(3)]
    server_conn = gateway.ike[0][1]
    assert server_conn.peer == conn.local and server.connection(conn.local) is server_conn
    assert server.send_ike(b"reply" + bytes(30), conn.local)
    pump(loop, lambda: client.ike)
    assert client.ike[0][0] == b"reply" + bytes(30)

    tunnels(client, gateway, conn, server)
    requests = [icmp_echo(CLIENT_IP, LAN_HOST, seq) for seq in range(1, 51)]
    for p in requests:
        client.tun.inject(p)
    got: list[bytes] = []
    pump(loop, lambda: got.extend(gateway.tun.received()) or len(got) >= 50)
    assert got == requests
    replies = [icmp_echo(LAN_HOST, CLIENT_IP, seq) for seq in range(1, 51)]
    for p in replies:
        gateway.tun.inject(p)
    got = []
    pump(loop, lambda: got.extend(client.tun.received()) or len(got) >= 50)
    assert got == replies
    ta, tb = client.dp.tunnel("to-b"), gateway.dp.tunnel("client1")
    assert (ta.counters.tx_packets, tb.counters.rx_packets) == (50, 50)
    assert (tb.counters.tx_packets, ta.counters.rx_packets) == (50, 50)
    assert ta.counters.drops == {} == tb.counters.drops
    assert tb.peer == conn.local and tb.endpoint_changes == 0
    assert (conn.esp_tx, server_conn.esp_rx) == (50, 50)
    loop.run(1.2)  # housekeeping runs: still no keepalives on TCP
    assert ta.counters.keepalives_tx == 0


def test_backlog_is_bounded_and_framing_survives_partial_writes(loop, sides) -> None:
    client, gateway, server = sides
    conn = connect(loop, client, server, max_pending=64 * 1024)
    conn._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    tunnels(client, gateway, conn, server)
    server_conn = server.connection(conn.local)
    loop.remove_reader(server_conn._sock)  # the gateway stops reading: the pipe fills up
    ta = client.dp.tunnel("to-b")
    big = icmp_echo(CLIENT_IP, LAN_HOST, 1, data=bytes(1300))
    sent = 0
    while "stream_backlog" not in ta.counters.drops and sent < 20000:
        for _ in range(50):
            client.tun.inject(big)
        sent += 50
        loop.run(0.005)
    assert ta.counters.drops.get("stream_backlog", 0) > 0, "the backlog never filled"
    assert conn.pending <= 64 * 1024 + len(big) + 100 and conn.partial_writes > 0
    loop.add_reader(server_conn._sock, server_conn._on_readable)  # reading again
    pump(loop, lambda: conn.pending == 0, timeout=10)
    delivered = ta.counters.tx_packets
    arrived: list[bytes] = []
    pump(loop, lambda: arrived.extend(gateway.tun.received()) or len(arrived) >= delivered, 10)
    assert arrived == [big] * delivered  # every queued record intact and in order
    assert server_conn.deframer.errors == {} and not server_conn.closed
    assert gateway.dp.tunnel("client1").counters.drops == {}


def test_peer_reset_is_reported_and_later_sends_are_dropped(loop, sides) -> None:
    client, gateway, server = sides
    conn = connect(loop, client, server)
    tunnels(client, gateway, conn, server)
    server_conn = server.connection(conn.local)
    server_conn._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server_conn.close("test closes it")  # RST to the client
    assert gateway.closed == [(server_conn, "test closes it")]
    assert server.connection(conn.local) is None
    pump(loop, lambda: client.closed)
    assert client.closed[0][0] is conn and conn.closed
    assert client.closed[0][1] == "receive failed: Connection reset by peer"
    client.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 1))
    loop.run(0.05)
    assert client.dp.tunnel("to-b").counters.drops == {"stream_closed": 1}
    assert not conn.send_ike(b"x" * 30)


def raw_client(server: TcpServer) -> socket.socket:
    s = socket.create_connection(server.address, timeout=2)
    return s


def test_garbage_without_trailers_closes_with_a_framing_error(loop, sides) -> None:
    _, gateway, server = sides
    with raw_client(server) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"x" * 17000)
        pump(loop, lambda: gateway.closed)
        conn, reason = gateway.closed[0]
        assert reason.startswith("framing error") and "no cTCP trailer" in reason
        assert conn.deframer.errors == {"oversize": 1}
        assert s.recv(10) == b""  # the server hung up
    assert server.connections == {} and server.closed_reasons == {"framing error": 1}


def test_esp_of_another_connection_and_unknown_spis_are_dropped(loop, sides) -> None:
    client, gateway, server = sides
    conn = connect(loop, client, server)
    tunnels(client, gateway, conn, server)
    # a second client replays the first one's ESP on its own connection
    client.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 1))
    sealed: list[bytes] = []
    orig = conn.send_esp
    conn.send_esp = lambda esp: sealed.append(bytes(esp)) or orig(esp)  # type: ignore[method-assign]
    client.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 2))
    pump(loop, lambda: sealed)
    with raw_client(server) as s:
        s.sendall(sealed[0] + ESP_TRAILER + frame_esp(b"\x99" * 40))
        pump(loop, lambda: gateway.dp.tunnel("client1").counters.drops.get("wrong_stream"))
        pump(loop, lambda: gateway.dp.drops.get("unknown_spi"))
    assert any(isinstance(e, UnknownSpi) and e.spi == 0x99999999 for e in gateway.events)


def test_silent_connection_times_out(loop) -> None:
    """(The limits on how many connections may wait: tests/unit/agent/test_tcp_guard.py.)"""
    closed: list[str] = []
    server = TcpServer(
        loop,
        "127.0.0.1",
        0,
        on_ike=lambda m, c: None,
        on_esp=lambda m, c: None,
        on_closed=lambda c, r: closed.append(r),
        first_record_timeout=0.2,
    )
    try:
        with raw_client(server) as first:
            first.sendall(frame_esp(b"\x99" * 40))  # ESP, but never an IKE message
            pump(loop, lambda: closed)
            assert closed == ["no IKE: none within 0.2 s of connecting"]
            assert first.recv(10) == b""
    finally:
        server.close()


def test_connect_refused_is_reported_from_the_loop(loop) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    result: list = []
    connector = TcpConnector(
        loop,
        ("127.0.0.1", port),
        on_connected=result.append,
        on_failed=result.append,
        on_ike=lambda m, c: None,
        on_esp=lambda m, c: None,
        on_closed=lambda c, r: None,
    )
    pump(loop, lambda: result)
    assert result == [f"TCP connect to 127.0.0.1:{port}: ECONNREFUSED"]
    assert connector.state == "failed"


def test_ike_records_are_ctcp_records_on_the_wire(loop, sides) -> None:
    _, gateway, server = sides
    with raw_client(server) as s:
        s.sendall(frame_ike(b"A" * 28, seq=1, from_client=True) + frame_ike(b"B" * 28)[:5])
        pump(loop, lambda: gateway.ike)
        s.sendall(frame_ike(b"B" * 28)[5:])
        pump(loop, lambda: len(gateway.ike) == 2)
        conn = gateway.ike[0][1]
        assert [m for m, _ in gateway.ike] == [b"A" * 28, b"B" * 28]
        assert server.send_ike(b"C" * 28, conn.peer)
        assert server.send_ike(b"D" * 28, conn.peer)
        wire = b""
        while len(wire) < 2 * (8 + 28 + 16):
            wire += s.recv(200)
        # server to client: UDP 500 -> 500, checksum 0; trailer seq 1, 2; flags 0
        assert wire[:52] == struct.pack("!HHHH", 500, 500, 36, 0) + b"C" * 28 + bytes.fromhex(
            "00000000 0001 0000 21456c6910 11 0100"
        )
        assert wire[52 + 8 : 52 + 36] == b"D" * 28
        assert wire[52 + 36 + 4 : 52 + 36 + 6] == b"\x00\x02"  # the next IKE seq


def test_a_tcp_tunnels_esp_arriving_in_a_datagram_is_dropped(loop, sides) -> None:
    """An SA negotiated on a TCP connection is only good on that connection."""
    from labctl.agent.esp_sockets import open_udp

    client, _, server = sides
    udp = open_udp("127.0.0.1", 0)
    tun = DeepTun("c")
    gateway = Dataplane(loop, tun, natt_socket=udp)
    try:
        conn = connect(loop, client, server)
        a_out, _, b_out, b_in = suite_sas(0xA0000001, 0xB0000001, "tcp")
        pump(loop, lambda: server.connection(conn.local))
        gateway.add_tunnel(
            "client1",
            encap=Encap.TCP,
            remote_networks=[f"{CLIENT_IP}/32"],
            outbound=b_out,
            inbound=[b_in],
            stream=server.connection(conn.local),
        )
        esp = bytes(a_out.seal(icmp_echo(CLIENT_IP, LAN_HOST, 1)))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(esp, udp.getsockname())
        pump(loop, lambda: gateway.tunnel("client1").counters.drops)
        assert gateway.tunnel("client1").counters.drops == {"wrong_transport": 1}
        assert tun.received() == []
    finally:
        gateway.close()
        tun.close()
        udp.close()
