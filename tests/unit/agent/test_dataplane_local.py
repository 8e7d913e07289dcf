"""Dataplane logic in one process, no root: two data planes joined by real UDP on 127.0.0.1.

The TUN is replaced by an AF_UNIX datagram socketpair (one packet per read/write, like a
TUN fd); the test holds the "kernel" end. Real TUN/netns/NAT runs in the integration test.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from labctl.agent.dataplane import (
    Dataplane,
    DataplaneEvent,
    Encap,
    InboundSaRetired,
    OutboundSaExhausted,
    PeerEndpointChanged,
    ReceiveBuffers,
    UnknownSpi,
    VolumeReached,
)
from labctl.agent.esp_sockets import open_udp
from labctl.agent.loop import EventLoop
from labctl.esp import CISCO_KEEPALIVE, EspSa
from labctl.esp.encap import NatTraversalFraming
from labctl.esp.sa import SEQ_MAX
from tests.unit.esp.esp_helpers import icmp_echo, keys, tcp_checksum_ok, tcp_syn

CLIENT_IP = "40.1.1.1"
LAN_HOST = "192.168.2.10"


class FakeTun:
    def __init__(self, name: str, mtu: int = 1400) -> None:
        self._ours, self.kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._ours.setblocking(False)
        self.kernel.settimeout(0)
        self.fd = self._ours.fileno()
        self.name = name
        self.mtu = mtu

    def inject(self, packet: bytes) -> None:
        """The kernel routes ``packet`` into the tunnel."""
        self.kernel.send(packet)

    def received(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.kernel.recv(65536))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self._ours.close()
        self.kernel.close()


@dataclass
class Node:
    dp: Dataplane
    tun: FakeTun
    sock: socket.socket
    events: list[DataplaneEvent] = field(default_factory=list)
    ike: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.sock.getsockname()


def suite_sas(spi_ab: int, spi_ba: int, label: str = "k") -> tuple[EspSa, EspSa, EspSa, EspSa]:
    """(a_out, a_in, b_out, b_in) for AES-128/SHA1 with distinct keys per direction."""
    ek1, ak1 = keys("aes128-cbc", "hmac-sha1-96", label + "ab")
    ek2, ak2 = keys("aes128-cbc", "hmac-sha1-96", label + "ba")
    return (
        EspSa.outbound(spi_ab, "aes128-cbc", "hmac-sha1-96", ek1, ak1),
        EspSa.inbound(spi_ba, "aes128-cbc", "hmac-sha1-96", ek2, ak2),
        EspSa.outbound(spi_ba, "aes128-cbc", "hmac-sha1-96", ek2, ak2),
        EspSa.inbound(spi_ab, "aes128-cbc", "hmac-sha1-96", ek1, ak1),
    )


@pytest.fixture
def loop() -> Iterator[EventLoop]:
    lp = EventLoop()
    yield lp
    lp.close()


@pytest.fixture
def make_node(loop: EventLoop) -> Iterator[Callable[..., Node]]:
    made: list[Node] = []

    def make(name: str, encap: Encap = Encap.NATT, **kw) -> Node:
        tun = FakeTun(name)
        sock = open_udp("127.0.0.1", 0)
        node = Node(dp=None, tun=tun, sock=sock)  # type: ignore[arg-type]
        sockets = {"natt_socket": sock} if encap is Encap.NATT else {"cisco_socket": sock}
        node.dp = Dataplane(
            loop,
            tun,
            on_event=node.events.append,
            on_ike=lambda payload, src: node.ike.append((payload, src)),
            housekeeping_interval=0.05,
            **sockets,
            **kw,
        )
        made.append(node)
        return node

    yield make
    for node in made:
        node.dp.close()
        node.tun.close()
        node.sock.close()


def pump(loop: EventLoop, until: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within the timeout")
        loop.run(0.01)


def collect(loop: EventLoop, tun: FakeTun, count: int, timeout: float = 2.0) -> list[bytes]:
    got: list[bytes] = []
    pump(loop, lambda: bool(got.extend(tun.received())) or len(got) >= count, timeout)
    return got


def connect_pair(
    make_node: Callable[..., Node], encap: Encap = Encap.NATT, **kw
) -> tuple[Node, Node]:
    a, b = make_node("a", encap, **kw), make_node("b", encap, **kw)
    a_out, a_in, b_out, b_in = suite_sas(0xA0000001, 0xB0000001)
    a.dp.add_tunnel(
        "to-b",
        encap=encap,
        remote_networks=["192.168.2.0/24"],
        peer=b.endpoint,
        outbound=a_out,
        inbound=[a_in],
        send_keepalives=True,
    )
    # the gateway does not know the client's (NATed) endpoint until it hears from it
    b.dp.add_tunnel(
        "client1", encap=encap, remote_networks=[f"{CLIENT_IP}/32"], outbound=b_out, inbound=[b_in]
    )
    return a, b


def test_ping_both_ways_learns_endpoint_and_counts(loop: EventLoop, make_node) -> None:
    a, b = connect_pair(make_node)
    requests = [icmp_echo(CLIENT_IP, LAN_HOST, seq) for seq in range(1, 11)]
    b.tun.inject(icmp_echo(LAN_HOST, CLIENT_IP, 99))  # before any contact: no endpoint yet
    loop.run(0.05)
    assert b.dp.tunnel("client1").counters.drops == {"no_peer_endpoint": 1}
    for p in requests:
        a.tun.inject(p)
    assert collect(loop, b.tun, 10) == requests
    assert b.events == [PeerEndpointChanged("client1", None, a.endpoint)]
    replies = [icmp_echo(LAN_HOST, CLIENT_IP, seq) for seq in range(1, 11)]
    for p in replies:
        b.tun.inject(p)
    assert collect(loop, a.tun, 10) == replies
    ta, tb = a.dp.tunnel("to-b").counters, b.dp.tunnel("client1").counters
    total = sum(map(len, requests))
    assert (ta.tx_packets, ta.tx_bytes, tb.rx_packets, tb.rx_bytes) == (10, total, 10, total)
    assert (tb.tx_packets, ta.rx_packets) == (10, 10)
    assert ta.drops == {}
    stats = b.dp.stats()["tunnels"]["client1"]
    assert stats["peer"] == {"ip": "127.0.0.1", "port": a.endpoint[1]}
    assert stats["inbound_sas"][0]["packets"] == 10


def test_data_planes_on_one_loop_can_share_their_receive_buffers(
    loop: EventLoop, make_node
) -> None:
    """What a fleet does (one pair for every member): both ends read into the same two
    buffers, and every packet still arrives whole and in order, both ways at once."""
    shared = ReceiveBuffers()
    a, b = connect_pair(make_node, buffers=shared)
    assert a.dp._rx_buf is b.dp._rx_buf is shared.rx
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 0))
    assert collect(loop, b.tun, 1)  # b learns a's endpoint
    requests = [
        icmp_echo(CLIENT_IP, LAN_HOST, seq, bytes([seq]) * (64 + seq * 50)) for seq in range(1, 21)
    ]
    replies = [
        icmp_echo(LAN_HOST, CLIENT_IP, seq, bytes([seq]) * (1300 - seq * 40))
        for seq in range(1, 21)
    ]
    for request, reply in zip(requests, replies, strict=True):
        a.tun.inject(request)
        b.tun.inject(reply)
    got_a: list[bytes] = []
    got_b: list[bytes] = []

    def both_arrived() -> bool:
        got_a.extend(a.tun.received())
        got_b.extend(b.tun.received())
        return len(got_a) >= 20 and len(got_b) >= 20

    pump(loop, both_arrived)
    assert got_b == requests and got_a == replies


def test_drops_are_counted_and_loop_survives(loop: EventLoop, make_node) -> None:
    a, b = connect_pair(make_node)
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 1))
    collect(loop, b.tun, 1)
    evil = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    evil.bind(("127.0.0.1", 0))
    evil_addr = evil.getsockname()
    try:
        # capture a genuine ESP packet by sealing one more through a's SA... on the wire
        sniff = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sniff.bind(("127.0.0.1", 0))
        a.dp.set_peer("to-b", sniff.getsockname())
        a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 2))
        pump(loop, lambda: a.dp.tunnel("to-b").counters.tx_packets == 2)
        captured = sniff.recv(65536)
        sniff.close()
        a.dp.set_peer("to-b", b.endpoint)
        tampered = bytearray(captured)
        tampered[30] ^= 0x40
        for datagram in (
            bytes(tampered),  # auth
            captured,  # first delivery: accepted (sent from another port, but seq is newest)
            captured,  # replay
            b"\x00\x00\x00\x01" + bytes(40),  # unknown SPI
            b"\x01\x02",  # malformed datagram
            b"\xff",  # NAT keepalive
        ):
            evil.sendto(datagram, b.endpoint)
        pump(loop, lambda: b.dp.keepalives_rx == 1)
    finally:
        evil.close()
    drops = b.dp.tunnel("client1").counters.drops
    assert drops == {"auth": 1, "replay": 1}
    assert b.dp.drops == {"unknown_spi": 1, "malformed": 1}
    assert UnknownSpi(1, evil_addr) in b.events
    # the accepted copy came from the evil socket and was the newest: endpoint followed it
    assert b.dp.tunnel("client1").peer == evil_addr
    # data still flows afterwards
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 3))
    assert collect(loop, b.tun, 2)[-1] == icmp_echo(CLIENT_IP, LAN_HOST, 3)
    assert b.dp.tunnel("client1").peer == a.endpoint


def test_policy_check_and_routing_drops(loop: EventLoop, make_node) -> None:
    a, b = connect_pair(make_node)
    a.tun.inject(icmp_echo(CLIENT_IP, "10.99.0.1", 1))  # no tunnel covers 10.99.0.1
    a.tun.inject(b"\x60" + bytes(39))  # IPv6 on an IPv4 tunnel
    a.tun.inject(icmp_echo("6.6.6.6", LAN_HOST, 2))  # spoofed inner source
    pump(loop, lambda: b.dp.tunnel("client1").counters.drops.get("policy") == 1)
    assert a.dp.drops == {"no_route": 1, "not_ipv4": 1}
    assert b.tun.received() == []


def test_endpoint_follows_newest_authenticated_packet_only(loop: EventLoop, make_node) -> None:
    a, b = connect_pair(make_node)
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 1))
    collect(loop, b.tun, 1)
    rebound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # "the NAT picked a new port"
    rebound.bind(("127.0.0.1", 0))
    rebound.settimeout(2)
    try:
        sa = a.dp.tunnel("to-b").outbound
        assert sa is not None
        older, newer = (
            sa.seal(icmp_echo(CLIENT_IP, LAN_HOST, 2)),
            sa.seal(icmp_echo(CLIENT_IP, LAN_HOST, 3)),
        )
        rebound.sendto(newer, b.endpoint)
        collect(loop, b.tun, 1)
        assert b.events[-1] == PeerEndpointChanged("client1", a.endpoint, rebound.getsockname())
        a.sock.sendto(older, b.endpoint)  # late, reordered packet from the old mapping
        collect(loop, b.tun, 1)
        assert b.dp.tunnel("client1").peer == rebound.getsockname()
        b.tun.inject(icmp_echo(LAN_HOST, CLIENT_IP, 1))
        loop.run(0.05)
        reply = rebound.recv(65536)
        a_in = a.dp.tunnel("to-b").inbound
        (in_sa,) = a_in.values()
        assert in_sa.open(reply)[1] == icmp_echo(LAN_HOST, CLIENT_IP, 1)
        assert b.dp.tunnel("client1").endpoint_changes == 2
    finally:
        rebound.close()


def test_rekey_without_loss(loop: EventLoop, make_node) -> None:
    a, b = connect_pair(make_node, rekey_grace=0.3)
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 1))
    collect(loop, b.tun, 1)
    old_a_out = a.dp.tunnel("to-b").outbound
    assert old_a_out is not None
    in_flight = old_a_out.seal(icmp_echo(CLIENT_IP, LAN_HOST, 2))  # sealed before the switch
    a2_out, a2_in, b2_out, b2_in = suite_sas(0xA0000002, 0xB0000002, label="rekeyed")
    # responder side installs first (as after Quick Mode), then the initiator
    b.dp.install_sas("client1", outbound=b2_out, inbound=[b2_in])
    a.dp.install_sas("to-b", outbound=a2_out, inbound=[a2_in])
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 3))
    a.sock.sendto(in_flight, b.endpoint)
    got = collect(loop, b.tun, 2)
    assert sorted(got) == sorted([icmp_echo(CLIENT_IP, LAN_HOST, n) for n in (2, 3)])
    assert b2_in.packets == 1 and a2_out.packets == 1
    pump(loop, lambda: len(b.events) >= 2 and len(a.events) >= 1, timeout=2)
    assert InboundSaRetired("client1", 0xA0000001) in b.events
    assert InboundSaRetired("to-b", 0xB0000001) in a.events
    a.sock.sendto(old_a_out.seal(icmp_echo(CLIENT_IP, LAN_HOST, 4)), b.endpoint)
    pump(loop, lambda: b.dp.drops.get("unknown_spi") == 1)
    b.tun.inject(icmp_echo(LAN_HOST, CLIENT_IP, 5))
    assert collect(loop, a.tun, 1) == [icmp_echo(LAN_HOST, CLIENT_IP, 5)]
    counters = b.dp.tunnel("client1").counters
    assert (counters.rx_packets, counters.tx_packets) == (3, 1)


def test_a_volume_watch_reports_a_crossing_once(loop: EventLoop, make_node) -> None:
    """Kilobyte lifetimes: the sending end's watch fires on what it sealed (TUN side), the
    receiving end's on what it opened (socket side), each once, soon after the batch that
    crossed (the next check: a later batch or housekeeping, here every 50 ms)."""
    a, b = connect_pair(make_node)
    ping = icmp_echo(CLIENT_IP, LAN_HOST, 1)
    size = len(ping)
    a.dp.watch_volume(0xB0000001, 0xA0000001, 3 * size)  # a's pair: in B..., out A...
    b.dp.watch_volume(0xA0000001, 0xB0000001, 3 * size)
    b.dp.watch_volume(0x0BAD0001, 0x0BAD0002, 1)  # no such SA: dropped, never reported
    for seq in (1, 2):
        a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, seq))
        collect(loop, b.tun, 1)
    assert not [e for e in a.events + b.events if isinstance(e, VolumeReached)]
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 3))
    collect(loop, b.tun, 1)

    def reached() -> list[VolumeReached]:
        return [e for e in a.events + b.events if isinstance(e, VolumeReached)]

    pump(loop, lambda: len(reached()) == 2, timeout=0.5)
    assert [e for e in a.events if isinstance(e, VolumeReached)] == [
        VolumeReached("to-b", 0xB0000001, 3 * size)
    ]
    assert [e for e in b.events if isinstance(e, VolumeReached)] == [
        VolumeReached("client1", 0xA0000001, 3 * size)
    ]
    for seq in (4, 5):  # once: the watch is gone until the agent arms it again
        a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, seq))
    collect(loop, b.tun, 2)
    loop.run(0.2)  # housekeeping passes too
    assert len(reached()) == 2
    # a watch ends with its inbound SA
    b.dp.watch_volume(0xA0000001, 0xB0000001, 10 * size)
    b.dp.remove_inbound_sa(0xA0000001)
    assert b.dp._volume_watches == {}


def test_ike_demux_and_send_on_4500(loop: EventLoop, make_node) -> None:
    a, b = connect_pair(make_node)
    ike = bytes(range(28)) + b"payloads"
    assert a.dp.send_ike(ike, b.endpoint)
    pump(loop, lambda: bool(b.ike))
    assert b.ike == [(ike, a.endpoint)]
    assert (a.dp.ike_tx, b.dp.ike_rx) == (1, 1)


def test_nat_keepalives_when_idle(loop: EventLoop, make_node) -> None:
    a, b = connect_pair(make_node, keepalive_interval=0.2)
    pump(loop, lambda: b.dp.keepalives_rx >= 2, timeout=3)
    assert a.dp.tunnel("to-b").counters.keepalives_tx >= 2
    assert b.dp.tunnel("client1").counters.keepalives_tx == 0  # not behind NAT: silent
    # traffic resets the idle timer: while busy, no keepalives
    sent = a.dp.tunnel("to-b").counters.keepalives_tx
    for seq in range(12):
        a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, seq))
        loop.run(0.05)
    assert a.dp.tunnel("to-b").counters.keepalives_tx == sent


def test_cisco_udp_encapsulation(loop: EventLoop, make_node) -> None:
    a, b = connect_pair(make_node, Encap.CISCO)
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 1))
    assert collect(loop, b.tun, 1) == [icmp_echo(CLIENT_IP, LAN_HOST, 1)]
    a.dp.send_keepalive("to-b")
    a.sock.sendto(CISCO_KEEPALIVE, b.endpoint)
    pump(loop, lambda: b.dp.keepalives_rx == 2)
    assert b.dp.tunnel("client1").counters.keepalives_rx == 2


def test_mss_clamped_both_directions(loop: EventLoop, make_node) -> None:
    a, b = connect_pair(make_node)
    a.tun.inject(tcp_syn(CLIENT_IP, LAN_HOST, mss=1460))
    (got,) = collect(loop, b.tun, 1)
    assert int.from_bytes(got[42:44], "big") == 1360  # TUN MTU 1400 - 40
    assert tcp_checksum_ok(got)
    b.tun.inject(tcp_syn(LAN_HOST, CLIENT_IP, mss=1200, sport=5201, dport=40000))
    (back,) = collect(loop, a.tun, 1)
    assert back == tcp_syn(LAN_HOST, CLIENT_IP, mss=1200, sport=5201, dport=40000)


def test_dummy_packets_and_sequence_exhaustion(loop: EventLoop, make_node) -> None:
    a, b = connect_pair(make_node)
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 1))
    collect(loop, b.tun, 1)
    sa = a.dp.tunnel("to-b").outbound
    assert sa is not None
    a.sock.sendto(sa.seal(b"", next_header=59), b.endpoint)
    pump(loop, lambda: b.dp.tunnel("client1").counters.dummies_rx == 1)
    sa.seq = SEQ_MAX
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 2))
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 3))
    pump(loop, lambda: a.dp.tunnel("to-b").counters.drops.get("seq_exhausted") == 2)
    assert a.events == [OutboundSaExhausted("to-b", 0xA0000001)]


def test_configuration_errors(loop: EventLoop, make_node) -> None:
    a = make_node("a")
    with pytest.raises(ValueError, match="no such socket"):
        a.dp.add_tunnel("x", encap=Encap.ESP, remote_networks=["10.0.0.0/8"])
    with pytest.raises(ValueError, match="at least one remote network"):
        a.dp.add_tunnel("x", encap=Encap.NATT, remote_networks=[])
    _, a_in, _, _ = suite_sas(1000, 2000)
    a.dp.add_tunnel("x", encap=Encap.NATT, remote_networks=["10.0.0.0/8"], inbound=[a_in])
    with pytest.raises(ValueError, match="already installed"):
        a.dp.install_sas("x", inbound=[a_in])
    with pytest.raises(ValueError, match="is inbound"):
        a.dp.install_sas("x", outbound=a_in)
    with pytest.raises(ValueError, match="already belongs"):
        a.dp.add_tunnel("y", encap=Encap.NATT, remote_networks=["172.16.0.0/12", "10.0.0.0/8"])
    with pytest.raises(ValueError, match="already installed"):
        a.dp.add_tunnel("z", encap=Encap.NATT, remote_networks=["172.16.0.0/12"], inbound=[a_in])
    assert [t.name for t in a.dp.tunnels()] == ["x"]  # failed adds left nothing behind
    a.dp.add_tunnel("y", encap=Encap.NATT, remote_networks=["172.16.0.0/12"])
    a.dp.remove_tunnel("x")
    a.dp.remove_tunnel("y")
    assert a.dp.stats()["tunnels"] == {}


def test_authenticated_garbage_inner_packets_never_break_the_loop(
    loop: EventLoop, make_node
) -> None:
    """A peer holding the keys may still send nonsense: it is counted, never raised."""
    import random

    a, b = connect_pair(make_node)
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 1))
    collect(loop, b.tun, 1)
    sa = a.dp.tunnel("to-b").outbound
    assert sa is not None
    rng = random.Random(7)
    sent = 0
    src, dst = bytes([40, 1, 1, 1]), bytes([192, 168, 2, 10])
    for _ in range(300):
        n = rng.randrange(0, 90)
        body = bytearray(rng.randbytes(max(n, 20)))
        body[0] = 0x40 | rng.randrange(16)  # IPv4 with any header length, even < 5
        body[9] = rng.choice([6, 6, 17, 1])  # mostly "TCP", so the MSS path is exercised
        body[12:16], body[16:20] = src, dst
        ihl = (body[0] & 15) << 2
        if ihl + 13 < len(body):
            body[ihl + 13] = 0x02  # SYN flag where a TCP header would be
        a.sock.sendto(sa.seal(bytes(body[:n])), b.endpoint)
        sent += 1
    t = b.dp.tunnel("client1")
    pump(loop, lambda: t.counters.rx_packets - 1 + sum(t.counters.drops.values()) == sent)
    assert loop.callback_errors == 0
    b.tun.received()
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 2))
    assert collect(loop, b.tun, 1) == [icmp_echo(CLIENT_IP, LAN_HOST, 2)]


def test_one_remote_network_two_local_networks_go_by_source(loop: EventLoop, make_node) -> None:
    """A LAN-to-LAN site with two LANs and one remote LAN: two child SAs share the remote
    network's route; each packet takes the SA of its source's LAN (the peer's inbound
    policy would drop it on the other one), and a removed tunnel hands the route on."""
    a, b = make_node("a"), make_node("b")
    lan1, lan2 = "10.20.0.5", "10.21.0.5"
    for n, local in enumerate(("10.20.0.0/24", "10.21.0.0/24")):
        a_out, a_in, b_out, b_in = suite_sas(0xA0000001 + n, 0xB0000001 + n, f"k{n}")
        a.dp.add_tunnel(
            f"to-b{n}",
            encap=Encap.NATT,
            remote_networks=["192.168.2.0/24"],
            local_networks=[local],
            peer=b.endpoint,
            outbound=a_out,
            inbound=[a_in],
        )
        b.dp.add_tunnel(
            f"lan{n}",
            encap=Encap.NATT,
            remote_networks=[local],
            local_networks=["192.168.2.0/24"],
            peer=a.endpoint,
            outbound=b_out,
            inbound=[b_in],
        )
    sent = [icmp_echo(lan1, LAN_HOST, 1), icmp_echo(lan2, LAN_HOST, 2)]
    for packet in sent:
        a.tun.inject(packet)
    assert sorted(collect(loop, b.tun, 2)) == sorted(sent)
    assert [b.dp.tunnel(f"lan{n}").counters.rx_packets for n in (0, 1)] == [1, 1]
    assert all(not b.dp.tunnel(f"lan{n}").counters.drops for n in (0, 1))
    a.tun.inject(icmp_echo("10.99.0.1", LAN_HOST, 3))  # from neither LAN: no SA
    loop.run(0.05)
    assert a.dp.stats()["drops"].get("no_route") == 1
    with pytest.raises(ValueError, match="already belongs"):  # overlapping local networks
        a_out, a_in, _, _ = suite_sas(0xA0000009, 0xB0000009, "k9")
        a.dp.add_tunnel(
            "overlap",
            encap=Encap.NATT,
            remote_networks=["192.168.2.0/24"],
            local_networks=["10.20.0.0/16"],
            peer=b.endpoint,
            outbound=a_out,
            inbound=[a_in],
        )
    a.dp.remove_tunnel("to-b0")  # the route's owner goes: the other LAN keeps its tunnel
    a.tun.inject(icmp_echo(lan2, LAN_HOST, 4))
    assert collect(loop, b.tun, 1) == [icmp_echo(lan2, LAN_HOST, 4)]
    assert b.dp.tunnel("lan1").counters.rx_packets == 2


def test_udp_offload_sends_runs_and_reads_them_back_packet_for_packet(
    loop: EventLoop, make_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With LABCTL_UDP_OFFLOAD on, a burst of equal-sized packets leaves as UDP GSO runs
    and comes back through UDP_GRO reads: the far TUN must see every packet, in order,
    byte for byte, and both ends count each packet once (loopback has both offloads)."""
    from labctl.agent import udp_offload

    monkeypatch.setattr(udp_offload, "ENABLED", True)
    monkeypatch.setattr(udp_offload, "SEGMENTED_AT_INTERFACES", True)
    a, b = connect_pair(make_node)
    gso = a.dp._gso[Encap.NATT]
    assert gso.usable
    a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 0))  # b learns a's endpoint first
    collect(loop, b.tun, 1)
    burst = [icmp_echo(CLIENT_IP, LAN_HOST, seq, b"p" * 1000) for seq in range(1, 41)]
    burst += [icmp_echo(CLIENT_IP, LAN_HOST, 41, b"q" * 200)]  # a shorter one ends a run
    for p in burst:
        a.tun.inject(p)
    assert collect(loop, b.tun, len(burst)) == burst
    assert gso.usable and gso.runs >= 1 and gso.datagrams > gso.runs  # runs went out as GSO
    assert a.dp.tunnel("to-b").counters.tx_packets == len(burst) + 1
    assert b.dp.tunnel("client1").counters.rx_packets == len(burst) + 1
    assert b.dp.tunnel("client1").counters.drops == {}


def test_offload_segments_and_runs() -> None:
    from labctl.agent.udp_offload import MAX_SEGMENTS, SendRun, segments

    assert list(segments(10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(segments(10, 0)) == [(0, 10)] and list(segments(10, 10)) == [(0, 10)]
    run, tunnel, other = SendRun(), object(), object()
    run.add(tunnel, b"x" * 100, 100, 80)
    assert run.takes(tunnel, 100) and not run.takes(other, 100) and not run.takes(tunnel, 101)
    run.add(tunnel, b"y" * 60, 60, 40)  # shorter: the run's last packet
    assert not run.takes(tunnel, 60) and run.inner == [80, 40]
    run.clear()
    for _ in range(MAX_SEGMENTS):
        run.add(tunnel, b"z", 1, 1)
    assert not run.takes(tunnel, 1)


def test_a_3des_burst_goes_through_both_lanes_in_order_and_drops_stay_counted(
    loop: EventLoop, make_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GSO on loopback (as in a node): a burst read from the TUN is sealed on two threads
    and sent as one run; the peer's coalesced read is authenticated in order, decrypted on
    two threads and written in order. A forged packet in the middle of a run is dropped
    and counted without taking its neighbours along."""
    from labctl.agent import udp_offload

    monkeypatch.setattr(udp_offload, "SEGMENTED_AT_INTERFACES", True)
    a, b = make_node("a"), make_node("b")
    ek, ak = keys("3des-cbc", "hmac-md5-96", "lanes")
    a.dp.add_tunnel(
        "to-b",
        encap=Encap.NATT,
        remote_networks=["192.168.2.0/24"],
        peer=b.endpoint,
        outbound=EspSa.outbound(0xA1, "3des-cbc", "hmac-md5-96", ek, ak),
    )
    inbound = EspSa.inbound(0xA1, "3des-cbc", "hmac-md5-96", ek, ak)
    b.dp.add_tunnel(
        "client1", encap=Encap.NATT, remote_networks=[f"{CLIENT_IP}/32"], inbound=[inbound]
    )
    if inbound.lanes < 2:
        pytest.skip("LABCTL_ESP_LANES=1")
    requests = [icmp_echo(CLIENT_IP, LAN_HOST, seq, bytes([seq]) * 1300) for seq in range(1, 31)]
    for p in requests:
        a.tun.inject(p)
    assert collect(loop, b.tun, 30) == requests
    assert a.dp.stats()["two_lane_bursts"] >= 1
    assert b.dp.stats()["two_lane_bursts"] >= 1
    assert a.dp._gso[Encap.NATT].runs >= 1  # sent as runs, so read coalesced
    # a run with a forged packet in the middle, straight into the receive path
    seal = EspSa.outbound(0xA1, "3des-cbc", "hmac-md5-96", ek, ak)
    seal.seq = 100
    packets = [seal.seal(p) for p in requests[:8]]
    packets[4][-1] ^= 1
    size = len(packets[0])
    run = bytearray(b"".join(packets))
    b.dp._on_datagram_run(
        memoryview(run),
        [(i * size, (i + 1) * size, a.endpoint) for i in range(8)],
        NatTraversalFraming.demux,
        False,
        loop.time(),
    )
    assert b.tun.received() == requests[:4] + requests[5:8]
    assert b.dp.tunnel("client1").counters.drops == {"auth": 1}
    assert inbound.drops == {"auth": 1}


def test_single_3des_datagrams_are_read_as_one_batch_and_opened_on_two_lanes(
    loop: EventLoop, make_node
) -> None:
    """No GSO on the sender (a peer like vpnc, or a PAT that cut the run): the receiver
    reads the datagrams one by one into its buffer and still opens them as a batch."""
    a, b = make_node("a"), make_node("b")
    ek, ak = keys("3des-cbc", "hmac-md5-96", "batch")
    outbound = EspSa.outbound(0xB1, "3des-cbc", "hmac-md5-96", ek, ak)
    inbound = EspSa.inbound(0xB1, "3des-cbc", "hmac-md5-96", ek, ak)
    b.dp.add_tunnel(
        "client1", encap=Encap.NATT, remote_networks=[f"{CLIENT_IP}/32"], inbound=[inbound]
    )
    if inbound.lanes < 2:
        pytest.skip("LABCTL_ESP_LANES=1")
    requests = [icmp_echo(CLIENT_IP, LAN_HOST, seq, bytes([seq]) * 1200) for seq in range(1, 41)]
    for p in requests:
        a.sock.sendto(outbound.seal(p), b.endpoint)
    assert collect(loop, b.tun, 40) == requests
    assert b.dp.stats()["two_lane_bursts"] >= 1
    assert b.dp.tunnel("client1").counters.rx_packets == 40
    assert b.dp.tunnel("client1").peer == a.endpoint  # the peer was learned from the batch
