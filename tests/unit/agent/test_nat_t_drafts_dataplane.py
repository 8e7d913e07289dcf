"""NAT-T drafts 00/01 in the data plane: ESP on the IKE port (UDP 500) behind the 8-byte zero
non-IKE marker, next to IKE and one-byte keepalives (draft-ietf-ipsec-udp-encaps-00/01,
Linux's UDP_ENCAP_ESPINUDP_NON_IKE).

Two data planes joined by real UDP on 127.0.0.1; each "IKE socket" is read by the agents'
real ``EngineDriver``, which offers every datagram to ``Dataplane.receive_ike_port`` first
and feeds the rest to a recording engine: what reaches the engine is exactly the IKE.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from labctl.agent.dataplane import Dataplane, Encap, PeerEndpointChanged, UnknownSpi
from labctl.agent.ikeio import EngineDriver, open_ike_socket
from labctl.agent.loop import EventLoop
from labctl.esp import NON_IKE_MARKER, EspMalformed, Kind, NonIkeFraming, framing
from labctl.ike import Output
from tests.unit.agent.test_dataplane_local import (
    CLIENT_IP,
    LAN_HOST,
    FakeTun,
    collect,
    pump,
    suite_sas,
)
from tests.unit.esp.esp_helpers import icmp_echo

IKE_HEADER = bytes.fromhex("0123456789abcdef000000000000000001100400000000000000001c")


# ---------------------------------------------------------------------- framing vectors
def test_framing_vectors() -> None:
    esp = bytes.fromhex("a000000100000001") + bytes(32)  # SPI, sequence, body
    assert NonIkeFraming.frame_esp(esp) == bytes(8) + esp
    assert NonIkeFraming.demux(bytes(8) + esp) == (Kind.ESP, 8)
    assert NonIkeFraming.demux(bytes(16)) == (Kind.ESP, 8)  # the shortest marked ESP
    assert NonIkeFraming.demux(b"\xff") == (Kind.KEEPALIVE, 0)
    assert NonIkeFraming.demux(IKE_HEADER) == (Kind.IKE, 0)
    # an RFC 3948 non-ESP marker (4 zero bytes) is not the drafts' marker: IKE's to judge
    assert NonIkeFraming.demux(bytes(4) + IKE_HEADER) == (Kind.IKE, 0)
    assert NonIkeFraming.frame_ike(IKE_HEADER) == IKE_HEADER  # no marker in front of IKE
    assert NonIkeFraming.keepalive() == b"\xff"
    assert NonIkeFraming.default_port == 500 and NonIkeFraming.overhead == 16
    assert framing("udp-non-ike") is NonIkeFraming
    with pytest.raises(EspMalformed, match="non-IKE marker but no room for an ESP header"):
        NonIkeFraming.demux(bytes(8) + b"\xa0\x00\x00\x01")


# ---------------------------------------------------------------------- two ends
class RecordingEngine:
    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []

    def receive(self, data, source, local, now, tcp=False) -> Output:
        self.received.append((bytes(data), source))
        return Output()

    def tick(self, now: float) -> Output:
        return Output()


@dataclass
class End:
    dp: Dataplane
    tun: FakeTun
    sock: socket.socket
    driver: EngineDriver
    engine: RecordingEngine
    events: list = field(default_factory=list)

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.sock.getsockname()


@pytest.fixture
def loop() -> Iterator[EventLoop]:
    lp = EventLoop()
    yield lp
    lp.close()


@pytest.fixture
def pair(loop: EventLoop) -> Iterator[tuple[End, End]]:
    ends = []
    for name in ("client", "gateway"):
        tun = FakeTun(name)
        sock = open_ike_socket("127.0.0.1", 0)
        events: list = []
        dp = Dataplane(loop, tun, ike_socket=sock, on_event=events.append)
        engine = RecordingEngine()
        driver = EngineDriver(
            loop, engine, sock, dp.send_ike, lambda e: None, 4500, divert=dp.receive_ike_port
        )
        ends.append(End(dp, tun, sock, driver, engine, events))
    a, b = ends
    a_out, a_in, b_out, b_in = suite_sas(0xA0000001, 0xB0000001)
    a.dp.add_tunnel(
        "to-gw",
        encap=Encap.UDP_NON_IKE,
        remote_networks=["192.168.2.0/24"],
        peer=b.endpoint,
        outbound=a_out,
        inbound=[a_in],
        send_keepalives=True,
    )
    b.dp.add_tunnel(
        "client1",
        encap=Encap.UDP_NON_IKE,
        remote_networks=[f"{CLIENT_IP}/32"],
        outbound=b_out,
        inbound=[b_in],
    )
    yield a, b
    for end in ends:
        end.dp.close()
        end.tun.close()
        end.sock.close()


def test_ping_both_ways_on_the_ike_port(loop: EventLoop, pair) -> None:
    a, b = pair
    requests = [icmp_echo(CLIENT_IP, LAN_HOST, seq) for seq in range(1, 6)]
    for p in requests:
        a.tun.inject(p)
    assert collect(loop, b.tun, 5) == requests
    assert b.events == [PeerEndpointChanged("client1", None, a.endpoint)]
    replies = [icmp_echo(LAN_HOST, CLIENT_IP, seq) for seq in range(1, 6)]
    for p in replies:
        b.tun.inject(p)
    assert collect(loop, a.tun, 5) == replies
    ta, tb = a.dp.tunnel("to-gw").counters, b.dp.tunnel("client1").counters
    assert (ta.tx_packets, ta.rx_packets, tb.tx_packets, tb.rx_packets) == (5, 5, 5, 5)
    assert (a.dp.non_ike_rx, b.dp.non_ike_rx) == (5, 5)
    assert a.engine.received == b.engine.received == []  # no ESP reached IKE
    assert a.dp.drops == b.dp.drops == {}
    assert b.dp.stats()["sockets"]["udp-non-ike"] == f"127.0.0.1:{b.endpoint[1]}"


def test_esp_leaves_with_the_marker_and_keepalives_are_one_byte(loop: EventLoop, pair) -> None:
    a, b = pair
    sniff = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sniff.bind(("127.0.0.1", 0))
    sniff.settimeout(2)
    try:
        a.dp.set_peer("to-gw", sniff.getsockname())
        a.tun.inject(icmp_echo(CLIENT_IP, LAN_HOST, 1))
        loop.run(0.05)
        wire = sniff.recv(65536)
        a.dp.send_keepalive("to-gw")
        keepalive = sniff.recv(65536)
    finally:
        sniff.close()
    assert wire[:8] == NON_IKE_MARKER
    assert wire[8:12] == (0xA0000001).to_bytes(4, "big") and wire[12:16] == (1).to_bytes(4, "big")
    assert keepalive == b"\xff"
    a.sock.sendto(wire, b.endpoint)  # the captured packet, delivered now
    assert collect(loop, b.tun, 1) == [icmp_echo(CLIENT_IP, LAN_HOST, 1)]


def test_ike_goes_to_the_engine_and_garbage_is_counted(loop: EventLoop, pair) -> None:
    a, b = pair
    evil = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    evil.bind(("127.0.0.1", 0))
    source = evil.getsockname()
    try:
        for datagram in (
            IKE_HEADER,  # IKE: the engine's
            bytes(8) + b"\x01\x02\x03",  # marker, no ESP header: malformed
            bytes(8) + (7).to_bytes(4, "big") + bytes(40),  # marked ESP, unknown SPI
            bytes(8) + (0xA0000001).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(44),
            b"\xff",  # keepalive
        ):
            evil.sendto(datagram, b.endpoint)
        pump(loop, lambda: b.dp.keepalives_rx == 1 and b.engine.received)
    finally:
        evil.close()
    assert b.engine.received == [(IKE_HEADER, source)]
    assert b.dp.drops == {"non_ike_malformed": 1, "unknown_spi": 1}
    assert a.dp.tunnel("to-gw").counters.drops == {}
    # the gateway's inbound SA is 0xA0000001: garbage under it fails authentication
    assert b.dp.tunnel("client1").counters.drops == {"auth": 1}
    assert UnknownSpi(7, source) in b.events
    assert b.dp.tunnel("client1").peer is None  # nothing authentic came: no endpoint learnt
