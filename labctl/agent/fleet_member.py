"""One simulated client of a `vpn-fleet` node: the client agent with its own sockets.

A member is ``ClientAgent`` (the same engine events, status record and reconnects) with
three differences: its IKE (UDP 500) and NAT-T (UDP 4500) sockets are bound to its own
address, so the PAT sees one source per member and gives each its own global port; its
"TUN" is one end of a datagram socket pair, the fleet's traffic generator holds the other
(inner packets in and out of the data plane without a kernel device per member); and
Mode-Config only records the address (there is no device to put it on).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..esp import DEFAULT_TUNNEL_MTU
from ..ike import ChildSaEstablished, ModeConfigReceived, RequestRetransmitted
from ..ike.constants import NATT_PORT
from .client import ClientAgent
from .dataplane import Dataplane, ReceiveBuffers
from .esp_sockets import open_udp
from .eventlog import EventLog
from .ikeio import EngineDriver, open_ike_socket
from .ikereport import IkeReport
from .loop import EventLoop
from .records import ClientStatus
from .settings import ClientSettings

if TYPE_CHECKING:
    from .fleet_settings import Member

SOCKET_BUFFER = 256 * 1024  # per member socket; 4 MiB (the single client's) x 2000 is a lot


class PairDevice:
    """A packet device made of a socket pair: one datagram is one IP packet."""

    def __init__(self, name: str, mtu: int = DEFAULT_TUNNEL_MTU) -> None:
        self.inner, self.outer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for end in (self.inner, self.outer):
            end.setblocking(False)
        self.fd = self.inner.fileno()  # the data plane's side
        self.name = name
        self.mtu = mtu

    def close(self) -> None:
        self.inner.close()
        self.outer.close()


class MemberLog(EventLog):
    """The fleet's event log with the member's name in front of every line."""

    def __init__(self, parent: EventLog, name: str) -> None:  # no EventLog state of its own
        self.parent = parent
        self.prefix = f"{name}: "

    def log(self, severity, event_class, text, peer="", *, limit=None) -> None:
        limit = None if limit is None else f"{limit} {self.prefix}"
        self.parent.log(severity, event_class, self.prefix + text, peer, limit=limit)

    def flush(self) -> None:
        """The fleet flushes its one log."""

    def set_level(self, level: str) -> None:
        """The fleet's level applies."""


class FleetMember(ClientAgent):
    def __init__(
        self,
        member: Member,
        settings: ClientSettings,
        loop: EventLoop,
        log: EventLog,
        buffers: ReceiveBuffers | None = None,
    ) -> None:
        self.member = member
        self.buffers = buffers  # the fleet's one pair (Dataplane: ReceiveBuffers)
        self.address = str(member.address)
        self.connect_started: float | None = None
        self.connect_seconds: float | None = None  # the last connect: start -> child SA up
        self.ike_retransmits = 0
        self.pings_sent = 0
        self.pings_received = 0
        self.allow_reconnect = True
        # the fleet's storm queue: a reconnect waits its turn like a first connect (a
        # concentrator that restarts would otherwise see every member at once)
        self.requeue: Callable[[FleetMember], None] | None = None
        super().__init__(settings, loop, MemberLog(log, member.name))
        self.report = IkeReport(self.log)

    # --- ClientAgent hooks ------------------------------------------------------------------
    def _start_timers(self) -> None:
        """None per member: the fleet runs one timer for all (volumes, its log)."""

    def _open_io(self) -> None:
        self.tun = self.device = PairDevice(f"fleet{self.member.number}")  # type: ignore[assignment]
        self.natt_socket = open_udp(self.address, NATT_PORT, buffer_bytes=SOCKET_BUFFER)
        self.dataplane = Dataplane(
            self.loop,
            self.tun,
            natt_socket=self.natt_socket,
            on_ike=self._on_natt_ike,
            on_event=self._on_dataplane_event,
            keepalive_interval=self.settings.nat_keepalive or 20.0,
            mss_clamp=False,  # only pings: no TCP inside
            buffers=self.buffers,
        )
        self.driver = EngineDriver(
            self.loop,
            None,
            open_ike_socket(self.address),
            self.dataplane.send_ike,
            self._on_event,
            NATT_PORT,
            send_stream=self._send_stream,
        )

    def _local_address(self, host: str) -> str:
        return self.address

    def _new_status(self, state: str, **fields) -> ClientStatus:
        fields.setdefault("local_ip", self.address)
        return super()._new_status(state, **fields)

    def connect(self) -> str:
        if self.status.state not in ("connecting", "connected"):
            self.connect_started = self.loop.time()
        return super().connect()

    def _schedule_reconnect(self) -> None:
        if self.allow_reconnect:
            super()._schedule_reconnect()

    def _reconnect(self) -> None:
        if self.requeue is None:
            super()._reconnect()
            return
        self.reconnect_timer = None
        self.status.reconnects += 1
        self.requeue(self)

    def _teardown(self) -> None:
        """No routes or addresses to remove: only the tunnels in the data plane."""
        for name in set(self.tunnels.values()):
            with contextlib.suppress(KeyError):
                self.dataplane.remove_tunnel(name)
        self.tunnels.clear()
        self.routes.clear()
        self.status.connected_at = None

    def _on_ModeConfigReceived(self, e: ModeConfigReceived) -> None:
        config = e.config
        if config.address is None:
            self._failed("no address available from the concentrator's pool")
            return
        self.status.assigned_ip = str(config.address)
        self.status.netmask = str(config.netmask) if config.netmask else None
        self.status.banner = config.banner
        self.status.split_networks = [str(n) for n in config.split_include]
        self.log.info("IKE/10", f"MODE_CFG_REPLY: INTERNAL_IPV4_ADDRESS = {config.address}")

    def _on_ChildSaEstablished(self, e: ChildSaEstablished) -> None:
        was = self.status.state
        super()._on_ChildSaEstablished(e)
        up = was != "connected" and self.status.state == "connected"
        if up and self.connect_started is not None:
            self.connect_seconds = self.loop.time() - self.connect_started

    def _on_RequestRetransmitted(self, e: RequestRetransmitted) -> None:
        self.ike_retransmits += 1
        super()._on_RequestRetransmitted(e)

    # --- the fleet's view ---------------------------------------------------------------------
    def row(self) -> dict:
        """The member's `status` row: the client's record plus the fleet's fields."""
        record = self.client_status().to_json()
        record.update(
            name=self.member.name,
            number=self.member.number,
            connect_seconds=(
                None if self.connect_seconds is None else round(self.connect_seconds, 3)
            ),
            ike_retransmits=self.ike_retransmits,
            pings_sent=self.pings_sent,
            pings_received=self.pings_received,
        )
        return record

    def close(self) -> None:
        self.dataplane.close()
        self.loop.remove_reader(self.driver.ike_socket)
        self.driver.ike_socket.close()
        self.natt_socket.close()
        self.device.close()
