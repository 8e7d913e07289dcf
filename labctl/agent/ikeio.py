"""Between the sans-I/O IKE engine and the node: sockets, the tick timer, event dispatch.

UDP 500 is a socket of its own (NAT-T drafts 00/01 put ESP there too, behind an 8-byte zero
non-IKE marker: each datagram read is first offered to ``divert``, the data plane's
``receive_ike_port``, which keeps marked ESP and keepalives); IKE on the NAT-T port shares
the data plane's UDP-4500 socket (the data plane strips/adds the non-ESP marker and hands
IKE over). IKE of an IPsec-over-TCP session rides that session's TCP connection: datagrams
the engine marks ``tcp`` go to ``send_stream`` (tcp_transport frames them), and the agent
feeds what a connection deframes through ``receive_stream``."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from ..ike import Datagram, Event, Output
from ..ike.constants import IKE_PORT
from .loop import EventLoop, Timer


def open_ike_socket(bind_ip: str, port: int = IKE_PORT) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind_ip, port))
    sock.setblocking(False)
    return sock


def local_address_towards(destination: str) -> str:
    """The source address the kernel picks for ``destination`` (for NAT-D hashes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((destination, IKE_PORT))
        return probe.getsockname()[0]


class EngineDriver:
    """Feeds an engine, sends what it returns, dispatches its events, keeps its timer."""

    def __init__(
        self,
        loop: EventLoop,
        engine: Any,
        ike_socket: socket.socket,
        send_natt: Callable[[bytes, tuple[str, int]], bool],
        on_event: Callable[[Event], None],
        natt_port: int,
        send_stream: Callable[[bytes, tuple[str, int]], bool] | None = None,
        divert: Callable[[bytes, tuple[str, int]], bool] | None = None,
    ) -> None:
        self.loop = loop
        self.engine = engine
        self.ike_socket = ike_socket
        self.send_natt = send_natt
        self.send_stream = send_stream
        self.on_event = on_event
        self.natt_port = natt_port
        self.divert = divert
        self._timer: Timer | None = None
        self._timer_at: float | None = None
        self.send_errors = 0
        loop.add_reader(ike_socket, self._on_ike_readable)

    def _on_ike_readable(self) -> None:
        for _ in range(64):
            try:
                data, source = self.ike_socket.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError:
                self.send_errors += 1
                return
            if self.divert is not None and self.divert(data, source):
                continue  # the data plane's (drafts 00/01: marked ESP, keepalive)
            local = (self.ike_socket.getsockname()[0], IKE_PORT)
            self.apply(self.engine.receive(data, source, local, self.loop.time()))

    def receive_natt(self, payload: bytes, source: tuple[str, int], local_ip: str) -> None:
        """IKE that arrived on the NAT-T port (marker already stripped by the data plane)."""
        self.apply(
            self.engine.receive(payload, source, (local_ip, self.natt_port), self.loop.time())
        )

    def receive_stream(
        self, payload: bytes, source: tuple[str, int], local: tuple[str, int]
    ) -> None:
        """IKE deframed from an IPsec-over-TCP connection."""
        self.apply(self.engine.receive(payload, source, local, self.loop.time(), tcp=True))

    def apply(self, output: Output) -> None:
        for datagram in output.datagrams:
            self._send(datagram)
        for event in output.events:
            self.on_event(event)
        self._reschedule(output.next_deadline)

    def _send(self, datagram: Datagram) -> None:
        if datagram.tcp:  # no connection (any more): nothing to send it on
            if self.send_stream is None or not self.send_stream(datagram.data, datagram.remote):
                self.send_errors += 1
            return
        if datagram.local_port == self.natt_port and datagram.non_esp_marker:
            if not self.send_natt(datagram.data, datagram.remote):
                self.send_errors += 1
            return
        try:
            self.ike_socket.sendto(datagram.wire_bytes(), datagram.remote)
        except OSError:
            self.send_errors += 1

    def _reschedule(self, deadline: float | None) -> None:
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._timer_at = None
        self.apply(self.engine.tick(self.loop.time()))
