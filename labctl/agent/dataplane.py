"""User-space IPsec data plane: TUN <-> ESP (raw protocol 50, RFC 3948 UDP, Cisco UDP, TCP).

Outbound: a packet read from the TUN is routed by its inner destination (longest prefix
over every tunnel's remote networks: split-include networks on a client, the assigned
address on a concentrator) to a tunnel, sealed with the tunnel's outbound SA and sent to the
tunnel's peer endpoint on the socket of its encapsulation.

Inbound: a datagram is demultiplexed (RFC 3948: IKE behind the non-ESP marker goes to the
agent's callback, NAT-keepalives are counted; NAT-T drafts 00/01: the agent's UDP-500
reader offers each datagram to ``receive_ike_port``, which keeps ESP behind the 8-byte
non-IKE marker and keepalives and gives IKE back), the SPI picks the inbound SA and tunnel, the
SA verifies/decrypts, the inner source must be one of the tunnel's remote networks (RFC
4301 inbound policy check), and the packet is written to the TUN. An authenticated packet
that is the newest seen and comes from a new (ip, port) moves the tunnel's peer endpoint
there (RFC 3948 §3: NAT mappings change) and reports a ``PeerEndpointChanged`` event.

IPsec over TCP: a tunnel with ``Encap.TCP`` is bound to one connection (``PacketStream``)
that frames its ESP (labctl.agent.tcp_transport owns the sockets); ESP that connection
deframes comes back through ``receive_stream_esp`` and must belong to a tunnel bound to
that same connection. The peer endpoint of such a tunnel never moves, and no keepalives
are sent on TCP (the connection itself holds the NAT mapping; it is the session).

Nothing a peer sends can stop the loop: every failure is a typed drop counted per tunnel
(or globally when no tunnel is known yet) under a stable reason key.

Byte counters count inner IP bytes (what the concentrator's "Bytes Tx/Rx" shows).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Protocol

from labctl.agent.lanes import Authenticated, TwoLanes
from labctl.agent.lazylog import LazyLogger
from labctl.agent.loop import EventLoop, Timer
from labctl.agent.mss import clamp_mss, mss_for_mtu
from labctl.agent.prefix_table import PrefixTable
from labctl.agent.tunnel import (
    DataplaneEvent,
    Encap,
    Endpoint,
    InboundSaRetired,
    OutboundSaExhausted,
    PacketStream,
    PeerEndpointChanged,
    Tunnel,
    UnknownSpi,
    VolumeReached,
)
from labctl.agent.udp_offload import (
    GRO_ANCILLARY,
    GsoSender,
    SendRun,
    enable_gro,
    gro_segment_size,
    segments,
)
from labctl.esp.encap import (
    NON_ESP_MARKER,
    NON_IKE_MARKER,
    CiscoUdpFraming,
    Kind,
    NatTraversalFraming,
    NonIkeFraming,
    RawEspFraming,
)
from labctl.esp.errors import EspError, EspSequenceExhausted
from labctl.esp.sa import NEXT_HEADER_DUMMY, NEXT_HEADER_IPV4, Direction, EspSa
from labctl.esp.spi_table import InboundSpiTable

__all__ = [  # the tunnel/event types are re-exported: agents import everything from here
    "Dataplane",
    "DataplaneEvent",
    "Encap",
    "Endpoint",
    "InboundSaRetired",
    "OutboundSaExhausted",
    "PacketDevice",
    "PacketStream",
    "PeerEndpointChanged",
    "Tunnel",
    "UnknownSpi",
    "VolumeReached",
]

log = LazyLogger(__name__)

DEFAULT_KEEPALIVE_INTERVAL = 20.0  # RFC 3948 §4 suggests 20 s
DEFAULT_REKEY_GRACE = 30.0  # old inbound SA stays valid this long after a rekey
UNKNOWN_SPI_EVENT_INTERVAL = 10.0  # at most one UnknownSpi event per SPI per interval
HOUSEKEEPING_INTERVAL = 1.0
# Kilobyte lifetimes: one pass over the watched SA pairs per 20 ms at most, however many
# batches arrive (a pass costs per watched pair: a gateway may watch hundreds).
VOLUME_CHECK_INTERVAL = 0.02
RECV_BUFFER = 65536


_write = os.write  # a module global is found faster than os.write on the per-packet path
_FRAMING: dict[
    Encap, type[RawEspFraming | NatTraversalFraming | NonIkeFraming | CiscoUdpFraming]
] = {
    Encap.ESP: RawEspFraming,
    Encap.NATT: NatTraversalFraming,
    Encap.UDP_NON_IKE: NonIkeFraming,
    Encap.CISCO: CiscoUdpFraming,
}
_non_ike_demux = NonIkeFraming.demux
_ZERO_SPI = b"\x00\x00\x00\x00"  # the non-ESP marker: no ESP packet starts with it


def _busier(entry: tuple[EspSa, Tunnel], outbound_spi: int) -> int:
    """Inner bytes the busier direction of an installed SA pair has protected."""
    sa_in, tunnel = entry
    out = tunnel.outbound
    return max(sa_in.bytes, out.bytes if out is not None and out.spi == outbound_spi else 0)


class ReceiveBuffers:
    """The two buffers a data plane reads into: one for the TUN, one for the sockets (with
    room for a batch of datagrams) -- and the second thread for 3DES bursts (agent/lanes).

    Each read is handled to the end before the callback returns (IKE gets a copy), so data
    planes on one event loop may share one pair: a fleet of 1000 members then keeps one
    pair instead of 1000 (128 KiB each)."""

    __slots__ = ("lanes", "rx", "rx_view", "tun", "tun_view")

    def __init__(self, size: int = RECV_BUFFER, batch_room: int = RECV_BUFFER) -> None:
        self.tun = bytearray(size)
        self.tun_view = memoryview(self.tun)
        # the sockets' datagrams are read one after the other into ``rx`` and handled
        # as one batch: ``batch_room`` more bytes let ~46 full-size datagrams in
        self.rx = bytearray(size + batch_room)
        # and the second thread for 3DES bursts: one per loop, not one per fleet member
        self.lanes = TwoLanes()
        self.rx_view = memoryview(self.rx)


class PacketDevice(Protocol):
    """What the data plane needs from a TUN: a non-blocking fd carrying one IP packet per
    read/write, a name and an MTU. ``labctl.agent.tun.TunDevice`` is the real one."""

    fd: int
    name: str
    mtu: int


# ---------------------------------------------------------------------- data plane
class Dataplane:
    """Owns the TUN and the outer ESP sockets inside one ``EventLoop``.

    The UDP-4500 socket is shared with IKE: datagrams behind the non-ESP marker are handed
    (marker stripped) to ``on_ike(payload, source)``, and ``send_ike`` sends with the marker.
    UDP 500 stays with the agent, which reads it: given as ``ike_socket``, the data plane
    sends NAT-T draft 00/01 ESP (marker in front) and keepalives on it, and takes marked ESP
    from what the agent offers to ``receive_ike_port``.
    """

    def __init__(
        self,
        loop: EventLoop,
        tun: PacketDevice,
        *,
        natt_socket: socket.socket | None = None,
        ike_socket: socket.socket | None = None,
        cisco_socket: socket.socket | None = None,
        raw_socket: socket.socket | None = None,
        on_ike: Callable[[bytes, Endpoint], None] | None = None,
        on_event: Callable[[DataplaneEvent], None] | None = None,
        keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
        rekey_grace: float = DEFAULT_REKEY_GRACE,
        mss_clamp: bool = True,
        read_budget: int = 64,
        housekeeping_interval: float = HOUSEKEEPING_INTERVAL,
        buffers: ReceiveBuffers | None = None,
    ) -> None:
        self._loop = loop
        self.tun = tun
        self._tun_fd = tun.fd
        self._sockets: dict[Encap, socket.socket] = {}
        for encap, sock in (
            (Encap.NATT, natt_socket),
            (Encap.UDP_NON_IKE, ike_socket),
            (Encap.CISCO, cisco_socket),
            (Encap.ESP, raw_socket),
        ):
            if sock is not None:
                self._sockets[encap] = sock
        self._on_ike = on_ike
        self._on_event = on_event
        self.keepalive_interval = keepalive_interval
        self.rekey_grace = rekey_grace
        self._max_mss = mss_for_mtu(tun.mtu) if mss_clamp else 0
        self._budget = read_budget
        self._tunnels: dict[str, Tunnel] = {}
        self._routes: PrefixTable[Tunnel] = PrefixTable()
        self._inbound: InboundSpiTable[Tunnel] = InboundSpiTable()
        self._by_peer: dict[Endpoint, Tunnel] = {}
        self._retire_timers: dict[int, Timer] = {}
        self._unknown_spi_seen: dict[int, float] = {}
        # kilobyte lifetimes: inbound SPI -> (outbound SPI, bytes), see watch_volume
        self._volume_watches: dict[int, tuple[int, int]] = {}
        self._volume_check_due = 0.0
        self.drops: dict[str, int] = {}  # before a tunnel is known (no route, unknown SPI...)
        self.keepalives_rx = 0
        self.ike_rx = 0
        self.ike_tx = 0
        self.non_ike_rx = 0  # marked datagrams (ESP) taken from the IKE port
        self._own_buffers = buffers is None  # then close() also ends the lanes' thread
        buffers = buffers or ReceiveBuffers()
        self._tun_buf, self._tun_view = buffers.tun, buffers.tun_view
        self._rx_buf, self._rx_view = buffers.rx, buffers.rx_view
        self._run = SendRun()  # holds prepared packets (EspSa.prepare), sealed at flush
        self._lanes = buffers.lanes  # 3DES bursts: the cipher on two threads
        # coalesced reads on the UDP sockets (udp_offload): where the kernel has UDP_GRO
        self._gro = {
            sock
            for encap, sock in self._sockets.items()
            if encap in (Encap.NATT, Encap.CISCO) and enable_gro(sock)
        }
        self._gso: dict[Encap, GsoSender] = {
            encap: GsoSender(sock)
            for encap, sock in self._sockets.items()
            if encap in (Encap.NATT, Encap.CISCO)
        }
        loop.add_reader(tun.fd, self._on_tun_readable)
        for encap, sock in self._sockets.items():
            if encap is not Encap.UDP_NON_IKE:  # the agent's IKE reader offers those
                loop.add_reader(sock, partial(self._on_socket_readable, sock, encap))
        self._housekeeping = loop.call_every(housekeeping_interval, self._tick)

    # ------------------------------------------------------------------ configuration
    def mtu_changed(self, mtu: int) -> None:
        """The TUN's MTU changed (a Fragmentation Policy change): the MSS clamp follows it."""
        if self._max_mss:
            self._max_mss = mss_for_mtu(mtu)

    def add_tunnel(
        self,
        name: str,
        *,
        encap: Encap | str,
        remote_networks: Iterable[str | ipaddress.IPv4Network],
        local_networks: Iterable[str | ipaddress.IPv4Network] = (),
        peer: Endpoint | None = None,
        outbound: EspSa | None = None,
        inbound: Iterable[EspSa] = (),
        send_keepalives: bool = False,
        keepalive_interval: float | None = None,
        stream: PacketStream | None = None,
    ) -> Tunnel:
        """Create a tunnel. ``send_keepalives``: this end is behind a NAT (RFC 3948 §4).
        ``Encap.TCP`` tunnels need their connection as ``stream`` (its peer is the peer).
        ``local_networks``: our side's selector; a tunnel with one remote network may share
        it with others whose local networks do not overlap (chosen by source address)."""
        if name in self._tunnels:
            raise ValueError(f"tunnel {name!r} already exists")
        encap = Encap(encap).transport  # unknown: ValueError, never plain ESP
        if encap is Encap.TCP:
            if stream is None:
                raise ValueError(f"tunnel {name!r} is IPsec over TCP but has no connection")
            peer, send_keepalives = stream.peer, False
        elif stream is not None:
            raise ValueError(f"tunnel {name!r}: only {Encap.TCP.socket_name} tunnels take a stream")
        elif encap not in self._sockets:
            raise ValueError(
                f"tunnel {name!r} wants {encap.socket_name} but no such socket is open"
            )
        nets = [ipaddress.IPv4Network(n) for n in remote_networks]
        if not nets:
            raise ValueError(f"tunnel {name!r} needs at least one remote network")
        if peer is not None:
            peer = self._normalize_peer(encap, peer)
        tunnel = Tunnel(
            name,
            encap,
            nets,
            peer,
            send_keepalives,
            keepalive_interval or self.keepalive_interval,
            self._loop.time(),
        )
        tunnel.stream = stream
        tunnel.set_local_networks([ipaddress.IPv4Network(n) for n in local_networks])
        self._tunnels[name] = tunnel
        if peer is not None and stream is None:
            self._by_peer.setdefault(peer, tunnel)
        try:
            for net in nets:
                owner = self._routes.owner(net)
                if owner is not None and self._may_share(owner, tunnel):
                    owner.by_source = [*(owner.by_source or [owner]), tunnel]
                    self._routes.changed()
                else:
                    self._routes.add(net, tunnel)
            self.install_sas(name, outbound=outbound, inbound=inbound, retire_old=False)
        except Exception:
            self.remove_tunnel(name)  # all or nothing: no half-installed tunnel stays behind
            raise
        return tunnel

    @staticmethod
    def _may_share(owner: Tunnel, tunnel: Tunnel) -> bool:
        group = owner.by_source or [owner]
        return (
            len(tunnel.remote_networks) == 1
            and all(len(t.remote_networks) == 1 for t in group)
            and not any(t.local_overlaps(tunnel) for t in group)
        )

    def remove_tunnel(self, name: str) -> None:
        tunnel = self._tunnels.pop(name)
        for net, owner in self._routes.routes():
            if tunnel not in owner.by_source:
                continue
            rest = [t for t in owner.by_source if t is not tunnel]
            if owner is tunnel:  # the route passes on to the next tunnel sharing it
                self._routes.remove(net)
                self._routes.add(net, rest[0])
                tunnel.by_source = []
            rest[0].by_source = rest if len(rest) > 1 else []
            self._routes.changed()
        self._routes.remove_owner(tunnel)
        for spi in list(tunnel.inbound):
            self._drop_inbound(spi)
        if tunnel.peer is not None and self._by_peer.get(tunnel.peer) is tunnel:
            del self._by_peer[tunnel.peer]

    def tunnel(self, name: str) -> Tunnel:
        return self._tunnels[name]

    def tunnels(self) -> list[Tunnel]:
        return list(self._tunnels.values())

    def set_peer(self, name: str, peer: Endpoint) -> None:
        tunnel = self._tunnels[name]
        self._move_peer(tunnel, self._normalize_peer(tunnel.encap, peer), report=False)

    def install_sas(
        self,
        name: str,
        *,
        outbound: EspSa | None = None,
        inbound: Iterable[EspSa] = (),
        retire_old: bool = True,
        grace: float | None = None,
    ) -> None:
        """Install SAs on a tunnel; this is also the rekey operation.

        New inbound SAs are accepted immediately. A new outbound SA replaces the old one at
        once (the peer already holds the matching inbound SA when IKE hands it to us).
        If new inbound SAs are given and ``retire_old``, the inbound SAs that were there
        before stay valid for ``grace`` seconds (default ``rekey_grace``) and are then
        removed, so packets the peer still seals with the old SA keep arriving during the
        switch. ``retire_old=False`` keeps them until ``remove_inbound_sa``.

        Ordering for a loss-free rekey (checked by the integration test): install the new
        inbound SA as soon as it exists, and switch the outbound SA only once the peer is
        known to hold the matching inbound SA (IKEv1 Quick Mode: the initiator after
        sending HASH(3), the responder after receiving it). Both may be given in one call
        when that condition already holds.
        """
        tunnel = self._tunnels[name]
        new_inbound = list(inbound)
        for sa in new_inbound:
            if sa.direction is not Direction.IN:
                raise ValueError(f"SA 0x{sa.spi:08x} given as inbound is outbound")
            if sa.spi in self._inbound:
                raise ValueError(f"inbound SPI 0x{sa.spi:08x} is already installed")
        if outbound is not None and outbound.direction is not Direction.OUT:
            raise ValueError(f"SA 0x{outbound.spi:08x} given as outbound is inbound")
        old_spis = list(tunnel.inbound) if new_inbound else []
        for sa in new_inbound:
            self._inbound.add(sa, tunnel)
            tunnel.inbound[sa.spi] = sa
        if outbound is not None:
            tunnel.outbound = outbound
        if retire_old:
            delay = self.rekey_grace if grace is None else grace
            for spi in old_spis:
                if spi not in self._retire_timers:
                    self._retire_timers[spi] = self._loop.call_later(delay, self._retire, spi)

    def carried(self, inbound_spi: int, outbound_spi: int) -> int | None:
        """Inner bytes the busier direction of an SA pair has protected (kilobyte
        lifetimes); None when its inbound SA is not installed."""
        entry = self._inbound.get(inbound_spi)
        return None if entry is None else _busier(entry, outbound_spi)

    def watch_volume(self, inbound_spi: int, outbound_spi: int, threshold: int) -> None:
        """Emit one ``VolumeReached`` once the pair has carried ``threshold`` bytes (as
        ``carried`` counts them). Checked after the batches (at most every
        VOLUME_CHECK_INTERVAL) and at housekeeping, so a kilobyte lifetime is acted on
        within ~20 ms of the crossing under traffic, not up to a polling period later. A new
        watch on the same inbound SPI replaces the old one."""
        self._volume_watches[inbound_spi] = (outbound_spi, threshold)

    def _check_volumes(self) -> None:
        now = self._loop.time()
        if now < self._volume_check_due:
            return
        self._volume_check_due = now + VOLUME_CHECK_INTERVAL
        for spi, (outbound_spi, threshold) in list(self._volume_watches.items()):
            entry = self._inbound.get(spi)
            if entry is None:  # gone without _drop_inbound (defensive)
                del self._volume_watches[spi]
                continue
            carried = _busier(entry, outbound_spi)
            if carried >= threshold:
                del self._volume_watches[spi]
                self._emit(VolumeReached(entry[1].name, spi, carried))

    def remove_inbound_sa(self, spi: int) -> None:
        """Forget an inbound SA now (e.g. the peer sent a Delete)."""
        self._drop_inbound(spi)

    def _retire(self, spi: int) -> None:
        entry = self._inbound.get(spi)
        self._retire_timers.pop(spi, None)
        if entry is None:
            return
        self._drop_inbound(spi)
        self._emit(InboundSaRetired(entry[1].name, spi))

    def _drop_inbound(self, spi: int) -> None:
        entry = self._inbound.get(spi)
        self._inbound.remove(spi)
        self._volume_watches.pop(spi, None)
        timer = self._retire_timers.pop(spi, None)
        if timer is not None:
            timer.cancel()
        if entry is not None:
            entry[1].inbound.pop(spi, None)

    @staticmethod
    def _normalize_peer(encap: Encap, peer: Endpoint) -> Endpoint:
        ip = str(ipaddress.IPv4Address(peer[0]))
        port = 0 if encap is Encap.ESP else int(peer[1])
        if encap is not Encap.ESP and not 0 < port < 65536:
            raise ValueError(f"peer port {peer[1]} out of range for {encap.socket_name}")
        return (ip, port)

    # ------------------------------------------------------------------ IKE on 4500
    def send_ike(self, payload: bytes, dest: Endpoint) -> bool:
        """Send an IKE message on the NAT-T socket (non-ESP marker prepended)."""
        sock = self._sockets.get(Encap.NATT)
        if sock is None:
            raise ValueError("no UDP-4500 socket: IKE cannot be sent on 4500")
        try:
            sock.sendto(NON_ESP_MARKER + payload, dest)
        except OSError as exc:
            self._count(f"ike_send_{errno.errorcode.get(exc.errno or 0, 'error').lower()}")
            return False
        self.ike_tx += 1
        tunnel = self._by_peer.get(dest)
        if tunnel is not None:  # IKE traffic also keeps the NAT mapping alive
            tunnel.last_tx = self._loop.time()
        return True

    # ------------------------------------------------------------------ hot path: TUN -> ESP
    def _on_tun_readable(self) -> None:
        """Read up to ``read_budget`` packets, seal each, and send. Datagram tunnels send
        runs of equal-sized ESP packets to one peer as one UDP GSO send (udp_offload):
        the run is flushed when the next packet goes elsewhere, differs in size, or the
        TUN is empty."""
        fd = self.tun.fd
        buf = self._tun_buf
        bufs = (buf,)
        view = self._tun_view
        readv = os.readv
        lookup = self._routes.lookup
        max_mss = self._max_mss
        run = self._run
        gsos = self._gso
        now = self._loop.time()
        try:
            for _ in range(self._budget):
                try:
                    n = readv(fd, bufs)
                except BlockingIOError:
                    return
                except OSError as exc:
                    self._count("tun_read_error")
                    log.warning("TUN %s read failed: %s", self.tun.name, exc)
                    return
                if n < 20 or buf[0] >> 4 != 4:
                    self._count("not_ipv4")
                    continue
                tunnel = lookup(bytes(buf[16:20]))
                if tunnel is not None and tunnel.by_source:  # one remote network, several SAs
                    tunnel = tunnel.pick(int.from_bytes(buf[12:16], "big"))
                if tunnel is None:
                    self._count("no_route")
                    continue
                sa = tunnel.outbound
                peer = tunnel.peer
                if sa is None or peer is None:
                    tunnel.counters.drop("no_sa" if sa is None else "no_peer_endpoint")
                    continue
                packet: Any = view[:n]
                # inline SYN test: only SYNs pay for the clamp_mss() call
                if max_mss and buf[9] == 6 and buf[((buf[0] & 15) << 2) + 13] & 2:
                    packet = clamp_mss(packet, max_mss)
                try:  # sequence number, counters, plaintext copy: in order, here
                    seq, plain = sa.prepare(packet, NEXT_HEADER_IPV4, now)
                except EspSequenceExhausted:
                    tunnel.counters.drop("seq_exhausted")
                    if sa.drops.get("seq_exhausted") == 1:
                        self._emit(OutboundSaExhausted(tunnel.name, sa.spi))
                    continue
                gso = gsos.get(tunnel.encap)
                if tunnel.stream is not None or gso is None or not gso.usable:
                    self._send_now(tunnel, sa.encrypt_prepared(seq, plain), n, now)
                    continue
                # a GSO run: encrypted when it is sent, on two threads if it is a burst
                size = sa.sealed_size(plain)
                if run.packets and not run.takes(tunnel, size):
                    self._flush_run(now)
                run.add(tunnel, (sa, seq, plain), size, n)
        finally:
            if run.packets:
                self._flush_run(now)
            if self._volume_watches:
                self._check_volumes()

    def _send_now(self, tunnel: Tunnel, esp: bytearray, n: int, now: float) -> None:
        """One sealed packet, sent at once: on its TCP connection or as one datagram."""
        if tunnel.stream is not None:
            self._send_stream(tunnel, esp, n, now)
            return
        if tunnel.encap is Encap.UDP_NON_IKE:  # drafts 00/01: ESP on the IKE port
            esp[0:0] = NON_IKE_MARKER
        self._send_one(tunnel, esp, n, now)

    def _send_stream(self, tunnel: Tunnel, esp: bytearray, n: int, now: float) -> None:
        try:
            failed = tunnel.stream.send_esp(esp)  # type: ignore[union-attr]
        except BlockingIOError:
            tunnel.counters.drop("send_blocked")
            return
        except OSError as exc:
            tunnel.counters.drop(f"send_{errno.errorcode.get(exc.errno or 0, 'error').lower()}")
            return
        if failed is not None:
            tunnel.counters.drop(failed)
            return
        counters = tunnel.counters
        counters.tx_packets += 1
        counters.tx_bytes += n
        tunnel.last_tx = now

    def _flush_run(self, now: float) -> None:
        """Seal the pending run of prepared packets (on two lanes: agent/lanes) and send it: one GSO
        send when the socket can, else one sendto each (a failed sendto drops that packet
        only, as before)."""
        run = self._run
        tunnel, prepared, size, inner = run.tunnel, run.packets, run.size, run.inner
        run.clear()
        packets = self._lanes.seal(prepared)
        peer = tunnel.peer
        counters = tunnel.counters
        if peer is None:  # an event handler removed the tunnel's peer meanwhile
            counters.drop("no_peer_endpoint", len(packets))
            return
        gso = self._gso.get(tunnel.encap)
        if len(packets) > 1 and gso is not None and gso.usable:
            try:
                sent = gso.send(packets, size, peer)
            except OSError as exc:
                reason = (
                    "send_blocked"
                    if isinstance(exc, BlockingIOError)
                    else f"send_{errno.errorcode.get(exc.errno or 0, 'error').lower()}"
                )
                counters.drop(reason, len(packets))
                return
            if sent:
                counters.tx_packets += len(packets)
                counters.tx_bytes += sum(inner)
                tunnel.last_tx = now
                return
        for esp, n in zip(packets, inner, strict=True):
            self._send_one(tunnel, esp, n, now)

    def _send_one(self, tunnel: Tunnel, esp: bytearray, n: int, now: float) -> None:
        try:
            self._sockets[tunnel.encap].sendto(esp, tunnel.peer)  # type: ignore[arg-type]
        except BlockingIOError:
            tunnel.counters.drop("send_blocked")
            return
        except OSError as exc:
            tunnel.counters.drop(f"send_{errno.errorcode.get(exc.errno or 0, 'error').lower()}")
            return
        counters = tunnel.counters
        counters.tx_packets += 1
        counters.tx_bytes += n
        tunnel.last_tx = now

    # ------------------------------------------------------------------ hot path: ESP -> TUN
    def _on_socket_readable(self, sock: socket.socket, encap: Encap) -> None:
        """Read what the socket has (up to the budget, each read at the next free place of
        the receive buffer), then handle the datagrams in arrival order as one batch: a
        3DES batch is decrypted on two threads (``_on_datagram_run``)."""
        gro = sock in self._gro
        recv_into = sock.recvfrom_into
        recvmsg_into = sock.recvmsg_into
        view = self._rx_view
        raw = encap is Encap.ESP
        demux = _FRAMING[encap].demux
        budget = self._budget  # datagrams, not reads: a GRO read may carry dozens
        batch: list[tuple[int, int, Endpoint]] = []
        off = 0
        last = max(0, len(view) - RECV_BUFFER)  # a read gets a whole datagram's room
        while budget > 0 and off <= last:
            budget -= 1
            room = view[off:]
            try:
                if gro:  # a run the peer sent with GSO may come up as one read
                    n, ancillary, _flags, source = recvmsg_into((room,), GRO_ANCILLARY)
                    size = gro_segment_size(ancillary) if ancillary else 0
                else:
                    n, source = recv_into(room)
                    size = 0
            except BlockingIOError:
                break
            except OSError as exc:  # e.g. ECONNREFUSED from an ICMP error on UDP
                self._count(f"recv_{errno.errorcode.get(exc.errno or 0, 'error').lower()}")
                continue
            if size and size < n:
                batch.extend((off + start, off + end, source) for start, end in segments(n, size))
                budget -= n // size  # the other datagrams of the run
            else:
                batch.append((off, off + n, source))
            off += n
        if batch:
            self._on_datagram_run(view, batch, demux, raw, self._loop.time())
            if self._volume_watches:
                self._check_volumes()

    def _on_datagram(
        self, data: memoryview, source: Endpoint, demux: Any, raw: bool, now: float
    ) -> None:
        esp = self._esp_of(data, source, demux, now)
        if esp is not None and self._deliver(esp[0], esp[1], esp[2], now):
            self._maybe_move_peer(esp[0], esp[1], source, raw, esp[2])

    def _esp_of(
        self, data: memoryview, source: Endpoint, demux: Any, now: float
    ) -> tuple[EspSa, Tunnel, memoryview] | None:
        """The SA, tunnel and ESP packet of a datagram; None when it was something else
        (handled here: IKE, a keepalive) or is dropped (counted here)."""
        n = len(data)
        try:
            kind, off = demux(data)
        except EspError as exc:
            self._count(exc.reason)
            return None
        if kind is not Kind.ESP:
            self._handle_control(kind, data, off, source)
            return None
        if n - off < 8:
            self._count("malformed")
            return None
        spi = int.from_bytes(data[off : off + 4], "big")
        entry = self._inbound.get(spi)
        if entry is None:
            self._unknown_spi(spi, source, now)
            return None
        sa, tunnel = entry
        if tunnel.stream is not None:  # a TCP tunnel's SPI must not arrive in datagrams
            tunnel.counters.drop("wrong_transport")
            return None
        return sa, tunnel, data[off:]

    def _maybe_move_peer(
        self, sa: EspSa, tunnel: Tunnel, source: Endpoint, raw: bool, esp: Any
    ) -> None:
        """After an authentic, allowed packet: the newest from a new source moves the peer."""
        if raw:
            source = (source[0], 0)
        if source != tunnel.peer and sa.replay_top == int.from_bytes(esp[4:8], "big"):
            self._move_peer(tunnel, source, report=True)

    def _on_datagram_run(
        self,
        view: memoryview,
        batch: Iterable[tuple[int, int, Endpoint]],
        demux: Any,
        raw: bool,
        now: float,
    ) -> None:
        """Datagrams (start, end, source) in ``view``, in order, as ``_on_datagram`` would
        handle them one by one -- except that packets of SAs with two lanes are
        authenticated in order, then decrypted on two threads (agent/lanes), then
        finished and written in order. What is pending is written before anything that is
        not such a packet is handled (IKE, keepalives, another SA)."""
        pending: list[Authenticated] = []
        origins: list[tuple[Tunnel, Endpoint]] = []
        for start, end, source in batch:
            data = view[start:end]
            if pending and (end - start < 8 or data[:4] == _ZERO_SPI):  # IKE, keepalive
                self._open_pending(pending, origins, raw, now)
            found = self._esp_of(data, source, demux, now)
            if found is None:
                continue
            sa, tunnel, esp = found
            if sa.lanes < 2:  # in order: what is pending goes first
                self._open_pending(pending, origins, raw, now)
                if self._deliver(sa, tunnel, esp, now):
                    self._maybe_move_peer(sa, tunnel, source, raw, esp)
                continue
            try:
                _seq, body_end = sa.authenticate(esp)
            except EspError as exc:
                tunnel.counters.drop(exc.reason)
                continue
            pending.append((sa, esp, body_end))
            origins.append((tunnel, source))
        self._open_pending(pending, origins, raw, now)

    def _open_pending(
        self,
        pending: list[Authenticated],
        origins: list[tuple[Tunnel, Endpoint]],
        raw: bool,
        now: float,
    ) -> None:
        if not pending:
            return
        plains = self._lanes.decrypt(pending)
        for (sa, esp, _), (tunnel, source), plain in zip(pending, origins, plains, strict=True):
            try:
                next_header, inner = sa.finish_open(plain, int.from_bytes(esp[4:8], "big"), now)
            except EspError as exc:
                tunnel.counters.drop(exc.reason)
                continue
            if self._forward(tunnel, next_header, inner, now):
                self._maybe_move_peer(sa, tunnel, source, raw, esp)
        pending.clear()
        origins.clear()

    def receive_ike_port(self, data: bytes, source: Endpoint) -> bool:
        """A datagram the agent read on the IKE port (UDP 500). NAT-T drafts 00/01 send ESP
        there behind the 8-byte zero non-IKE marker, and keepalives: those are the data
        plane's (True: taken, delivered or counted as a drop); IKE is the caller's (False).
        A marker with no ESP header behind it is counted ("non_ike_malformed") and dropped."""
        try:
            kind, _ = _non_ike_demux(data)
        except EspError:
            self._count("non_ike_malformed")
            return True
        if kind is Kind.IKE:
            return False
        if kind is Kind.ESP:
            self.non_ike_rx += 1
        self._on_datagram(memoryview(data), source, _non_ike_demux, False, self._loop.time())
        if self._volume_watches:
            self._check_volumes()
        return True

    def receive_stream_esp(self, esp: bytes, stream: PacketStream) -> None:
        """One ESP packet deframed from ``stream`` (IPsec over TCP)."""
        now = self._loop.time()
        spi = int.from_bytes(esp[:4], "big")
        entry = self._inbound.get(spi)
        if entry is None:
            self._unknown_spi(spi, stream.peer, now)
            return
        sa, tunnel = entry
        if tunnel.stream is not stream:  # another session's SPI on this connection
            tunnel.counters.drop("wrong_stream")
            return
        self._deliver(sa, tunnel, esp, now)
        if self._volume_watches:
            self._check_volumes()

    def _deliver(self, sa: EspSa, tunnel: Tunnel, esp: Any, now: float) -> bool:
        """Open ``esp`` with ``sa`` and write the inner packet to the TUN. True when the
        packet was authentic and allowed by the tunnel's inbound policy."""
        try:
            next_header, inner = sa.open(esp, now)
        except EspError as exc:
            tunnel.counters.drop(exc.reason)
            return False
        return self._forward(tunnel, next_header, inner, now)

    def _forward(
        self, tunnel: Tunnel, next_header: int, inner: bytes | bytearray | memoryview, now: float
    ) -> bool:
        """An authentic packet's payload to the TUN, if the tunnel's inbound policy allows
        it. True when it was allowed (written, or a TUN write error counted)."""
        counters = tunnel.counters
        if next_header != NEXT_HEADER_IPV4:
            if next_header == NEXT_HEADER_DUMMY:
                counters.dummies_rx += 1
            else:
                counters.drop("next_header")
            return False
        size = len(inner)
        if size < 20 or inner[0] >> 4 != 4:
            counters.drop("inner_malformed")
            return False
        if not tunnel.remote_allows(int.from_bytes(inner[12:16], "big")):
            counters.drop("policy")
            return False
        if self._max_mss and inner[9] == 6:
            ihl = (inner[0] & 15) << 2
            if ihl + 14 <= size and inner[ihl + 13] & 2:  # only SYNs pay for the call
                inner = clamp_mss(inner, self._max_mss)
        try:
            _write(self._tun_fd, inner)
        except OSError:
            counters.drop("tun_write")
            return True
        counters.rx_packets += 1
        counters.rx_bytes += size
        tunnel.last_rx = now
        return True

    def _handle_control(self, kind: Kind, data: memoryview, off: int, source: Endpoint) -> None:
        if kind is Kind.KEEPALIVE:
            self.keepalives_rx += 1
            tunnel = self._by_peer.get(source)
            if tunnel is not None:
                tunnel.counters.keepalives_rx += 1
            return
        self.ike_rx += 1
        if self._on_ike is None:
            self._count("ike_no_handler")
            return
        try:
            self._on_ike(bytes(data[off:]), source)
        except Exception:
            self._count("ike_handler_error")
            log.exception("IKE handler failed on a datagram from %s:%s", *source)

    def _unknown_spi(self, spi: int, source: Endpoint, now: float) -> None:
        self._count("unknown_spi")
        last = self._unknown_spi_seen.get(spi)
        if last is None or now - last >= UNKNOWN_SPI_EVENT_INTERVAL:
            if len(self._unknown_spi_seen) > 1024:
                self._unknown_spi_seen.clear()
            self._unknown_spi_seen[spi] = now
            self._emit(UnknownSpi(spi, source))

    def _move_peer(self, tunnel: Tunnel, new: Endpoint, report: bool) -> None:
        old = tunnel.peer
        if old == new:
            return
        if old is not None and self._by_peer.get(old) is tunnel:
            del self._by_peer[old]
        tunnel.peer = new
        self._by_peer.setdefault(new, tunnel)
        if report:
            tunnel.endpoint_changes += 1
            log.info("tunnel %s: peer endpoint %s -> %s", tunnel.name, old, new)
            self._emit(PeerEndpointChanged(tunnel.name, old, new))

    # ------------------------------------------------------------------ timers
    def _tick(self) -> None:
        if self._volume_watches:  # a crossing in the last batch before traffic stopped
            self._check_volumes()
        now = self._loop.time()
        for tunnel in self._tunnels.values():
            if (
                tunnel.send_keepalives
                and tunnel.peer is not None
                and tunnel.encap not in (Encap.ESP, Encap.TCP)
                and now - tunnel.last_tx >= tunnel.keepalive_interval
            ):
                self.send_keepalive(tunnel.name, now)

    def send_keepalive(self, name: str, now: float | None = None) -> None:
        tunnel = self._tunnels[name]
        if tunnel.peer is None or tunnel.stream is not None:
            return  # no keepalives on TCP: the connection itself holds the NAT mapping
        payload = _FRAMING[tunnel.encap].keepalive()
        try:
            self._sockets[tunnel.encap].sendto(payload, tunnel.peer)
        except OSError:
            tunnel.counters.drop("keepalive_send")
            return
        tunnel.counters.keepalives_tx += 1
        tunnel.last_tx = self._loop.time() if now is None else now

    # ------------------------------------------------------------------ status
    def _count(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def _emit(self, event: DataplaneEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            self._count("event_handler_error")
            log.exception("data plane event handler failed on %r", event)

    def stats(self) -> dict[str, Any]:
        """JSON-ready snapshot for status screens and tests (never keys)."""
        return {
            "tun": {"name": self.tun.name, "mtu": self.tun.mtu},
            "sockets": {
                encap.socket_name: "{}:{}".format(*sock.getsockname())
                for encap, sock in self._sockets.items()
            },
            "drops": dict(self.drops),
            "keepalives_rx": self.keepalives_rx,
            "ike_rx": self.ike_rx,
            "ike_tx": self.ike_tx,
            "non_ike_rx": self.non_ike_rx,
            "two_lane_bursts": self._lanes.bursts,
            "tunnels": {name: t.stats() for name, t in self._tunnels.items()},
        }

    def close(self) -> None:
        """Stop reading; the caller owns (and closes) the TUN and the sockets."""
        self._housekeeping.cancel()
        if self._own_buffers:
            self._lanes.close()
        for timer in self._retire_timers.values():
            timer.cancel()
        self._retire_timers.clear()
        self._loop.remove_reader(self.tun.fd)
        for sock in self._sockets.values():
            self._loop.remove_reader(sock)
