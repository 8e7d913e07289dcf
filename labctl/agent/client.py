"""The client agent (kind `vpn-client`): a Cisco-VPN-Client-like connection entry.

One connection to one concentrator: aggressive mode + XAUTH + Mode-Config + quick mode via
the sans-I/O Initiator; the assigned address and secured routes go on a TUN; ESP through
the data plane. Reconnects by itself after the peer goes away when auto-connect is on.
In "tcp" transparent-tunneling mode the whole session (IKE from the first message, then
ESP) rides one TCP connection to the concentrator's IPsec-over-TCP port; losing it ends
the session (labctl.agent.tcp_transport).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable
from ipaddress import IPv4Network

from ..esp import DEFAULT_TUNNEL_MTU
from ..ike import (
    ChildSaDeleted,
    ChildSaEstablished,
    Event,
    ExchangeFailed,
    Initiator,
    InitiatorConfig,
    ModeConfigReceived,
    PacketDropped,
    PeerDead,
    Phase1Deleted,
    Phase1Established,
    RequestRetransmitted,
)
from ..ike.config import NattMode, VendorIdentity
from ..ike.constants import NATT_PORT, AuthMethod
from ..ike.events import IkeFragments
from . import naming
from .childsa import encap_of, esp_pair
from .control import ControlError
from .credentials import Credentials, load_credentials
from .dataplane import Dataplane, Encap, VolumeReached
from .dataplane import PeerEndpointChanged as DataplaneEndpointChanged
from .esp_sockets import open_raw_esp, open_udp
from .eventlog import EventLog
from .ikeio import EngineDriver, local_address_towards, open_ike_socket
from .ikereport import IkeReport
from .kernel_routes import gateway_towards
from .keylog import KeyLog
from .loop import EventLoop, Timer
from .records import ClientStatus
from .settings import ClientSettings, natt_versions_of, phase1_proposal, phase2_proposal
from .tcp_transport import TCP_TUNNEL_MTU, StreamConnection, TcpConnector
from .tun import TunDevice, run_ip_batch
from .volume import report_volumes, volume_reached, watch_child

NATT_MODES = {  # the settings' transparent-tunneling mode -> the engine's
    "nat-t": NattMode.NATT,
    "udp": NattMode.CISCO_UDP,
    "auto": NattMode.AUTO,
    "tcp": NattMode.TCP,
}
RECONNECT_DELAYS = (2.0, 4.0, 8.0, 15.0, 30.0)
HALF_INTERNET = (IPv4Network("0.0.0.0/1"), IPv4Network("128.0.0.0/1"))


# The Cisco VPN Client's Authentication choices: what it offers, in which exchange
# (certificates in main mode, the group name as aggressive mode's ID otherwise).
CLIENT_AUTH = {
    "psk": (AuthMethod.XAUTH_INIT_PSK, "aggressive"),
    "certificate": (AuthMethod.XAUTH_INIT_RSA, "main"),
    "hybrid": (AuthMethod.HYBRID_INIT_RSA, "aggressive"),
}


def credentials_for(settings: ClientSettings) -> Credentials | None:
    """The lab CA (to check the gateway), and with certificates our own certificate."""
    if settings.auth == "psk":
        return None
    return load_credentials(f"auth: {settings.auth}", own=settings.auth == "certificate")


def build_initiator_config(
    settings: ClientSettings, credentials: Credentials | None = None
) -> InitiatorConfig:
    natt = NATT_MODES[settings.tunneling_mode] if settings.transparent_tunneling else NattMode.NONE
    auth, exchange = CLIENT_AUTH[settings.auth]
    phase1 = tuple(phase1_proposal(p, auth, settings.ike_lifetime) for p in settings.ike_proposals)
    phase2 = tuple(
        phase2_proposal(p, settings.ipsec_lifetime, lifetime_kb=settings.ipsec_lifetime_kb)
        for p in settings.ipsec_proposals
    )
    return InitiatorConfig(
        group=settings.group,
        psk=settings.group_password.encode(),
        exchange=exchange,
        certificate=credentials.own if credentials else None,
        ca=credentials.ca if credentials else None,
        user=settings.user,
        password=settings.password.encode(),
        phase1=phase1,
        phase2=phase2,
        natt=natt,
        natt_versions=natt_versions_of(settings.natt_versions, InitiatorConfig.natt_versions),
        app_version=settings.app_version,
        hostname=settings.node,
        use_split_networks=True,
        dpd_idle=settings.dpd.interval,
        dpd_retry=settings.dpd.retry_interval,
        dpd_max_retries=settings.dpd.retries,
        vendor=VendorIdentity(
            fragmentation=settings.fragmentation is not None, vpn3000_version=None
        ),
        fragment_size=settings.fragmentation or 576,
    )


class ClientAgent:
    def __init__(self, settings: ClientSettings, loop: EventLoop, log: EventLog):
        self.settings = settings
        self.loop = loop
        self.log = log
        self.keylog = KeyLog() if settings.export_keys else None
        self.report = IkeReport(log)
        self._start_timers()
        self._open_io()
        # IPsec over TCP: the connection being opened / the one the session rides
        self.connector: TcpConnector | None = None
        self.stream: StreamConnection | None = None
        self.status = self._new_status("disconnected")
        self.local_ip: str | None = None
        self.tunnels: dict[int, str] = {}  # inbound SPI -> data-plane tunnel name
        self.tunnel_serial = itertools.count()  # names never repeat (a deleted one's neither)
        self.routes: list[str] = []
        self.host_route: str | None = None
        self.want_connected = False
        self.reconnect_timer: Timer | None = None
        self.failures = 0
        self.last_phase1: Phase1Established | None = None
        # Called once when the state settles (connected, failed, disconnected): how
        # `vpn connect --wait` learns the outcome without polling.
        self.state_watchers: list[Callable[[], None]] = []

    def _start_timers(self) -> None:
        self.loop.call_every(1.0, self.log.flush)  # summaries of rate-limited lines
        self.loop.call_every(1.0, self._note_volume)  # kilobyte lifetimes

    def _open_io(self) -> None:
        """The TUN, the data plane and the IKE socket (a fleet member has its own)."""
        self.tun = TunDevice.create("vpn0", mtu=self._tun_mtu())
        cisco_port = self._cisco_port()
        ike_socket = open_ike_socket("0.0.0.0")
        self.dataplane = Dataplane(
            self.loop,
            self.tun,
            natt_socket=open_udp("0.0.0.0", NATT_PORT),
            ike_socket=ike_socket,  # NAT-T drafts 00/01 carry ESP on it
            cisco_socket=open_udp("0.0.0.0", cisco_port) if cisco_port else None,
            raw_socket=open_raw_esp(),
            on_ike=self._on_natt_ike,
            on_event=self._on_dataplane_event,
            keepalive_interval=self.settings.nat_keepalive or 20.0,
        )
        self.driver = EngineDriver(
            self.loop,
            None,
            ike_socket,
            self.dataplane.send_ike,
            self._on_event,
            NATT_PORT,
            send_stream=self._send_stream,
            divert=self.dataplane.receive_ike_port,
        )

    def _note_volume(self) -> None:
        if self.driver.engine is not None:
            report_volumes(self.driver.engine, self.dataplane, self.driver.apply, self.loop.time())

    # --- connection lifecycle ---------------------------------------------------------------

    def connect(self) -> str:
        self.want_connected = True
        if self.status.state in ("connecting", "connected"):
            return self.status.state
        if self.reconnect_timer is not None:
            self.reconnect_timer.cancel()
            self.reconnect_timer = None
        host = self._server()
        try:
            self.local_ip = self._local_address(host)
        except OSError as exc:
            self._failed(f"no route to {host}: {exc.strerror}")
            return self.status.state
        self.driver.engine = Initiator(self._initiator_config())
        self.status = self._new_status(
            "connecting", local_ip=self.local_ip, reconnects=self.status.reconnects
        )
        self.log.info("CM/26", f'Attempt connection with server "{host}"')
        if self.tcp_mode:
            self._open_tcp(host)
            return self.status.state
        self.driver.apply(
            self.driver.engine.start(self.loop.time(), (self.local_ip, 500), (host, 500))
        )
        return self.status.state

    # --- what differs between the kinds that run this agent (vpn-site overrides) ----------

    def _server(self) -> str:
        return str(self.settings.host)

    def _local_address(self, host: str) -> str:
        """The address IKE goes out from (NAT-D hashes it): what the kernel picks."""
        return local_address_towards(host)

    def _new_status(self, state: str, **fields) -> ClientStatus:
        s = self.settings
        return ClientStatus(state, str(s.host), s.group, s.user, **fields)

    def _initiator_config(self) -> InitiatorConfig:
        return build_initiator_config(self.settings, credentials_for(self.settings))

    def _tun_mtu(self) -> int:
        """The VPN adapter's MTU setting, else what fits one segment (TCP) or 1400."""
        if self.settings.mtu is not None:
            return self.settings.mtu
        return TCP_TUNNEL_MTU if self.tcp_mode else DEFAULT_TUNNEL_MTU

    def _cisco_port(self) -> int | None:
        s = self.settings
        return s.tunneling_port if s.tunneling_mode in ("udp", "auto") else None

    # --- IPsec over TCP ---------------------------------------------------------------------

    @property
    def tcp_mode(self) -> bool:
        s = self.settings
        return s.transparent_tunneling and s.tunneling_mode == "tcp"

    def _open_tcp(self, host: str) -> None:
        port = self.settings.tunneling_port
        self.status.transport = "TCP"
        self.connector = TcpConnector(
            self.loop,
            (host, port),
            on_connected=self._tcp_connected,
            on_failed=self._failed,
            on_ike=self._on_tcp_ike,
            on_esp=self.dataplane.receive_stream_esp,
            on_closed=self._on_tcp_closed,
            timeout=min(self.settings.peer_response_timeout, 30.0),
        )

    def _tcp_connected(self, conn: StreamConnection) -> None:
        self.connector = None
        self.stream = conn
        self.local_ip = conn.local[0]
        self.status.local_ip = conn.local[0]
        self.log.info(
            "CM/27",
            f"TCP connection established {conn.local[0]}:{conn.local[1]} -> "
            f"{conn.peer[0]}:{conn.peer[1]}",
        )
        self.driver.apply(self.driver.engine.start(self.loop.time(), conn.local, conn.peer))

    def _on_tcp_ike(self, payload: bytes, conn: StreamConnection) -> None:
        if conn is self.stream and self.driver.engine is not None:
            self.driver.receive_stream(payload, conn.peer, conn.local)

    def _on_tcp_closed(self, conn: StreamConnection, reason: str) -> None:
        if conn is not self.stream:
            return  # one we closed ourselves
        self.stream = None
        self._failed(f"TCP connection to {conn.peer[0]}:{conn.peer[1]} lost: {reason}")

    def _send_stream(self, message: bytes, remote: tuple[str, int]) -> bool:
        stream = self.stream
        return stream is not None and stream.peer == remote and stream.send_ike(message)

    def disconnect(self) -> str:
        self.want_connected = False
        if self.reconnect_timer is not None:
            self.reconnect_timer.cancel()
            self.reconnect_timer = None
        engine = self.driver.engine
        active = self.status.state in ("connecting", "connected")
        # Set first: the Phase1Deleted our own Delete produces is not a failure.
        self.status.state = "disconnected"
        if engine is not None and active:
            with contextlib.suppress(Exception):
                self.driver.apply(engine.delete(self.loop.time()))
        self._teardown()
        self.log.info("CM/12", "Connection terminated by the user")
        self._state_settled()
        return self.status.state

    def _failed(self, reason: str) -> None:
        self._teardown()
        self.status.state = "failed"
        self.status.last_error = reason
        self.log.warning("CM/13", f"connection failed: {reason}")
        self._state_settled()
        self._schedule_reconnect()

    def _state_settled(self) -> None:
        watchers, self.state_watchers = self.state_watchers, []
        for watcher in watchers:
            watcher()

    def _schedule_reconnect(self) -> None:
        if not (self.want_connected and self.settings.auto_connect):
            return
        if self.reconnect_timer is not None:  # one pending reconnect at a time
            self.reconnect_timer.cancel()
        delay = RECONNECT_DELAYS[min(self.failures, len(RECONNECT_DELAYS) - 1)]
        self.failures += 1
        self.reconnect_timer = self.loop.call_later(delay, self._reconnect)
        self.log.info("CM/30", f"reconnecting in {delay:.0f}s")

    def _reconnect(self) -> None:
        self.reconnect_timer = None
        self.status.reconnects += 1
        self.connect()

    def _teardown(self) -> None:
        if self.connector is not None:
            self.connector.cancel()
            self.connector = None
        stream, self.stream = self.stream, None  # cleared first: its close is ours
        if stream is not None:
            stream.close("disconnected")
        for name in set(self.tunnels.values()):
            with contextlib.suppress(KeyError):
                self.dataplane.remove_tunnel(name)
        self.tunnels.clear()
        commands = [["route", "del", network, "dev", self.tun.name] for network in self.routes]
        commands.append(["addr", "flush", "dev", self.tun.name])
        if self.host_route is not None:
            commands.append(["route", "del", self.host_route])
        run_ip_batch(commands, force=True)  # one process; what is already gone is fine
        self.routes.clear()
        self.host_route = None
        self.status.connected_at = None

    # --- inputs -----------------------------------------------------------------------------

    def _on_natt_ike(self, payload: bytes, source: tuple[str, int]) -> None:
        if self.driver.engine is not None:
            self.driver.receive_natt(payload, source, self.local_ip or "0.0.0.0")

    def _on_event(self, event: Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    def _on_Phase1Established(self, e: Phase1Established) -> None:
        self.last_phase1 = e
        self.report.peer_vendor(e)
        if self.keylog:
            self.keylog.phase1(e)
        nat = e.nat
        detected = nat.encapsulation != "tcp"  # no NAT discovery happens on TCP
        self.status.local_behind_nat = nat.local_behind_nat if detected else None
        self.status.remote_behind_nat = nat.remote_behind_nat if detected else None
        self.status.local_port, self.status.remote_port = e.local[1], e.peer[1]
        self.status.encryption = naming.encryption_name(e.algorithms.encryption)
        self.status.authentication = naming.hash_name(e.algorithms.hash)
        for line in self.status.nat_lines():
            self.log.info("IKE/71", line.strip())
        self.log.info("CM/14", "Established Phase 1 SA. 1 Phase 1 SA in the system")

    def _on_ModeConfigReceived(self, e: ModeConfigReceived) -> None:
        config = e.config
        if config.address is None:  # the engine fails such a reply itself; never tunnel
            self._failed("no address available from the concentrator's pool")
            return
        self.report.unknown_attributes(config, str(self.settings.host))
        address = str(config.address)
        self.status.assigned_ip = address
        self.status.netmask = str(config.netmask) if config.netmask else None
        self.status.banner = config.banner
        self.log.info("IKE/10", f"MODE_CFG_REPLY: INTERNAL_IPV4_ADDRESS = {address}")
        if config.udp_encap_port is not None:
            self.log.info(
                "IKE/13",
                f"MODE_CFG_REPLY: Received and using NAT-T port number "
                f"0x{config.udp_encap_port:08x}",
            )
        tun = self.tun.name
        commands = [["addr", "replace", f"{address}/32", "dev", tun]]
        networks = [str(n) for n in config.split_include] or [str(n) for n in HALF_INTERNET]
        if not config.split_include:
            # Everything goes into the tunnel but the concentrator itself.
            host = str(self.settings.host)
            gateway = gateway_towards(host)
            if gateway is not None:
                self.host_route = f"{host}/32"
                commands.append(["route", "replace", self.host_route, "via", gateway])
        commands += [["route", "replace", n, "dev", tun, "src", address] for n in networks]
        self.routes = networks  # recorded first: a teardown after a partial failure cleans up
        # One `ip` process for all of it: this runs between quick-mode messages.
        run_ip_batch(commands)
        self.status.split_networks = [str(n) for n in config.split_include]

    def _on_ChildSaEstablished(self, e: ChildSaEstablished) -> None:
        inbound, outbound = esp_pair(e, self.loop.time())
        encap = encap_of(e)
        if e.rekey_of is not None and e.rekey_of in self.tunnels:
            name = self.tunnels[e.rekey_of]
            self.dataplane.install_sas(name, outbound=outbound, inbound=[inbound])
        else:
            name = f"vpn{next(self.tunnel_serial)}"
            behind_nat = bool(self.status.local_behind_nat) or encap is Encap.CISCO
            if encap is Encap.TCP and self.stream is None:
                self._failed("TCP connection gone before the tunnel was up")
                return
            self.dataplane.add_tunnel(
                name,
                encap=encap,
                remote_networks=[e.remote_ts],
                local_networks=[e.local_ts],
                peer=(e.peer[0], e.udp_port or 0),
                outbound=outbound,
                inbound=[inbound],
                send_keepalives=encap is not Encap.ESP
                and behind_nat
                and self.settings.nat_keepalive > 0,
                stream=self.stream if encap is Encap.TCP else None,
            )
        self.tunnels[e.inbound_spi] = name
        if self.driver.engine is not None:
            watch_child(self.driver.engine, self.dataplane, e.inbound_spi)
        if self.keylog:
            self.keylog.child(
                e,
                local_behind_nat=bool(self.status.local_behind_nat),
                peer_behind_nat=bool(self.status.remote_behind_nat),
            )
        self.status.spi_in, self.status.spi_out = (
            f"0x{e.inbound_spi:08x}",
            f"0x{e.outbound_spi:08x}",
        )
        self._tunnel_up(e)
        transport = "TCP" if encap is Encap.TCP else "UDP"
        self.status.transport = transport
        self.status.transparent_tunneling = (
            f"Active on {transport} port {e.udp_port}" if encap is not Encap.ESP else "Inactive"
        )
        self.status.remote_port = e.udp_port or self.status.remote_port
        self.status.local_port = e.local_port or self.status.local_port
        if self.status.state != "connected":
            self.status.state = "connected"
            self.status.connected_at = time.time()
            self.status.last_error = None
            self.failures = 0
        self.log.info(
            "IKE/58",
            f"Loading IPsec SA (Message ID = 0x{e.message_id:08X} OUTBOUND "
            f"SPI = 0x{e.outbound_spi:08X} INBOUND SPI = 0x{e.inbound_spi:08X})",
        )
        self.log.info("CM/1A", "One secure connection established")
        self._state_settled()
        if e.rekey_of is not None and e.started_by_peer:
            self.log.info(
                "IKE/59",
                f"IPsec SA rekeyed by the concentrator (lifetime {e.lifetime_seconds} s)",
            )

    def _tunnel_up(self, e: ChildSaEstablished) -> None:
        """A child SA is installed (routes come from Mode-Config here; vpn-site adds its own)."""

    def _on_ChildSaDeleted(self, e: ChildSaDeleted) -> None:
        name = self.tunnels.pop(e.inbound_spi, None)
        if e.reason != "rekeyed":
            self.dataplane.remove_inbound_sa(e.inbound_spi)
        if name is not None and name not in self.tunnels.values():
            with contextlib.suppress(KeyError):
                self.dataplane.remove_tunnel(name)

    def _on_Phase1Deleted(self, e: Phase1Deleted) -> None:
        # Already handled: a user's disconnect, or a failure (DPD's PeerDead comes first and
        # the engine then deletes the SA; failing twice would start two reconnects).
        if e.replaced_by is not None or self.status.state in ("disconnected", "failed"):
            return
        self._failed(f"the concentrator ended the session ({e.reason})")

    def _on_PeerDead(self, e: PeerDead) -> None:
        self._failed(f"peer not responding ({e.unanswered} DPD probes unanswered)")

    def _on_ExchangeFailed(self, e: ExchangeFailed) -> None:
        if self.status.state == "connecting" or e.stage in ("phase1", "xauth", "modecfg"):
            self._failed(f"{e.stage}: {e.reason}")
        else:
            self.log.warning("IKE/167", f"{e.stage} failed: {e.reason}")

    def _on_PacketDropped(self, e: PacketDropped) -> None:
        self.report.dropped(e)

    def _on_IkeFragments(self, e: IkeFragments) -> None:
        self.report.fragments(e)

    def _on_RequestRetransmitted(self, e: RequestRetransmitted) -> None:
        self.report.retransmitted(e)

    def _on_dataplane_event(self, event) -> None:
        if isinstance(event, VolumeReached):
            if self.driver.engine is not None:
                volume_reached(self.driver.engine, self.driver.apply, event, self.loop.time())
        elif isinstance(event, DataplaneEndpointChanged):
            self.log.info(
                "IPSEC/17", f"tunnel {event.tunnel}: peer endpoint {event.old} -> {event.new}"
            )

    # --- status -------------------------------------------------------------------------------

    def client_status(self) -> ClientStatus:
        status = self.status
        tunnels = [self.dataplane.tunnel(n) for n in set(self.tunnels.values())]
        status.packets_encrypted = sum(t.counters.tx_packets for t in tunnels)
        status.packets_decrypted = sum(t.counters.rx_packets for t in tunnels)
        status.bytes_sent = sum(t.counters.tx_bytes for t in tunnels)
        status.bytes_received = sum(t.counters.rx_bytes for t in tunnels)
        status.packets_discarded = sum(sum(t.counters.drops.values()) for t in tunnels)
        status.packets_bypassed = sum(self.dataplane.drops.values())
        status.ike_dropped = self.report.counts()
        engine = self.driver.engine
        waiting = engine.waiting() if engine is not None else []
        status.waiting_for = waiting[0].describe(self.loop.time()) if waiting else None
        return status

    def reload(self, settings: ClientSettings) -> str:
        if (
            settings.tunneling_mode != self.settings.tunneling_mode
            or settings.tunneling_port != self.settings.tunneling_port
            or settings.mtu != self.settings.mtu
        ):
            return "restart"
        self.settings = settings
        self.log.set_level(settings.log_level)
        self.log.info("CONFIG/1", "configuration reloaded (used from the next connection)")
        return "reloaded"

    def require_connected(self) -> None:
        if self.status.state != "connected":
            raise ControlError(f"not connected ({self.status.state})")

    def stats(self) -> dict:
        engine = self.driver.engine
        stats = {
            "ike": dict(engine.stats) if engine else {},
            "drops": self.report.counts(),
            "log": {"suppressed": self.log.suppressed, "rotations": self.log.rotations},
            "dataplane": self.dataplane.stats(),
        }
        if self.stream is not None:
            stats["tcp"] = {"connections": [self.stream.stats()]}
        return stats
