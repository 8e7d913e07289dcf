"""IPsec over TCP in the engine: IKE rides the client's TCP connection from message 1,
children are keyed in plain tunnel mode and reported as "tcp", and TCP wins over NAT-T
and IPsec over UDP (the seed's VPN 3000 priority)."""

from __future__ import annotations

from labctl.ike import (
    ChildSaEstablished,
    ModeConfigReceived,
    PacketDropped,
    Phase1Established,
    decode_message,
)
from labctl.ike.codec import Message, NatDPayload
from labctl.ike.config import seed_phase1, seed_phase2
from tests.unit.ike.builders import add_client, assert_keys_mirror, child_pairs, make_lab

TCP_PORT = 10000
CLIENT_TCP_PORT = 40123  # an ephemeral port; the harness PAT keeps it (it is free)


def tcp_lab(**policy):
    lab = make_lab(phase1=seed_phase1(), phase2=seed_phase2(), tcp_port=TCP_PORT, **policy)
    return lab


def connect_tcp(lab, name: str = "c1") -> None:
    lab.start(name, local_port=CLIENT_TCP_PORT, remote_port=TCP_PORT)
    lab.run(5.0)


def test_a_tcp_session_end_to_end() -> None:
    lab = tcp_lab(cisco_udp_port=10000)  # all three transparency modes on, as allowed
    add_client(lab, natt="tcp", phase1=seed_phase1(), phase2=seed_phase2())
    connect_tcp(lab)
    assert lab.capture and all(f.tcp and not f.marker for f in lab.capture)
    assert {f.dst[1] for f in lab.capture if f.sender == "c1"} == {TCP_PORT}
    (sp1,) = lab.events_of("server", Phase1Established)
    (cp1,) = lab.events_of("c1", Phase1Established)
    assert sp1.nat.encapsulation == cp1.nat.encapsulation == "tcp"
    assert not sp1.nat.floated and sp1.nat.natt_version is None
    assert sp1.peer == ("171.69.89.78", CLIENT_TCP_PORT) and sp1.local[1] == TCP_PORT
    (got,) = lab.events_of("c1", ModeConfigReceived)
    assert got.config.udp_encap_port == TCP_PORT  # 0x7005 reports the TCP port
    ((c, s),) = child_pairs(lab, "c1")
    assert_keys_mirror(c, s)
    assert c.encapsulation == s.encapsulation == "tcp"
    assert (s.udp_port, s.local_port) == (CLIENT_TCP_PORT, TCP_PORT)  # the TCP ports
    assert (c.udp_port, c.local_port) == (TCP_PORT, CLIENT_TCP_PORT)
    assert not lab.events_of("server", PacketDropped)


def test_tcp_wins_over_natt_and_udp_offered_by_the_client() -> None:
    """A client that announces NAT-T and asks for the IPsec-over-UDP port, but came in on
    TCP, gets IPsec/TCP: no NAT-D in message 2, no float, quick mode in tunnel mode."""
    lab = tcp_lab(cisco_udp_port=10000)  # natt_enabled is on by default
    add_client(lab, natt="cisco-udp", phase1=seed_phase1(), phase2=seed_phase2())
    engine = lab.clients["c1"].engine
    lab.start("c1", local_port=CLIENT_TCP_PORT, remote_port=TCP_PORT)
    first = lab.queue.popleft()  # message 1 left the client as if on UDP: put it on TCP
    first.tcp = True
    lab.inject(first)
    lab.step()
    reply = lab.queue[0]
    assert reply.tcp and reply.sender == "server"
    msg2 = decode_message(reply.data)
    assert isinstance(msg2, Message) and not msg2.find(NatDPayload)
    lab.queue.clear()
    # the rest of this client's traffic is UDP by its config; the responder refuses that
    out = engine.receive(reply.data, reply.src, ("10.10.10.2", CLIENT_TCP_PORT), lab.now)
    (msg3,) = out.datagrams
    dropped = lab.responder.receive(
        msg3.data, ("171.69.89.78", CLIENT_TCP_PORT), ("172.16.172.50", TCP_PORT), lab.now
    )
    assert not dropped.datagrams and lab.responder.stats["wrong_transport"] == 1
    done = lab.responder.receive(
        msg3.data, ("171.69.89.78", CLIENT_TCP_PORT), ("172.16.172.50", TCP_PORT), lab.now, tcp=True
    )
    (established,) = [e for e in done.events if isinstance(e, Phase1Established)]
    assert established.nat.encapsulation == "tcp"


def test_natt_client_on_udp_still_gets_natt_when_tcp_is_enabled() -> None:
    lab = tcp_lab()
    add_client(lab, phase1=seed_phase1(), phase2=seed_phase2())  # natt="natt", over UDP
    lab.start("c1")
    lab.run(5.0)
    ((c, s),) = child_pairs(lab, "c1")
    assert c.encapsulation == s.encapsulation == "udp-tunnel"
    assert not any(f.tcp for f in lab.capture)


def test_tcp_disabled_drops_the_first_message_silently() -> None:
    lab = make_lab(phase1=seed_phase1(), phase2=seed_phase2())  # tcp_port None
    add_client(lab, natt="tcp", phase1=seed_phase1(), phase2=seed_phase2())
    lab.start("c1", local_port=CLIENT_TCP_PORT, remote_port=TCP_PORT)
    lab.step()
    assert not lab.queue  # no answer at all
    assert lab.responder.stats["tcp_disabled"] == 1
    assert not lab.events_of("server", Phase1Established)


def test_tcp_sa_ignores_messages_from_another_connection() -> None:
    lab = tcp_lab()
    add_client(lab, natt="tcp", phase1=seed_phase1(), phase2=seed_phase2())
    connect_tcp(lab)
    assert lab.events_of("c1", ChildSaEstablished)
    last_from_client = [f for f in lab.capture if f.sender == "c1"][-1]
    before = dict(lab.responder.stats)
    out = lab.responder.receive(
        last_from_client.data + b"",
        ("171.69.89.78", CLIENT_TCP_PORT + 1),  # same client IP, another TCP connection
        ("172.16.172.50", TCP_PORT),
        lab.now,
        tcp=True,
    )
    assert not out.datagrams
    assert lab.responder.stats["wrong_transport"] == before.get("wrong_transport", 0) + 1
